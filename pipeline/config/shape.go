package config

import (
	"fmt"
	"reflect"
	"strings"

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
			quote := string(c)
			if i+2 < len(data) && data[i+1] == c && data[i+2] == c {
				quote = strings.Repeat(quote, 3)
			}
			end := i + len(quote)
			for end < len(data) && !strings.HasPrefix(string(data[end:min(end+3, len(data))]), quote) {
				if data[end] == '\\' && c == '"' {
					end++
				}
				if end < len(data) && data[end] == '\n' {
					line++
				}
				end++
			}
			i = end + len(quote) - 1
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

// checkShapes compares the TOML as decoded into plain Go values with the
// shapes butler expects: the TOML library leaves a table-valued key that is
// given a string, a number or an array silently empty ("headers = 5"), and
// butler must never drop a key without a word. It returns one message per
// key of the wrong shape.
func checkShapes(generic map[string]any, data []byte) []string {
	var problems []string
	var walk func(v any, t reflect.Type, key toml.Key)
	walk = func(v any, t reflect.Type, key toml.Key) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		bad := func(want, example string) {
			problems = append(problems, fmt.Sprintf("line %d: %s must be %s, like %s, not %s",
				keyLine(data, key), key.String(), want, example, tomlKind(v)))
		}
		switch t.Kind() {
		case reflect.Struct:
			m, ok := v.(map[string]any)
			if !ok {
				bad("a table", "[table] or { key = \"value\" }")
				return
			}
			for i := range t.NumField() {
				f := t.Field(i)
				name := f.Tag.Get("toml")
				if val, ok := m[name]; ok && name != "" {
					walk(val, f.Type, append(key[:len(key):len(key)], name))
				}
			}
		case reflect.Map:
			m, ok := v.(map[string]any)
			if !ok {
				bad("a table", "{ Name = \"value\" }")
				return
			}
			if t.Elem().Kind() == reflect.Interface {
				return // vars: any value
			}
			for k, val := range m {
				walk(val, t.Elem(), append(key[:len(key):len(key)], k))
			}
		case reflect.Slice:
			var items []any
			switch s := v.(type) {
			case []any:
				items = s
			case []map[string]any:
				for _, m := range s {
					items = append(items, m)
				}
			default:
				if t.Elem().Kind() == reflect.Pointer || t.Elem().Kind() == reflect.Struct {
					bad("a list of tables", "[[managers.NAME.files]]")
				} else {
					bad("a list", "[\"a\", \"b\"]")
				}
				return
			}
			for _, it := range items {
				walk(it, t.Elem(), key)
			}
		case reflect.String:
			if _, ok := v.(string); !ok {
				bad("a string", "\"text\"")
			}
		}
	}
	walk(generic, reflect.TypeFor[rawConfig](), nil)
	return problems
}

// tomlKind names the kind of a decoded TOML value for messages.
func tomlKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// isVars reports whether k is inside a [vars] table or a manager's vars, whose
// nested tables and lists are the user's own data.
func isVars(k toml.Key) bool {
	return len(k) > 1 && k[0] == "vars" || len(k) > 3 && k[0] == "managers" && k[2] == "vars"
}
