// Package textfile is the metrics model of butler and the atomic writer and
// reader of node_exporter textfile-collector files (".prom").
//
// A file is written in full each time: temporary name not ending in ".prom" in
// the same directory, fsync, rename, mode 0644. Families and series come out in
// a stable order with HELP and TYPE, no sample timestamps and no duplicates, so
// node_exporter never drops the file and diffs between runs stay readable.
package textfile
