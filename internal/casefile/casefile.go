// Package casefile reads the cases of table-driven tests from text files
// under a package's testdata, for tables of many short rows, and checks a
// call's result against a case's wanted one. Tests only.
//
// A case file holds one case a line: its name (the subtest's), then its
// fields, separated by "|". A field that starts with a double quote is a
// Go string literal, for values with surrounding spaces or a "|"; any
// other is taken as written, trimmed of surrounding white space. Blank
// lines and lines starting with "#" are skipped.
package casefile

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Sep separates the fields of a line.
const Sep = "|"

// errPrefix starts a wanted result that is an error.
const errPrefix = "error: "

// Case is one line of a case file.
type Case struct {
	Name   string
	Fields []string // after the name
	Line   int      // in the file, from 1
}

// Load returns the cases of the file at path, each with n fields after its
// name. It fails tb when the file cannot be read, holds no case, or has a
// line of another number of fields, a bad literal or a name twice.
func Load(tb testing.TB, path string, n int) []Case {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var cases []Case
	seen := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		fields, err := split(line)
		if err != nil {
			tb.Fatalf("%s:%d: %v", path, i+1, err)
		}
		if len(fields) != n+1 {
			tb.Fatalf("%s:%d: %d fields after the name, want %d", path, i+1, len(fields)-1, n)
		}
		if first, ok := seen[fields[0]]; ok {
			tb.Fatalf("%s:%d: case %q already on line %d", path, i+1, fields[0], first)
		}
		seen[fields[0]] = i + 1
		cases = append(cases, Case{Name: fields[0], Fields: fields[1:], Line: i + 1})
	}
	if len(cases) == 0 {
		tb.Fatalf("%s: no cases", path)
	}
	return cases
}

// Run runs test as a subtest of t for each case of the file at path (see
// Load), named by the case.
func Run(t *testing.T, path string, n int, test func(t *testing.T, c Case)) {
	t.Helper()
	for _, c := range Load(t, path, n) {
		t.Run(c.Name, func(t *testing.T) { test(t, c) })
	}
}

// split splits a line into its fields, unquoting those that are literals.
func split(line string) ([]string, error) {
	var fields []string
	rest := line
	for {
		rest = strings.TrimLeft(rest, " \t")
		var f string
		more := false
		if strings.HasPrefix(rest, `"`) {
			lit, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("bad literal %s", rest)
			}
			if f, err = strconv.Unquote(lit); err != nil {
				return nil, err
			}
			rest = strings.TrimLeft(rest[len(lit):], " \t")
			if rest, more = strings.CutPrefix(rest, Sep); !more && rest != "" {
				return nil, fmt.Errorf("text after the literal %s", lit)
			}
		} else {
			f, rest, more = strings.Cut(rest, Sep)
			f = strings.TrimSpace(f)
		}
		fields = append(fields, f)
		if !more {
			return fields, nil
		}
	}
}

// WantErr reports whether want, a wanted result, is an error, written
// "error: TEXT", and returns the TEXT the error must contain.
func WantErr(want string) (text string, ok bool) {
	return strings.CutPrefix(want, errPrefix)
}

// Check fails t unless the result got, err of a call is the wanted one:
// an error containing TEXT for "error: TEXT", which stops the test when it
// is not so; otherwise no error and got equal to want. The messages name
// the call by format and args, as fmt.Sprintf does. Check reports whether
// an error was wanted, for the caller's further checks of err.
func Check(t testing.TB, got string, err error, want string, format string, args ...any) (errWanted bool) {
	t.Helper()
	call := fmt.Sprintf(format, args...)
	if text, ok := WantErr(want); ok {
		if err == nil || !strings.Contains(err.Error(), text) {
			t.Fatalf("%s = %q, %v; want an error containing %q", call, got, err, text)
		}
		return true
	}
	if err != nil || got != want {
		t.Errorf("%s = %q, %v; want %q", call, got, err, want)
	}
	return false
}

// CheckErr fails t unless err is the error wanted: one containing want, or
// none when want is "", stopping the test when it is not so. The messages
// name the call by format and args, as fmt.Sprintf does. CheckErr reports
// whether an error was wanted, when the call has no result to check.
func CheckErr(t testing.TB, err error, want string, format string, args ...any) (errWanted bool) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s = %v, want an error containing %q", fmt.Sprintf(format, args...), err, want)
	}
	return true
}
