package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// benchConfig is a configuration of one manager with n files, each an http
// source with its own path, as a large fleet's butler.toml looks.
func benchConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("[butler]\nstate_dir = \"/var/lib/butler-bench/state\"\n")
	b.WriteString("textfile = \"/var/lib/butler-bench/tf/butler.prom\"\nschemes = [\"http\"]\n")
	b.WriteString("[managers.m]\ndest = \"/srv/butler-bench/dest\"\n")
	for i := range n {
		fmt.Fprintf(&b, "[[managers.m.files]]\nsource = \"http://127.0.0.1:8080/files/f%d.yml\"\npath = \"f%d.yml\"\n", i, i)
	}
	return []byte(b.String())
}

// BenchmarkParse1000 measures Parse on a configuration of 1,000 files.
func BenchmarkParse1000(b *testing.B) {
	data := benchConfig(1000)
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := Parse(data, "butler.toml", "/etc/butler", os.LookupEnv)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(cfg.Managers[0].Files); n != 1000 {
			b.Fatalf("%d files, want 1000", n)
		}
	}
}
