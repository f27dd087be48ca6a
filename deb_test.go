//go:build linux

package main

// The Debian package, as an operator meets it: make deb, then dpkg -i, an
// upgrade over an edited configuration, dpkg -r and dpkg -P on this machine.
// It needs root and replaces nothing: it skips when butler is installed here
// already, or when /etc/butler or /usr/bin/butler exist.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// debEntry is a path the package must hold: its tar mode string and type (as
// dpkg-deb --contents prints them) and whether it is a conffile.
type debEntry struct {
	path, mode string
	conffile   bool
}

// debWant is what the package must hold, as testdata/deb/contents.txt lists it.
func debWant(t *testing.T) []debEntry {
	t.Helper()
	var want []debEntry
	for i, line := range strings.Split(e2eRead(t, filepath.Join("testdata", "deb", "contents.txt")), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "#"):
			continue
		case len(f) == 2, len(f) == 3 && f[2] == "conffile":
			want = append(want, debEntry{path: f[0], mode: f[1], conffile: len(f) == 3})
		default:
			t.Fatalf("testdata/deb/contents.txt:%d: want PATH MODE [conffile]: %q", i+1, line)
		}
	}
	return want
}

func TestDebPackage(t *testing.T) {
	t.Parallel()
	needRoot(t)
	for _, p := range []string{"make", "dpkg", "dpkg-deb", "dpkg-query", "git"} {
		needProgram(t, p)
	}
	debRefuseToReplace(t)

	// Two packages of this tree: the version git describe gives, and a later
	// one for the upgrade.
	describe := strings.TrimSpace(debRun(t, "git", "describe", "--tags", "--always", "--dirty"))
	const later = "v999.0.0"
	first := debMake(t, describe)
	second := debMake(t, later)
	v1 := strings.TrimSpace(debRun(t, "dpkg-deb", "--field", first, "Version"))
	v2 := strings.TrimSpace(debRun(t, "dpkg-deb", "--field", second, "Version"))
	if v2 != "999.0.0" {
		t.Fatalf("the package of %s has version %q", later, v2)
	}
	if _, err := exec.Command("dpkg", "--compare-versions", v1, "lt", v2).CombinedOutput(); err != nil {
		t.Fatalf("%s (git describe %s) does not sort before %s", v1, describe, v2)
	}
	if hash := strings.TrimSpace(debRun(t, "git", "rev-parse", "--short", "HEAD")); describe == hash || describe == hash+"-dirty" {
		// No tag: 0.0.0~git<commit date>.<hash>.
		if want := regexp.MustCompile(`^0\.0\.0~git[0-9]{8}\.` + hash + `(\+dirty)?$`); !want.MatchString(v1) {
			t.Errorf("version %q of a tree without tags, want 0.0.0~gitYYYYMMDD.%s", v1, hash)
		}
	}

	t.Run("contents", func(t *testing.T) {
		info := debRun(t, "dpkg-deb", "--info", first)
		for _, w := range []string{"Package: butler", "Version: " + v1, "Architecture: ", "Maintainer: ", "Description: "} {
			if !strings.Contains(info, w) {
				t.Errorf("dpkg-deb --info lacks %q:\n%s", w, info)
			}
		}
		if conffiles := debRun(t, "dpkg-deb", "--info", first, "conffiles"); conffiles != "/etc/butler/butler.env\n/etc/butler/butler.toml\n" {
			t.Errorf("conffiles:\n%s", conffiles)
		}
		contents := debContents(t, first)
		want := debWant(t)
		for _, w := range want {
			if got, ok := contents[w.path]; !ok {
				t.Errorf("the package lacks %s", w.path)
			} else if got != w.mode+" root/root" {
				t.Errorf("%s: %s, want %s root/root", w.path, got, w.mode)
			}
		}
		for p := range contents {
			if !strings.HasSuffix(p, "/") && !debWanted(want, p) {
				t.Errorf("the package holds %s, which is not on the list", p)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// What the file system holds before: the same must be there after dpkg -P.
	debRefuseToReplace(t) // again: the builds took a while
	before := debExisting(t, debContents(t, first))
	includes := debIncludes(t, first)
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg-query", "--show", "--showformat=${Status}", "butler").Output(); err == nil && len(out) > 0 {
			t.Logf("purging the butler package this test installed (%s)", out)
			if out, err := debDpkg("--purge", "butler"); err != nil {
				t.Errorf("dpkg --purge butler: %v\n%s", err, out)
			}
		}
	})

	t.Run("install", func(t *testing.T) {
		debDpkgOK(t, append(includes, "--install", first)...)
		if got := debRun(t, "/usr/bin/butler", "version"); !strings.HasPrefix(got, "butler "+describe+" ") {
			t.Errorf("butler version: %q, want butler %s", got, describe)
		}
		for _, w := range debWant(t) {
			info, err := os.Lstat(w.path)
			if err != nil {
				t.Errorf("not installed: %v", err)
				continue
			}
			if got := info.Mode().String(); got != w.mode {
				t.Errorf("%s: mode %s, want %s", w.path, got, w.mode)
			}
		}
		unit := e2eRead(t, "/lib/systemd/system/butler.service")
		if !strings.Contains(unit, "\nExecStart=/usr/bin/butler --config /etc/butler/butler.toml sync\n") {
			t.Errorf("butler.service does not run /usr/bin/butler:\n%s", unit)
		}
		if cron := e2eRead(t, "/usr/share/doc/butler/butler.cron"); strings.Contains(cron, "/usr/local/bin/butler") {
			t.Errorf("butler.cron runs /usr/local/bin/butler:\n%s", cron)
		}
		if man, err := exec.Command("man", "-w", "butler").CombinedOutput(); err != nil || strings.TrimSpace(string(man)) != "/usr/share/man/man1/butler.1.gz" {
			t.Errorf("man -w butler: %v %s", err, man)
		}
		if out, err := exec.Command("/usr/bin/butler", "completion", "bash").Output(); err != nil ||
			string(out) != e2eRead(t, "/usr/share/bash-completion/completions/butler") {
			t.Errorf("the installed bash completion is not that of butler completion bash (%v)", err)
		}
		// The shipped example with the variables of the shipped butler.env.
		check := exec.Command("/usr/bin/butler", "--config", "/etc/butler/butler.toml", "check")
		check.Env = append(os.Environ(), exampleEnv(t, "/etc/butler/butler.env")...)
		if out, err := check.CombinedOutput(); err != nil || !strings.Contains(string(out), "configuration OK") {
			t.Errorf("butler check of the installed example: %v\n%s", err, out)
		}
		if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
			out, err := exec.Command(analyze, "verify", "/lib/systemd/system/butler.service", "/lib/systemd/system/butler.timer").CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
		} else {
			t.Log("systemd-analyze is not installed: the units are not verified")
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("upgrade keeps an edited configuration", func(t *testing.T) {
		edited := e2eRead(t, "/etc/butler/butler.toml") + "# edited by the operator\n"
		if err := os.WriteFile("/etc/butler/butler.toml", []byte(edited), 0o640); err != nil {
			t.Fatal(err)
		}
		debDpkgOK(t, append(includes, "--install", second)...)
		if got := e2eRead(t, "/etc/butler/butler.toml"); got != edited {
			t.Errorf("the upgrade replaced the edited butler.toml:\n%s", got)
		}
		if got := debRun(t, "/usr/bin/butler", "version"); !strings.HasPrefix(got, "butler "+later+" ") {
			t.Errorf("after the upgrade, butler version: %q", got)
		}
		if leftovers, _ := filepath.Glob("/etc/butler/*.dpkg-*"); len(leftovers) > 0 {
			t.Errorf("the upgrade left %q", leftovers)
		}
	})

	timerLink := "/etc/systemd/system/timers.target.wants/butler.timer"
	t.Cleanup(func() {
		// A symlink that the removal should have taken away (and the test
		// reported) is not left on the machine.
		if target, err := os.Readlink(timerLink); err == nil && target == "/lib/systemd/system/butler.timer" {
			os.Remove(timerLink)
		}
	})
	t.Run("remove leaves only the conffiles", func(t *testing.T) {
		// An operator enabled the timer: removing the package must not leave
		// the symlink behind. (systemctl enable works without a running systemd.)
		enabled := false
		if systemctl, err := exec.LookPath("systemctl"); err == nil {
			if out, err := exec.Command(systemctl, "enable", "butler.timer").CombinedOutput(); err != nil {
				t.Errorf("systemctl enable butler.timer: %v\n%s", err, out)
			}
			if _, err := os.Lstat(timerLink); err != nil {
				t.Errorf("systemctl enable made no %s: %v", timerLink, err)
			}
			enabled = true
		}
		debDpkgOK(t, "--remove", "butler")
		if got := debQuery(t, "${Status}"); got != "deinstall ok config-files" {
			t.Errorf("status after dpkg -r: %q", got)
		}
		conffiles := strings.Fields(debQuery(t, "${Conffiles}"))
		for _, c := range []string{"/etc/butler/butler.toml", "/etc/butler/butler.env"} {
			if !slices.Contains(conffiles, c) {
				t.Errorf("dpkg no longer lists the conffile %s:\n%s", c, conffiles)
			}
		}
		if listed := debRun(t, "dpkg", "--listfiles", "butler"); listed != "/etc\n/etc/butler\n/etc/butler/butler.env\n/etc/butler/butler.toml\n" {
			t.Errorf("dpkg -L butler after dpkg -r:\n%s", listed)
		}
		kept := map[string]bool{"/etc/butler/": true, "/etc/butler/butler.toml": true, "/etc/butler/butler.env": true}
		debWantAsBefore(t, before, kept)
		if enabled {
			if _, err := os.Lstat(timerLink); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s outlived the package (%v)", timerLink, err)
			}
		}
	})

	t.Run("purge removes the conffiles too", func(t *testing.T) {
		debDpkgOK(t, "--purge", "butler")
		if out, err := exec.Command("dpkg-query", "--show", "butler").CombinedOutput(); err == nil {
			t.Errorf("dpkg still knows butler after dpkg -P: %s", out)
		}
		debWantAsBefore(t, before, nil)
	})
}

// needRoot skips a test that must run as root, except under CI, where it fails.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := "not root: the package test installs and removes butler with dpkg"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// debRefuseToReplace skips (fails under CI) on a machine where installing the
// package would replace an installed butler or an operator's files.
func debRefuseToReplace(t *testing.T) {
	t.Helper()
	var why string
	if out, err := exec.Command("dpkg-query", "--show", "--showformat=${Status}", "butler").Output(); err == nil && len(out) > 0 {
		why = fmt.Sprintf("a butler package is on this machine (%s)", out)
	}
	for _, p := range []string{"/usr/bin/butler", "/etc/butler", "/var/lib/butler"} {
		if _, err := os.Lstat(p); err == nil && why == "" {
			why = p + " exists"
		}
	}
	if why == "" {
		return
	}
	msg := why + ": the package test would replace it; run it on a machine without butler"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// debMake runs make deb for VERSION into a directory of its own and returns
// the package's path.
func debMake(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("make", "--no-print-directory", "deb", "DEB_DIR="+dir, "VERSION="+version).CombinedOutput()
	if err != nil {
		t.Fatalf("make deb VERSION=%s: %v\n%s", version, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "butler_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb VERSION=%s made %q\n%s", version, debs, out)
	}
	return debs[0]
}

// debContents returns what dpkg-deb --contents lists: path ("/usr/bin/butler",
// directories with a final "/") -> "MODE OWNER/GROUP".
func debContents(t *testing.T, deb string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(debRun(t, "dpkg-deb", "--contents", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[5], "./") {
			t.Fatalf("dpkg-deb --contents: unexpected line %q", line)
		}
		out[strings.TrimPrefix(f[5], ".")] = f[0] + " " + f[1]
	}
	return out
}

// debWanted tells whether a file is on the list of what the package holds.
func debWanted(want []debEntry, path string) bool {
	for _, w := range want {
		if w.path == path {
			return true
		}
	}
	return false
}

// debExisting records, for every path of the package, whether it exists now.
func debExisting(t *testing.T, contents map[string]string) map[string]bool {
	t.Helper()
	exists := map[string]bool{}
	for p := range contents {
		_, err := os.Lstat(strings.TrimSuffix(p, "/"))
		exists[p] = err == nil
	}
	return exists
}

// debWantAsBefore requires every path of the package to exist exactly when it
// existed before the install, except the kept ones, which must exist.
func debWantAsBefore(t *testing.T, before, kept map[string]bool) {
	t.Helper()
	for p, existed := range before {
		_, err := os.Lstat(strings.TrimSuffix(p, "/"))
		exists := err == nil
		switch {
		case kept[p] && !exists:
			t.Errorf("%s is gone, but should be kept", p)
		case !kept[p] && exists && !existed:
			t.Errorf("%s is left behind", p)
		case !kept[p] && !exists && existed:
			t.Errorf("%s existed before the install and is gone", p)
		}
	}
}

// debIncludes returns dpkg options that bring back the package's files that
// this machine's dpkg configuration leaves out (Debian container images drop
// /usr/share/man and /usr/share/doc with path-exclude), saying so, so that the
// test can check them all.
func debIncludes(t *testing.T, deb string) []string {
	t.Helper()
	cfg := []string{"/etc/dpkg/dpkg.cfg"}
	more, _ := filepath.Glob("/etc/dpkg/dpkg.cfg.d/*")
	cfg = append(cfg, more...)
	var rules []dpkgPathRule
	for _, f := range cfg {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		rules = append(rules, parseDpkgPathRules(f, string(data))...)
	}
	var opts []string
	for p := range debContents(t, deb) {
		if strings.HasSuffix(p, "/") {
			continue
		}
		if rule, excluded := dpkgExcluded(rules, p); excluded {
			t.Logf("dpkg on this machine leaves out %s (path-exclude=%s in %s); installing it with --path-include=%s", p, rule.glob, rule.file, p)
			opts = append(opts, "--path-include="+p)
		}
	}
	return opts
}

// dpkgPathRule is a path-exclude or path-include line of a dpkg configuration.
type dpkgPathRule struct {
	include    bool
	glob, file string
}

func parseDpkgPathRules(file, text string) []dpkgPathRule {
	var rules []dpkgPathRule
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		for opt, include := range map[string]bool{"path-exclude": false, "path-include": true} {
			if rest, ok := strings.CutPrefix(line, opt); ok && (strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, " ")) {
				rules = append(rules, dpkgPathRule{include: include, glob: strings.TrimSpace(rest[1:]), file: file})
			}
		}
	}
	return rules
}

// dpkgExcluded applies the rules in order, as dpkg does (the last one that
// matches decides), with fnmatch(3) globs without FNM_PATHNAME: "*" matches
// "/" too.
func dpkgExcluded(rules []dpkgPathRule, path string) (dpkgPathRule, bool) {
	var last dpkgPathRule
	excluded := false
	for _, r := range rules {
		if dpkgGlob(r.glob).MatchString(path) {
			last, excluded = r, !r.include
		}
	}
	return last, excluded
}

func dpkgGlob(glob string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			end := strings.IndexByte(glob[i+1:], ']')
			if end < 0 {
				b.WriteString(`\[`)
				continue
			}
			class := glob[i+1 : i+1+end]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// debQuery returns a field of the butler package as dpkg-query shows it.
func debQuery(t *testing.T, format string) string {
	t.Helper()
	return strings.TrimSpace(debRun(t, "dpkg-query", "--show", "--showformat="+format, "butler"))
}

func debRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, exit.Stderr)
		}
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

func debDpkgOK(t *testing.T, args ...string) {
	t.Helper()
	if out, err := debDpkg(args...); err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// debDpkg runs dpkg, waiting up to half a minute for the lock of another
// dpkg or apt run.
func debDpkg(args ...string) ([]byte, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmd := exec.Command("dpkg", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lock") || time.Now().After(deadline) {
			return out, err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestDpkgExcluded(t *testing.T) {
	rules := parseDpkgPathRules("excludes", `# as Debian's container images have it
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude /usr/share/locale/[!e]*
`)
	tests := []struct {
		path string
		want bool
	}{
		{"/usr/share/man/man1/butler.1.gz", true},
		{"/usr/share/doc/butler/butler.cron", true},
		{"/usr/share/doc/butler/copyright", false},
		{"/usr/bin/butler", false},
		{"/usr/share/locale/de/x.mo", true},
		{"/usr/share/locale/en/x.mo", false},
	}
	for _, tt := range tests {
		if _, got := dpkgExcluded(rules, tt.path); got != tt.want {
			t.Errorf("excluded(%s) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
