package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// Limits on a configuration, so that no file makes butler read forever or
// spend gigabytes on a few kilobytes of nesting.
const (
	// MaxSize is the largest configuration butler reads.
	MaxSize = 4 << 20
	// maxDepth is the deepest nesting of arrays and inline tables.
	maxDepth = 32
)

// checkDepth refuses arrays and inline tables nested deeper than maxDepth. It
// counts brackets outside strings and comments; table headers ([a.b],
// [[a.b]]) are lines of their own and count as one level at most.
func checkDepth(data []byte) (line int, err error) {
	depth, line := 0, 1
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
		case '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			i--
		case '"', '\'':
			n := 1 // quotes that open the string, and close it
			if i+2 < len(data) && data[i+1] == c && data[i+2] == c {
				n = 3
			}
			end := i + n
			for end < len(data) && !closesString(data[end:], c, n) {
				if data[end] == '\\' && c == '"' {
					end++
				}
				if end < len(data) && data[end] == '\n' {
					line++
				}
				end++
			}
			i = end + n - 1
		case '[', '{':
			depth++
			if depth > maxDepth {
				return line, fmt.Errorf("arrays and inline tables nested more than %d deep", maxDepth)
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return 0, nil
}

// closesString reports whether rest starts with the n quotes c that close a
// string.
func closesString(rest []byte, c byte, n int) bool {
	if len(rest) < n {
		return false
	}
	for _, b := range rest[:n] {
		if b != c {
			return false
		}
	}
	return true
}

// checkShapes compares the type of every key the TOML holds with the shape
// butler expects: the TOML library leaves a table-valued key that is given a
// string, a number or an array silently empty ("headers = 5"), and butler
// must never drop a key without a word. It returns one message per key of the
// wrong shape.
func checkShapes(md toml.MetaData, data []byte) []string {
	var problems []string
	var last toml.Key // the last key md.Type was asked about, and its answer
	var lastType string
	for _, key := range md.Keys() {
		t, ok := expectedType(key)
		if !ok {
			continue // unknown keys are reported as such; vars hold anything
		}
		if k := t.Kind(); k != reflect.Struct && k != reflect.Map && k != reflect.Slice {
			continue // scalars: the TOML library refuses a wrong type itself
		}
		// md.Type renders the key to look it up: ask once for a key that
		// repeats, as an array of tables' does for each of its tables.
		if !slices.Equal(key, last) {
			last, lastType = key, md.Type(key...)
		}
		got := lastType
		var want, example string
		switch t.Kind() {
		case reflect.Struct, reflect.Map:
			if got == "Hash" {
				continue
			}
			want, example = "a table", `{ Name = "value" }`
		case reflect.Slice:
			elem := t.Elem()
			for elem.Kind() == reflect.Pointer {
				elem = elem.Elem()
			}
			if elem.Kind() == reflect.Struct {
				if got == "Array" || got == "ArrayHash" {
					continue
				}
				want, example = "a list of tables", "[[managers.NAME.files]]"
			} else {
				if got == "Array" {
					continue
				}
				want, example = "a list", `["a", "b"]`
			}
		}
		problems = append(problems, fmt.Sprintf("line %d: %s must be %s, like %s, not %s",
			keyLine(data, key), key.String(), want, example, tomlType(got)))
	}
	return problems
}

// checkCase refuses a key that names one of butler's only when case is
// ignored ("[Butler]", "Dest"): the TOML library decodes it into the field
// all the same, and when both spellings are given, which one wins changes
// from run to run. TOML keys are case-sensitive, and butler's are lower
// case. Each such key is reported once, at its first line.
func checkCase(md toml.MetaData, data []byte) []string {
	var problems []string
	seen := map[string]bool{}
	for _, key := range md.Keys() {
		at, want, ok := caseMismatch(key)
		if !ok {
			continue
		}
		bad := key[:at+1]
		if name := bad.String(); !seen[name] {
			seen[name] = true
			problems = append(problems, fmt.Sprintf("line %d: unknown key %q: keys are case-sensitive, did you mean %q?",
				keyLine(data, bad), name, want))
		}
	}
	return problems
}

// caseMismatch returns the index of the first part of key that names a
// field of rawConfig only when case is ignored, and that field's key.
func caseMismatch(key toml.Key) (at int, want string, ok bool) {
	_, at, found := walkKey(key)
	if found || at < 0 {
		return 0, "", false // known, free-form (vars), or past a scalar
	}
	fields := tomlFields(typeAt(key[:at]))
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if strings.EqualFold(name, key[at]) {
			return at, name, true
		}
	}
	return 0, "", false // unknown in any case: reported as such
}

// expectedType is the Go type the key decodes into, walking rawConfig along
// the key; false for a key butler does not know, and for anything inside the
// free-form vars tables.
func expectedType(key toml.Key) (reflect.Type, bool) {
	t, _, found := walkKey(key)
	return t, found
}

// walkKey walks rawConfig along key. found is true when every part names a
// field (or a name of managers.NAME), and t is then the type the key
// decodes into. Otherwise unknown is the index of the part that names no
// field of its struct, or -1 when the key goes into a free-form vars table
// or below a scalar.
func walkKey(key toml.Key) (t reflect.Type, unknown int, found bool) {
	t = reflect.TypeFor[rawConfig]()
	for i, part := range key {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			ft, ok := tomlFields(t)[part]
			if !ok {
				return nil, i, false
			}
			t = ft
		case reflect.Map:
			if t.Elem().Kind() == reflect.Interface {
				return nil, -1, false // vars: any value
			}
			t = t.Elem() // a name: managers.NAME
		default:
			return nil, -1, false
		}
	}
	return t, 0, true
}

// typeAt is the struct type that the parts of prefix lead to: the one whose
// field walkKey did not find.
func typeAt(prefix toml.Key) reflect.Type {
	t, _, _ := walkKey(prefix)
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t
}

// fieldCache holds what tomlFields found for each struct type it was asked
// about: the raw types never change, so each is reflected on once.
var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// tomlFields maps the TOML key of each visible field of the struct type t
// (its toml tag; the fields of an embedded struct count as its own) to the
// field's type. When two fields carry the same tag, the first one counts.
func tomlFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for _, f := range reflect.VisibleFields(t) {
		if f.Anonymous {
			continue
		}
		if tag := f.Tag.Get("toml"); m[tag] == nil {
			m[tag] = f.Type
		}
	}
	actual, _ := fieldCache.LoadOrStore(t, m)
	return actual.(map[string]reflect.Type)
}

// tomlType names a TOML type for messages.
func tomlType(t string) string {
	switch t {
	case "String":
		return "a string"
	case "Integer", "Float":
		return "a number"
	case "Bool":
		return "a boolean"
	case "Array":
		return "a list"
	case "Hash":
		return "a table"
	case "ArrayHash":
		return "a list of tables"
	case "":
		return "nothing"
	}
	return strings.ToLower(t)
}

// isVars reports whether k is inside a [vars] table or a manager's vars, whose
// nested tables and lists are the user's own data.
func isVars(k toml.Key) bool {
	return len(k) > 1 && k[0] == "vars" || len(k) > 3 && k[0] == "managers" && k[2] == "vars"
}

// checkInlineExtended refuses a key or table that adds to an inline table
// defined earlier ("vars = { a = 1 }" then "vars.b = 2"): TOML forbids it,
// and the TOML library lets it through. It is a scan of the lines: table
// headers, "KEY = {" and dotted keys, outside multi-line strings.
func checkInlineExtended(data []byte) []string {
	var problems []string
	inline := map[string]int{} // full key path -> line of its inline table
	table := ""
	inString := false
	i := -1
	for line := range strings.SplitSeq(string(data), "\n") {
		i++
		t := strings.TrimSpace(line)
		if strings.Count(t, `"""`)%2 == 1 || strings.Count(t, `'''`)%2 == 1 {
			inString = !inString
			continue
		}
		if inString || t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		full, opensInline := "", false
		if h, ok := tableHeader(t); ok {
			table, full = h, h
		} else if key, rest, found := strings.Cut(t, "="); found && !strings.ContainsAny(key, `"'[{`) {
			opensInline = strings.HasPrefix(strings.TrimSpace(rest), "{")
			if !opensInline && len(inline) == 0 {
				continue // nothing to add to, nothing opened: the path is not needed
			}
			full = joinKey(table, strings.TrimSpace(key))
		}
		for path, at := range inline {
			if full != "" && isBelow(full, path) {
				problems = append(problems, fmt.Sprintf("line %d: %s adds to the inline table %s of line %d, which TOML forbids: write the key inside the braces", i+1, full, path, at))
			}
		}
		if opensInline {
			inline[full] = i + 1
		}
	}
	return problems
}

// joinKey is the full path of key in table ("" at the top level).
func joinKey(table, key string) string {
	if table == "" {
		return key
	}
	return table + "." + key
}

// isBelow reports whether the dotted key path full lies inside the table path.
func isBelow(full, path string) bool {
	return len(full) > len(path) && full[len(path)] == '.' && strings.HasPrefix(full, path)
}
