package commands

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
)

// manPage is `butler man` in-process: the page as roff.
func manPage(t *testing.T) string {
	t.Helper()
	code, stdout, stderr := runButler(t, "man")
	if code != 0 {
		t.Fatalf("butler man: exit %d\n%s", code, stderr)
	}
	return stdout
}

// roffSections splits a page into its sections and subsections by title
// (".SH GLOBAL OPTIONS", ".SS completion bash"), as plain text: font escapes
// dropped, "\-" read as "-".
func roffSections(page string) map[string]string {
	plain := strings.NewReplacer(`\fB`, "", `\fI`, "", `\fP`, "", `\fR`, "", `\fC`, "", `\&`, "", `\-`, "-", `\(bu`, "").Replace(page)
	sections := map[string]string{}
	title := ""
	for _, line := range strings.Split(plain, "\n") {
		if rest, ok := strings.CutPrefix(line, ".SH "); ok {
			title = strings.Trim(rest, `"`)
			sections[title] += ""
			continue
		}
		if rest, ok := strings.CutPrefix(line, ".SS "); ok {
			title = strings.Trim(rest, `"`)
			sections[title] += ""
			continue
		}
		sections[title] += line + "\n"
	}
	return sections
}

// helpFlags returns the flags (long and short) that `--help` lists, by
// heading: "OPTIONS" (the command's own) and "GLOBAL OPTIONS".
func helpFlags(help string) map[string][]string {
	flags := map[string][]string{}
	heading := ""
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasSuffix(line, "OPTIONS:"):
			heading = strings.TrimSuffix(line, ":")
			continue
		case !strings.HasPrefix(line, " "):
			heading = ""
		}
		if heading == "" {
			continue
		}
		// "   --config string, -c string  butler.toml: ..." -> the part before the usage
		names, _, _ := strings.Cut(strings.TrimSpace(line), "  ")
		for _, f := range strings.Split(names, ",") {
			f = strings.Fields(f)[0]
			if strings.HasPrefix(f, "-") {
				flags[heading] = append(flags[heading], f)
			}
		}
	}
	return flags
}

// manMissingFlags runs `--help` of every visible command of the tree that
// newRoot builds and returns "COMMAND FLAG" for each flag it lists that the
// command's part of the page does not name (the global flags: GLOBAL OPTIONS).
func manMissingFlags(t *testing.T, newRoot func(d *Deps) *cli.Command, page string) []string {
	t.Helper()
	sections := roffSections(page)
	help := func(path []string) string {
		var stdout, stderr bytes.Buffer
		d := &Deps{Stdout: &stdout, Stderr: &stderr, LookupEnv: func(string) (string, bool) { return "", false }}
		if err := newRoot(d).Run(context.Background(), append(append([]string{"butler"}, path...), "--help")); err != nil {
			t.Fatalf("butler %s --help: %v\n%s", strings.Join(path, " "), err, stderr.String())
		}
		return stdout.String()
	}
	var missing []string
	check := func(path []string, section string) {
		byHeading := helpFlags(help(path))
		if len(byHeading["OPTIONS"])+len(byHeading["GLOBAL OPTIONS"]) == 0 {
			t.Fatalf("butler %s --help lists no flags; the parser of its help is broken", strings.Join(path, " "))
		}
		for heading, flags := range map[string][]string{section: byHeading["OPTIONS"], "GLOBAL OPTIONS": byHeading["GLOBAL OPTIONS"]} {
			text, ok := sections[heading]
			if !ok {
				missing = append(missing, "the page has no section "+heading)
				continue
			}
			for _, f := range flags {
				if !regexp.MustCompile(`(^|[\s,|\[])` + regexp.QuoteMeta(f) + `\b`).MatchString(text) {
					missing = append(missing, strings.TrimSpace(strings.Join(path, " ")+" "+f))
				}
			}
		}
	}
	check(nil, "")
	var walk func(cmds []*cli.Command, parent []string)
	walk = func(cmds []*cli.Command, parent []string) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			path := append(append([]string{}, parent...), c.Name)
			check(path, strings.Join(path, " "))
			walk(c.Commands, path)
		}
	}
	// The tree as it runs: urfave/cli adds the completion command when the
	// root is set up, so set it up by running it once.
	var out bytes.Buffer
	root := newRoot(&Deps{Stdout: &out, Stderr: &out, LookupEnv: func(string) (string, bool) { return "", false }})
	if err := root.Run(context.Background(), []string{"butler", "--help"}); err != nil {
		t.Fatal(err)
	}
	walk(root.Commands, nil)
	return missing
}

// TestManPageHasEveryFlag fails when a flag of any command's --help is not in
// the page: the page is made from the same definitions (TestManPage fails
// when the one built in is not what they make now), so it never should be.
func TestManPageHasEveryFlag(t *testing.T) {
	if missing := manMissingFlags(t, NewRoot, manPage(t)); len(missing) > 0 {
		t.Errorf("flags in --help but not in the man page:\n%s", strings.Join(missing, "\n"))
	}
}

// TestManPageMissingFlagIsFound shows that the check above can fail: a flag
// added to sync after the page was made is reported.
func TestManPageMissingFlagIsFound(t *testing.T) {
	page := manPage(t)
	withExtra := func(d *Deps) *cli.Command {
		root := NewRoot(d)
		for _, c := range root.Commands {
			if c.Name == "sync" {
				c.Flags = append(c.Flags, &cli.BoolFlag{Name: "extra", Aliases: []string{"x"}, Usage: "not documented"})
			}
		}
		return root
	}
	missing := manMissingFlags(t, withExtra, page)
	if strings.Join(missing, "; ") != "sync --extra; sync -x" {
		t.Errorf("missing = %q, want sync --extra and sync -x", missing)
	}
}

func TestManPageSections(t *testing.T) {
	page := manPage(t)
	if !strings.HasPrefix(page, ".nh\n.TH BUTLER 1 ") || !strings.Contains(page, `"butler v9.9.9"`) {
		t.Errorf("the page does not start with the title of butler(1) and its version:\n%.200s", page)
	}
	sections := roffSections(page)
	for _, s := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "GLOBAL OPTIONS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"} {
		if _, ok := sections[s]; !ok {
			t.Errorf("the page has no section %s", s)
		}
	}
	// EXIT STATUS: each command's codes, as definition list items (.TP, code, meaning).
	codes := func(section string) []string {
		var out []string
		lines := strings.Split(sections[section], "\n")
		for i, l := range lines {
			if l == ".TP" && i+1 < len(lines) {
				out = append(out, lines[i+1])
			}
		}
		return out
	}
	for _, tt := range []struct {
		section string
		want    []string
	}{
		{"butler sync", []string{"0", "1", "2", "3", "130, 143"}}, // SPEC section 2 and 9
		{"butler check", []string{"0", "2"}},
		{"butler status", []string{"0", "1", "2", "3"}}, // Nagios
	} {
		if got := codes(tt.section); strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("EXIT STATUS of %s: codes %q, want %q", tt.section, got, tt.want)
		}
	}
	for _, tt := range []struct {
		section string
		want    []string
	}{
		{"butler sync", []string{"another butler run holds the lock", "ended by SIGINT or SIGTERM"}},
		{"butler status", []string{"Nagios plugin convention", "CRITICAL", "UNKNOWN: no run recorded yet"}},
		{"ENVIRONMENT", []string{"BUTLER_CONFIG", "BUTLER_STATE_DIR", "BUTLER_TEXTFILE", "${NAME}", "$${"}},
		{"FILES", []string{"/etc/butler/butler.toml", "/etc/butler/butler.env", "/var/lib/butler/state.json",
			"/var/lib/butler/lock", "/var/lib/butler/lkg/", "/var/lib/butler/cache/",
			"/var/lib/node_exporter/textfile_collector/butler.prom"}},
		{"EXAMPLES", []string{"butler sync --dry-run", "butler status --nagios", "systemctl enable --now butler.timer"}},
		// Descriptions are there too, less their EXIT STATUS.
		{"status", []string{"Reads only the state directory", `"prom.*" also "prometheus"`}},
		{"completion", []string{"source <(butler completion bash)"}},
	} {
		for _, w := range tt.want {
			if !strings.Contains(sections[tt.section], w) {
				t.Errorf("section %s lacks %q:\n%s", tt.section, w, sections[tt.section])
			}
		}
	}
	if strings.Contains(sections["sync"], "EXIT STATUS") {
		t.Errorf("the description of sync keeps its EXIT STATUS block:\n%s", sections["sync"])
	}
	if _, ok := sections["man"]; ok {
		t.Error("the hidden man command has a section")
	}
}

func TestSplitExitStatus(t *testing.T) {
	desc := `Does things.

EXIT STATUS (a note)
   0  fine
   1, 5  not fine: this goes on
      on the next line
   x  not a code, so a continuation`
	rest, es := splitExitStatus(desc)
	if rest != "Does things." {
		t.Errorf("rest = %q", rest)
	}
	if es == nil || es.note != "(a note)" || len(es.entries) != 2 ||
		es.entries[0] != (exitEntry{"0", "fine"}) ||
		es.entries[1] != (exitEntry{"1, 5", "not fine: this goes on on the next line x  not a code, so a continuation"}) {
		t.Errorf("exit status = %+v", es)
	}
	if rest, es := splitExitStatus("No codes here."); rest != "No codes here." || es != nil {
		t.Errorf("without a block: %q, %+v", rest, es)
	}
}
