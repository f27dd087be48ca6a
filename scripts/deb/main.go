// Command deb builds butler's Debian package with nfpm; make deb builds and
// runs it.
//
// It is a module of its own so that nfpm's dependencies stay out of butler's
// go.mod and binary. The package's contents are declared in nfpm.yaml, beside
// this file, with source paths relative to the repository's root (where make
// runs it); the files that make generates (the binary, the man page, the
// completion scripts, the units with /usr/bin/butler) come from -build:
//
//	mkdeb -config scripts/deb/nfpm.yaml -build bin/deb-build -out bin \
//	    -describe "$(git describe --tags --always --dirty)" -commit-time "$(git log -1 --format=%ct)"
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
)

type options struct {
	config     string    // nfpm.yaml
	build      string    // the generated files: ${BUILD} in nfpm.yaml
	describe   string    // git describe --tags --always --dirty
	commitTime time.Time // of HEAD: the date in a snapshot version, and every file's mtime
	maintainer string
	arch       string // GOARCH of the binary
	out        string // directory the .deb is written to
}

func main() {
	var o options
	var commit string
	flag.StringVar(&o.config, "config", "nfpm.yaml", "nfpm configuration")
	flag.StringVar(&o.build, "build", "", "directory of the generated files (required)")
	flag.StringVar(&o.describe, "describe", "", "output of git describe --tags --always --dirty (required)")
	flag.StringVar(&commit, "commit-time", "", "Unix time of the commit, git log -1 --format=%ct (required)")
	flag.StringVar(&o.maintainer, "maintainer", "butler-sre <butler-sre@users.noreply.github.com>", "the Maintainer field")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "GOARCH the binary was built for")
	flag.StringVar(&o.out, "out", ".", "directory to write the package to")
	flag.Parse()
	if o.build == "" || o.describe == "" || commit == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "deb: -build, -describe and -commit-time are required, and nothing else")
		flag.Usage()
		os.Exit(2)
	}
	sec, err := strconv.ParseInt(commit, 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "deb: -commit-time %q: not a Unix time\n", commit)
		os.Exit(2)
	}
	o.commitTime = time.Unix(sec, 0).UTC()
	path, err := build(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "deb: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

// build writes the package and returns its path.
func build(o options) (string, error) {
	version, err := debVersion(o.describe, o.commitTime)
	if err != nil {
		return "", err
	}
	vars := map[string]string{"BUILD": o.build, "VERSION": version, "MAINTAINER": o.maintainer, "ARCH": o.arch}
	var unset []string
	cfg, err := nfpm.ParseFileWithEnvMapping(o.config, func(name string) string {
		v, ok := vars[name]
		if !ok && !strings.HasPrefix(name, "NFPM_") { // nfpm asks for its signing passphrases
			unset = append(unset, name)
		}
		return v
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", o.config, err)
	}
	if len(unset) > 0 {
		return "", fmt.Errorf("%s: unknown variables %q (known: BUILD, VERSION, MAINTAINER, ARCH)", o.config, unset)
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return "", fmt.Errorf("%s: %w", o.config, err)
	}
	if err := nfpm.Validate(info); err != nil {
		return "", fmt.Errorf("%s: %w", o.config, err)
	}
	// Every file and directory gets the commit's time: the same commit gives
	// the same package.
	info.MTime = o.commitTime

	packager := deb.Default
	name := filepath.Join(o.out, packager.ConventionalFileName(info))
	if err := writeAtomically(name, func(f *os.File) error { return packager.Package(info, f) }); err != nil {
		return "", fmt.Errorf("package %s: %w", name, err)
	}
	return name, nil
}

// writeAtomically writes name through a temporary file beside it, so that a
// failed build never leaves a truncated package under the final name.
func writeAtomically(name string, write func(*os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
