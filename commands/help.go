package commands

import (
	"embed"
	"fmt"
	"strings"

	"github.com/urfave/cli/v3"
)

// help holds the help text of each command, help/NAME.txt: a "usage:" line
// (the summary in the command list), perhaps a "synopsis:" line (the usage
// line of its --help), then after a blank line its description, which --help
// and the man page print as it stands (an EXIT STATUS section included).
//
//go:embed help/*.txt
var help embed.FS

// described returns the command name with its help text and nothing else.
// The files are built in, so a missing or malformed one is a mistake of the
// build, which every test of the command shows at once.
func described(name string) *cli.Command {
	b, err := help.ReadFile("help/" + name + ".txt")
	if err != nil {
		panic(err)
	}
	head, desc, _ := strings.Cut(string(b), "\n\n")
	cmd := &cli.Command{Name: name, Description: strings.TrimSuffix(desc, "\n")}
	for _, line := range strings.Split(strings.TrimSuffix(head, "\n"), "\n") {
		switch key, value, _ := strings.Cut(line, ": "); key {
		case "usage":
			cmd.Usage = value
		case "synopsis":
			cmd.UsageText = value
		default:
			panic(fmt.Sprintf("help/%s.txt: %q: want usage: or synopsis:", name, line))
		}
	}
	if cmd.Usage == "" {
		panic(fmt.Sprintf("help/%s.txt: no usage: line", name))
	}
	return cmd
}
