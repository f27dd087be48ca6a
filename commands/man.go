package commands

import (
	"context"
	_ "embed"
	"io"
	"strings"

	"github.com/urfave/cli/v3"
)

// manPageRoff and manPageMarkdown are the butler(1) page, as roff and as the
// markdown it is rendered from, with manVersion where the version goes: the
// files help/butler.1 and help/butler.1.md, beside the help texts. They are
// made from the same command definitions as --help, by TestManPage, which
// fails when the definitions no longer make them, so the page and --help
// never drift apart. The generator (urfave/cli-docs, go-md2man and its
// markdown library) lives in the tests: linked into the binary, its package
// init would cost every run of butler, for a hidden command that only make
// man and make deb run.
var (
	//go:embed help/butler.1
	manPageRoff string
	//go:embed help/butler.1.md
	manPageMarkdown string
)

// manVersion stands for the version in manPageRoff and manPageMarkdown. It
// occurs in each exactly once (the page's title), as the generator wrote it:
// markdown and go-md2man leave it as it is.
const manVersion = "@VERSION@"

// manCommand is the hidden `butler man`: it prints the butler(1) page built
// into the binary, with the binary's version. make man and make deb run it.
func manCommand(d *Deps) *cli.Command {
	cmd := subcommand("man", []cli.Flag{
		&cli.BoolFlag{Name: "markdown", Usage: "print the markdown the page is rendered from"},
	}, func(_ context.Context, cmd *cli.Command) error {
		version := cmd.Root().Version
		page := strings.Replace(manPageRoff, manVersion, roffText(version), 1)
		if cmd.Bool("markdown") {
			page = strings.Replace(manPageMarkdown, manVersion, version, 1)
		}
		_, err := io.WriteString(d.Stdout, page)
		return err
	})
	cmd.Hidden = true
	return cmd
}

// roffText is s as go-md2man writes text in which markdown sees no markup:
// each backslash doubled. Where markdown would see markup in a version ("<",
// a pair of backticks, "**v1**", "&amp;", a backslash before punctuation),
// go-md2man would drop or restyle part of it in the title; `butler man`
// prints it as it is.
func roffText(s string) string {
	return strings.ReplaceAll(s, `\`, `\\`)
}
