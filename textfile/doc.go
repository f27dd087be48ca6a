// Package textfile is the metrics model of butler and the atomic writer of
// node_exporter textfile-collector files (".prom").
//
// A file is written in full each time through package atomicfile, butler's one
// write sequence: temporary name not ending in ".prom" in the same directory,
// fsync, mode 0644, rename, fsync of the directory. A crash
// leaves the old file or the new one, never a mix; this holds on local file
// systems, not necessarily on network ones. Families and series come out in a
// stable order with HELP and TYPE, no sample timestamps and no duplicates, so
// node_exporter never drops the file and diffs between runs stay readable.
//
// The package knows nothing of where the values come from: it takes a slice
// of Family and writes a file. It does not read one: tests read a file back
// with the reference parser, through internal/textfiletest, which the binary
// does not link.
package textfile
