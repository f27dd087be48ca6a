package render

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/cbroglie/mustache"
)

// TemplateData builds the mustache context of a manager's templates: the merged
// vars (the caller merges manager vars over global vars), plus
//   - "env": the environment variables of environ ("K=V" strings) as a map, so
//     {{env.HOME}} works; an entry without "=" or with an empty name is skipped,
//     and when a name appears twice the first one wins, as with os.Getenv;
//   - "host": a map holding "hostname";
//   - "manager": the manager's name.
//
// These three keys win over vars of the same name (the configuration rejects
// such vars, so this only matters to callers that skip that check). vars is
// not modified.
func TemplateData(vars map[string]any, manager string, environ []string, hostname string) map[string]any {
	data := make(map[string]any, len(vars)+3)
	maps.Copy(data, vars)
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if _, seen := env[k]; !seen {
			env[k] = v
		}
	}
	data["env"] = env
	data["host"] = map[string]string{"hostname": hostname}
	data["manager"] = manager
	return data
}

// EnvNames returns the names of the variables of environ ("NAME=value")
// that content may use: those whose name it holds at all, sorted, each
// once. A mustache template names every variable it looks up literally, so
// a variable whose name is not in content cannot change what it renders:
// the result bounds what a template depends on without parsing it.
func EnvNames(content []byte, environ []string) []string {
	var names []string
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		if ok && k != "" && bytes.Contains(content, []byte(k)) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Render renders content as a strict mustache template with data as its
// context.
//
// Strict means that every name the template looks up must be in data: a
// variable ({{x}}), a section ({{#x}}) and an inverted section ({{^x}}) on a
// missing name are all errors naming it, such as `missing variable "x"`; a
// template that wants a default must have the variable defined (false, an
// empty list). Names inside a section that is not rendered (false, empty) are
// not looked up, so not checked: inside a list section they refer to the
// items, which do not exist then. A variable whose value is a table or a list
// is an error too (mustache would print Go's formatting of it): iterate it
// with a section.
//
// Dotted names ({{host.hostname}}, {{env.HOME}}) look the first part up in
// the context stack and the rest inside it. Output is not HTML-escaped.
// Partial tags ({{> name}}) are refused: they would read local files.
//
// delims, when not empty, is an [open, close] pair used instead of "{{" and
// "}}", so that files holding Go templates ({{ $labels.instance }}) can be
// templated with, say, [[ ]]. Other than the default pair, delimiters may not
// be empty or contain whitespace, "=" or "}}". A template may still change
// its delimiters with a set-delimiter tag ({{=<% %>=}}).
//
// Content holding no opening delimiter is returned as it is, not copied (a
// large file without tags costs no second copy of it), with its capacity cut
// to its length, so that appending to the result never writes into content.
// Neither may be changed in place while the other is in use.
// A template whose output would exceed MaxOutput bytes, or whose sections
// nested over lists would evaluate more than MaxSteps tags, is an error
// before it has used more than that: a few hundred bytes of nested sections
// would otherwise take hours and gigabytes.
// Render is safe for concurrent use.
func Render(content []byte, data map[string]any, delims []string) ([]byte, error) {
	open, closing, err := renderDelims(delims)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(content, []byte(open)) {
		return content[:len(content):len(content)], nil
	}
	src := string(content)
	if open != "{{" || closing != "}}" {
		// mustache v1.4.2 always starts parsing with {{ }}: switch at once with a
		// set-delimiter tag. The empty comment right after it keeps the switch
		// from being a "standalone" tag, which would swallow a newline or
		// blanks at the start of content. No newline is added, so the lines
		// in parse errors stay right.
		src = "{{=" + open + " " + closing + "=}}" + open + "!" + closing + src
	}

	renderSetStrict()
	tmpl, err := mustache.ParseStringPartialsRaw(src, renderNoPartials{}, true)
	if err != nil {
		return nil, fmt.Errorf("malformed template: %w", err)
	}
	tree, err := renderTree(tmpl.Tags())
	if err != nil {
		return nil, err
	}
	w := renderWalker{chain: []reflect.Value{reflect.ValueOf(data)}}
	if err := w.walk(tree, ""); err != nil {
		return nil, err
	}
	out := renderLimitWriter{limit: MaxOutput}
	out.buf.Grow(min(len(content)+len(content)/8, MaxOutput))
	err = tmpl.FRender(&out, data)
	if out.exceeded {
		// The library drops the write errors of variables: the flag, not
		// err, is what tells.
		return nil, fmt.Errorf("the rendered output exceeds %d MiB", MaxOutput>>20)
	}
	if err != nil {
		return nil, err
	}
	return out.buf.Bytes(), nil
}

// Limits of a render.
const (
	// MaxOutput is the most bytes a template may render to.
	MaxOutput = 64 << 20
	// MaxSteps is the most tags a template may evaluate, counting each tag
	// once per list item of the sections around it.
	MaxSteps = 2_000_000
)

// renderLimitWriter collects output up to limit bytes, and refuses every
// write past it.
type renderLimitWriter struct {
	buf      bytes.Buffer
	limit    int
	exceeded bool
}

func (w *renderLimitWriter) Write(p []byte) (int, error) {
	if w.exceeded || w.buf.Len()+len(p) > w.limit {
		w.exceeded = true
		return 0, errors.New("output limit exceeded")
	}
	return w.buf.Write(p)
}

var renderStrictOnce sync.Once

// renderSetStrict makes the mustache library fail on a missing variable.
//
// mustache v1.4.2 has no per-template or per-render option for this, only the
// package variable AllowMissingVariables, which every render reads. It is
// written once, before the first parse, and never again, so concurrent renders
// only ever read it (sync.Once orders the write before them). Render does not
// rely on it: renderWalker checks every name first, and also covers sections,
// which the library always looks up leniently. The switch is a second line
// of defence, so that a name the walker let through fails instead of becoming
// an empty string.
func renderSetStrict() {
	renderStrictOnce.Do(func() { mustache.AllowMissingVariables = false })
}

// renderDelims checks delims and returns the open and close delimiters.
func renderDelims(delims []string) (string, string, error) {
	if len(delims) == 0 {
		return "{{", "}}", nil
	}
	if len(delims) != 2 {
		return "", "", fmt.Errorf("delims must be two strings [open, close], got %d", len(delims))
	}
	if delims[0] == "{{" && delims[1] == "}}" {
		return "{{", "}}", nil
	}
	for _, d := range delims {
		switch {
		case d == "":
			return "", "", errors.New("delims may not be empty strings")
		case strings.IndexFunc(d, unicode.IsSpace) >= 0, strings.Contains(d, "="), strings.Contains(d, "}}"):
			return "", "", fmt.Errorf("delimiter %q may not contain whitespace, \"=\" or \"}}\"", d)
		}
	}
	return delims[0], delims[1], nil
}

// renderNoPartials refuses every partial. The library's default provider
// reads files from the working directory; remote templates must not.
type renderNoPartials struct{}

// Get implements mustache.PartialProvider.
func (renderNoPartials) Get(name string) (string, error) {
	return "", fmt.Errorf("partial %q: partials are not supported", name)
}

// renderNode is a tag of the parsed template, built once so the walk does not
// rebuild the library's tag lists for every list item.
type renderNode struct {
	kind     mustache.TagType
	name     string
	children []renderNode
}

// renderTree converts the library's tags and refuses partials anywhere, even
// in sections that would not be rendered.
func renderTree(tags []mustache.Tag) ([]renderNode, error) {
	nodes := make([]renderNode, 0, len(tags))
	for _, t := range tags {
		n := renderNode{kind: t.Type(), name: t.Name()}
		switch n.kind {
		case mustache.Partial:
			return nil, fmt.Errorf("partial %q: partials are not supported", n.name)
		case mustache.Section, mustache.InvertedSection:
			children, err := renderTree(t.Tags())
			if err != nil {
				return nil, err
			}
			n.children = children
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// renderWalker evaluates a template's names against the data as rendering
// will, without producing output, and reports the first problem. It follows
// the library's lookup and section rules (mustache v1.4.2): methods first,
// then map keys or struct fields, innermost context first; a section over a
// list pushes each item, over a table or any other non-empty value pushes the
// value; an inverted section renders only when the value is empty.
type renderWalker struct {
	chain []reflect.Value // the context stack, innermost last
	steps int             // tags evaluated and list items entered so far
}

// step counts one unit of work against MaxSteps.
func (w *renderWalker) step() error {
	w.steps++
	if w.steps > MaxSteps {
		return fmt.Errorf("the template evaluates more than %d tags (sections nested over lists multiply): refused", MaxSteps)
	}
	return nil
}

func (w *renderWalker) walk(nodes []renderNode, section string) error {
	for i := range nodes {
		n := &nodes[i]
		if err := w.step(); err != nil {
			return err
		}
		v, ok := renderLookup(w.chain, n.name)
		if !ok {
			if section != "" {
				return fmt.Errorf("missing variable %q (in section %q)", n.name, section)
			}
			return fmt.Errorf("missing variable %q", n.name)
		}
		switch n.kind {
		case mustache.Variable:
			if err := renderCheckScalar(n.name, v); err != nil {
				return err
			}
		case mustache.InvertedSection:
			if renderIsEmpty(v) {
				if err := w.walk(n.children, n.name); err != nil {
					return err
				}
			}
		case mustache.Section:
			if err := w.section(n, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *renderWalker) section(n *renderNode, v reflect.Value) error {
	if renderIsEmpty(v) {
		return nil
	}
	iv := renderIndirect(v)
	switch iv.Kind() {
	case reflect.Slice, reflect.Array:
		for i := range iv.Len() {
			if err := w.push(iv.Index(i), n); err != nil {
				return err
			}
		}
		return nil
	case reflect.Func:
		return fmt.Errorf("section %q: lambdas are not supported", n.name)
	default:
		return w.push(v, n)
	}
}

func (w *renderWalker) push(v reflect.Value, n *renderNode) error {
	if err := w.step(); err != nil {
		return err
	}
	w.chain = append(w.chain, v)
	err := w.walk(n.children, n.name)
	w.chain = w.chain[:len(w.chain)-1]
	return err
}

// renderLookup finds name in chain, innermost (last) context first. rest of a
// dotted name is looked up again, inside the value found.
func renderLookup(chain []reflect.Value, name string) (reflect.Value, bool) {
	if name != "." {
		if first, rest, dotted := strings.Cut(name, "."); dotted {
			v, ok := renderLookup(chain, first)
			if !ok {
				return reflect.Value{}, false
			}
			return renderLookup([]reflect.Value{v}, rest)
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if v, ok := renderLookupIn(chain[i], name); ok {
			return v, true
		}
	}
	return reflect.Value{}, false
}

func renderLookupIn(v reflect.Value, name string) (reflect.Value, bool) {
	for v.IsValid() {
		if v.Kind() != reflect.Interface {
			if m := v.MethodByName(name); m.IsValid() && m.Type().NumIn() == 0 && m.Type().NumOut() > 0 {
				return m.Call(nil)[0], true
			}
		}
		if name == "." {
			return v, true
		}
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			v = v.Elem()
		case reflect.Struct:
			f, ok := v.Type().FieldByName(name)
			if !ok || !f.IsExported() {
				return reflect.Value{}, false
			}
			return v.FieldByIndex(f.Index), true
		case reflect.Map:
			key := reflect.ValueOf(name)
			if !key.Type().AssignableTo(v.Type().Key()) {
				return reflect.Value{}, false
			}
			r := v.MapIndex(key)
			return r, r.IsValid()
		default:
			return reflect.Value{}, false
		}
	}
	return reflect.Value{}, false
}

// renderCheckScalar refuses values that mustache would print in Go's own
// notation (map[...], [...]) or as nothing useful.
func renderCheckScalar(name string, v reflect.Value) error {
	iv := renderIndirect(v)
	if !iv.IsValid() {
		return fmt.Errorf("variable %q has no value", name)
	}
	switch iv.Kind() {
	case reflect.Map, reflect.Struct:
		if iv.Kind() == reflect.Struct && iv.Type().Implements(renderStringer) {
			return nil
		}
		return fmt.Errorf("variable %q is a table, not a value: use a section or a dotted name", name)
	case reflect.Slice, reflect.Array:
		return fmt.Errorf("variable %q is a list, not a value: iterate it with a section", name)
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return fmt.Errorf("variable %q is not a value", name)
	}
	return nil
}

var renderStringer = reflect.TypeFor[fmt.Stringer]()

// renderIsEmpty is the library's notion of a false value: invalid, nil, zero,
// an empty list, or a string of blanks.
func renderIsEmpty(v reflect.Value) bool {
	if !v.IsValid() {
		return true
	}
	v = renderIndirect(v)
	if !v.IsValid() {
		return true
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		return v.Len() == 0
	case reflect.String:
		return strings.TrimSpace(v.String()) == ""
	default:
		return v.IsZero()
	}
}

func renderIndirect(v reflect.Value) reflect.Value {
	for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
		v = v.Elem()
	}
	return v
}
