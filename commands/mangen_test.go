package commands

// The generator of the butler(1) page that `butler man` prints: the page is
// made here, from the command definitions, and built into the binary
// (help/butler.1 and help/butler.1.md), so that the binary links neither
// urfave/cli-docs nor go-md2man and its markdown library.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	udiff "github.com/aymanbagabas/go-udiff"
	"github.com/cpuguy83/go-md2man/v2/md2man"
	docs "github.com/urfave/cli-docs/v3"
	"github.com/urfave/cli/v3"

	"github.com/butler-sre/butler/pipeline"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/golden"
)

// manUpdate is how to make the built-in page again.
const manUpdate = "go test ./commands -run '^TestManPage$' -update"

// TestManPage fails when the page built into the binary is not the one the
// command definitions make now: a command, a flag or a help text changed
// since it was made. With -update it writes the page again.
func TestManPage(t *testing.T) {
	markdown, roff := generateManPage(t, manVersion)
	for _, tt := range []struct {
		file, got, embedded string
	}{
		{"butler.1.md", markdown, manPageMarkdown},
		{"butler.1", roff, manPageRoff},
	} {
		t.Run(tt.file, func(t *testing.T) {
			if n := strings.Count(tt.got, manVersion); n != 1 {
				t.Fatalf("the page has the version placeholder %s %d times, want once", manVersion, n)
			}
			path := filepath.Join("help", tt.file)
			if golden.Updating() {
				if err := os.WriteFile(path, []byte(tt.got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if tt.got != tt.embedded {
				t.Errorf("commands/%s is not the page the command definitions make; run\n\t%s\nand commit it:\n%s",
					path, manUpdate, udiff.Unified("commands/"+path, "generated", tt.embedded, tt.got))
			}
		})
	}
}

// TestManPageVersion holds `butler man` to the page generated with the
// binary's version directly: putting the version in place of the placeholder
// afterwards changes nothing else, in the markdown and in the roff.
func TestManPageVersion(t *testing.T) {
	for _, version := range []string{"dev", "v1.2.3", "v1.2.3-4-gabcdef0-dirty", "1.0_rc1"} {
		t.Run(version, func(t *testing.T) {
			markdown, roff := generateManPage(t, version)
			for _, tt := range []struct {
				args []string
				want string
			}{
				{nil, roff},
				{[]string{"--markdown"}, markdown},
			} {
				name := strings.Join(append([]string{"butler man"}, tt.args...), " ")
				if got := butlerMan(t, version, tt.args...); got != tt.want {
					t.Errorf("%s differs from the page generated with version %q:\n%s", name, version,
						udiff.Unified(name, "generated", got, tt.want))
				}
			}
		})
	}
}

// TestManPageVersionMarkup puts every printable ASCII character in versions,
// and a few markdown constructs: the markdown of `butler man` is still the
// page generated with that version, and so is the roff, except where
// go-md2man would not print the version as it is (it drops "<v1", reads
// "*v1*" as emphasis, "\." as "."): there `butler man` prints it as it is,
// and the rest of the page is the same. (A footnote, "^[x]", would also add
// to the end of the page; a git tag can hold neither "^" nor "[".)
func TestManPageVersionMarkup(t *testing.T) {
	var versions []string
	for c := byte(' '); c <= '~'; c++ {
		for _, form := range []string{"v1%c2", "%cv1", "v1%c", "v1%c2%c3"} {
			versions = append(versions, strings.ReplaceAll(form, "%c", string(c)))
		}
	}
	versions = append(versions, "v1&amp;2", "v1&#65;.2", "[v1](x)", "**v1**", "__v1__", "v1\\.2", "v1  ")
	for _, version := range versions {
		markdown, roff := generateManPage(t, version)
		if got := butlerMan(t, version, "--markdown"); got != markdown {
			t.Errorf("version %q: butler man --markdown differs from the page generated with it:\n%s", version,
				udiff.Unified("butler man --markdown", "generated", got, markdown))
		}
		got := butlerMan(t, version)
		if got == roff {
			continue
		}
		// Allowed only where the generated title lacks the version as written.
		literal := `"butler ` + roffText(version) + `"`
		gotTitle, gotRest := cutManTitle(got)
		title, rest := cutManTitle(roff)
		if strings.Contains(title, literal) || gotTitle != `.TH BUTLER 1 "" `+literal+` "User Commands"` || gotRest != rest {
			t.Errorf("version %q: butler man differs from the page generated with it, where go-md2man prints the version as it is:\n%s", version,
				udiff.Unified("butler man", "generated", got, roff))
		}
	}
}

// butlerMan is the output of `butler man args...` in-process, with version.
func butlerMan(t *testing.T, version string, args ...string) string {
	t.Helper()
	code, stdout, stderr := runButlerWith(t, func(d *Deps) { d.Build.Version = version }, append([]string{"man"}, args...)...)
	if code != 0 {
		t.Fatalf("butler man %s with version %q: exit %d\n%s", strings.Join(args, " "), version, code, stderr)
	}
	return stdout
}

// cutManTitle splits a roff page into its title (".nh", then the .TH line,
// which go-md2man may break in two) and the rest, from the NAME section on.
func cutManTitle(page string) (title, rest string) {
	title, rest, _ = strings.Cut(page, "\n\n.SH NAME\n")
	return strings.TrimPrefix(title, ".nh\n"), rest
}

// generateManPage makes the page, as markdown and as roff, from the command
// tree with version as it is when butler runs: urfave/cli adds the completion
// command when it sets the root up, so the tree is taken from inside a run of
// `butler man`.
func generateManPage(t *testing.T, version string) (markdown, roff string) {
	t.Helper()
	var out bytes.Buffer
	root := NewRoot(&Deps{
		Stdout: &out, Stderr: &out,
		LookupEnv: func(string) (string, bool) { return "", false },
		Build:     pipeline.BuildInfo{Version: version},
	})
	found := false
	for _, c := range root.Commands {
		if c.Name == "man" {
			found = true
			c.Action = func(_ context.Context, cmd *cli.Command) error {
				var err error
				markdown, err = manMarkdown(cmd.Root())
				return err
			}
		}
	}
	if !found {
		t.Fatal("the root has no man command")
	}
	if err := root.Run(context.Background(), []string{"butler", "man"}); err != nil {
		t.Fatalf("butler man: %v\n%s", err, out.String())
	}
	return markdown, string(md2man.Render([]byte(markdown)))
}

// manMarkdown returns the page as markdown: what urfave/cli-docs makes of the
// command tree (name, synopsis, global options, each command with its flags),
// each command's description added under its heading, then the sections a
// man page needs and --help has no place for: EXIT STATUS (taken from the
// commands' descriptions), ENVIRONMENT (from the flags' variables), FILES
// and EXAMPLES.
func manMarkdown(root *cli.Command) (string, error) {
	body, err := docs.ToMarkdown(root)
	if err != nil {
		return "", fmt.Errorf("man page: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%% %s 1 \"\" \"%s %s\" \"User Commands\"\n\n", strings.ToUpper(root.Name), root.Name, root.Version)
	b.WriteString(manCommandDetails(body, root))
	manExitStatus(&b, root)
	manEnvironment(&b, root)
	manFiles(&b)
	b.WriteString(manExamples)
	return b.String(), nil
}

// manCommandDetails puts each command's description (less its EXIT STATUS,
// which has a section of its own) at the end of the command's part of the
// page, and makes the commands' headings subsections of COMMANDS that name
// the whole command ("completion bash").
func manCommandDetails(body string, root *cli.Command) string {
	type section struct {
		cmd  *cli.Command
		path string // "completion bash"
	}
	headings := map[string]section{}
	var walk func(cmds []*cli.Command, level int, parent string)
	walk = func(cmds []*cli.Command, level int, parent string) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			path := strings.TrimSpace(parent + " " + c.Name)
			headings[strings.Repeat("#", level)+" "+strings.Join(c.Names(), ", ")] = section{c, path}
			walk(c.Commands, level+1, path)
		}
	}
	walk(root.Commands, 2, "") // the headings as cli-docs writes them

	var out strings.Builder
	pending := ""
	flush := func() {
		if pending != "" {
			out.WriteString("\n" + pending + "\n\n")
			pending = ""
		}
	}
	inFence := false
	for _, line := range strings.SplitAfter(body, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if !inFence && strings.HasPrefix(line, "#") {
			flush()
			if sec, ok := headings[strings.TrimRight(line, "\n")]; ok {
				line = "### " + sec.path + "\n"
				desc, _ := splitExitStatus(sec.cmd.Description)
				pending = manText(desc)
			}
		}
		out.WriteString(line)
	}
	flush()
	return out.String()
}

// exitStatus is the EXIT STATUS block of a command's description.
type exitStatus struct {
	note    string // what follows "EXIT STATUS" on its line, e.g. "(the Nagios plugin convention)"
	entries []exitEntry
}

type exitEntry struct {
	codes, meaning string // "130, 143", "ended by SIGINT or SIGTERM"
}

var exitEntryLine = regexp.MustCompile(`^\s+(\d+(?:,\s*\d+)*)\s{2,}(\S.*)$`)

// splitExitStatus cuts the block that starts with a line "EXIT STATUS" (its
// indented lines: "   CODE  meaning", with continuation lines indented
// further) out of a description.
func splitExitStatus(desc string) (string, *exitStatus) {
	lines := strings.Split(desc, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "EXIT STATUS") {
			continue
		}
		es := &exitStatus{note: strings.TrimSpace(strings.TrimPrefix(l, "EXIT STATUS"))}
		end := i + 1
		for ; end < len(lines); end++ {
			l := lines[end]
			if strings.TrimSpace(l) == "" {
				continue
			}
			if !strings.HasPrefix(l, " ") {
				break
			}
			if m := exitEntryLine.FindStringSubmatch(l); m != nil {
				es.entries = append(es.entries, exitEntry{codes: m[1], meaning: m[2]})
			} else if n := len(es.entries); n > 0 {
				es.entries[n-1].meaning += " " + strings.TrimSpace(l)
			}
		}
		rest := append(append([]string{}, lines[:i]...), lines[end:]...)
		return strings.TrimSpace(strings.Join(rest, "\n")), es
	}
	return desc, nil
}

func manExitStatus(b *strings.Builder, root *cli.Command) {
	b.WriteString("\n# EXIT STATUS\n\n")
	for _, c := range root.Commands {
		if c.Hidden {
			continue
		}
		_, es := splitExitStatus(c.Description)
		if es == nil {
			continue
		}
		fmt.Fprintf(b, "### %s %s\n\n", root.Name, c.Name)
		if note := strings.Trim(es.note, "()"); note != "" {
			b.WriteString(mdEscape(strings.ToUpper(note[:1])+note[1:]) + ".\n\n")
		}
		for _, e := range es.entries {
			fmt.Fprintf(b, "**%s**\n: %s\n\n", e.codes, mdEscape(e.meaning))
		}
	}
	b.WriteString("### other commands\n\n" + mdEscape(
		"0 on success; 2 for a usage or configuration error; 1 for any other failure "+
			"(render: a fetch or a render failed).") + "\n")
}

func manEnvironment(b *strings.Builder, root *cli.Command) {
	b.WriteString("\n# ENVIRONMENT\n\n")
	for _, f := range root.Flags {
		df, ok := f.(cli.DocGenerationFlag)
		if !ok {
			continue
		}
		for _, env := range df.GetEnvVars() {
			fmt.Fprintf(b, "**%s**\n: %s (the same as **%s**)\n\n", env,
				mdEscape(df.GetUsage()), mdEscape("--"+f.Names()[0]))
		}
	}
	b.WriteString(manText(`Any string value in butler.toml may use ${NAME} to take the environment
variable NAME: a secret that systemd reads from /etc/butler/butler.env
(EnvironmentFile= of butler.service) or that the cron example sources from it. An
unset variable is a configuration error that names it; $${ stands for a literal ${.
Templates see the environment as {{env.NAME}}. S3 sources without keys in their URL
use the AWS credential chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...).`) + "\n")
}

func manFiles(b *strings.Builder) {
	b.WriteString("\n# FILES\n\n")
	for _, f := range []struct{ path, what string }{
		{"/etc/butler/butler.toml", "the configuration (the default of --config)"},
		{"/etc/butler/butler.env", "secrets for ${NAME} in the configuration, NAME=value lines, mode 0600"},
		{config.DefaultStateDir, "the state directory ([butler] state_dir, --state-dir), mode 0700; it holds:"},
		{config.DefaultStateDir + "/state.json", "hashes, last results and counters: the values behind every metric"},
		{config.DefaultStateDir + "/lock", "held with flock(2) for the whole run; another run exits 3"},
		{config.DefaultStateDir + "/lkg/", "the last-known-good copy of each manager's files"},
		{config.DefaultStateDir + "/cache/", "the last fetched body of each source and its validators"},
		{config.DefaultTextfile, "the metrics for node_exporter's textfile collector ([butler] textfile, --textfile)"},
		{"/lib/systemd/system/butler.service, butler.timer", "the systemd units of the Debian package: a sync every minute"},
		{"/usr/share/doc/butler/", "example configurations, the cron example and Prometheus alert rules"},
	} {
		fmt.Fprintf(b, "*%s*\n: %s\n\n", mdEscape(f.path), mdEscape(f.what))
	}
}

var manExamples = "\n# EXAMPLES\n\n" + manText(`Check the configuration offline, see what a sync would change, then run one:`) + `

    butler --config /etc/butler/butler.toml check
    butler sync --dry-run
    butler sync

` + manText(`Print the files one manager would get, and apply that manager only, even
when nothing changed:`) + `

    butler render --manager nginx
    butler sync --manager nginx --force

` + manText(`Run every minute under systemd, and ask how it went (exit codes for Nagios):`) + `

    systemctl enable --now butler.timer
    butler status
    butler status --nagios
    butler status --events --manager 'prom.*'

` + manText(`Complete commands and flags in the current bash:`) + `

    source <(butler completion bash)

# SEE ALSO

systemd.timer(5), systemd.exec(5), crontab(5), nginx(8), prometheus(1)
`

// manText turns a description written for --help into markdown: paragraphs
// stay paragraphs, and a block of indented lines stays as it is, preformatted.
func manText(s string) string {
	var out []string
	for _, para := range strings.Split(strings.TrimSpace(s), "\n\n") {
		lines := strings.Split(para, "\n")
		indented := true
		for _, l := range lines {
			if !strings.HasPrefix(l, " ") {
				indented = false
			}
		}
		if indented {
			cut := len(para)
			for _, l := range lines {
				cut = min(cut, len(l)-len(strings.TrimLeft(l, " ")))
			}
			for i, l := range lines {
				lines[i] = "    " + l[cut:]
			}
			out = append(out, strings.Join(lines, "\n"))
			continue
		}
		out = append(out, mdEscape(para))
	}
	return strings.Join(out, "\n\n")
}

// mdEscape makes text literal in markdown: a backslash before every character
// that could start emphasis, a link, a heading, a list or a table.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_{}[]()#+-.!:|&<>~", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
