package render

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Validate checks that content is well-formed in format:
//   - "yml" or "yaml": every document of the stream parses, no mapping
//     holds the same key twice, an explicitly tagged scalar (!!int, !!binary
//     ...) has a value of its type, a merge key ("<<") merges mappings, and no
//     alias lies inside its own anchor; errors give the line. An empty stream (an
//     empty file, or only comments) is valid YAML and passes: whether the
//     program accepts it is for its own check command to say.
//   - "json": exactly one JSON value in UTF-8, followed by nothing but
//     whitespace, with no object holding the same key twice; errors give the
//     line and column. An empty file is not JSON.
//   - "text": valid UTF-8 without NUL bytes, so a binary file is refused. An
//     empty file passes.
//
// Any other format is an error. Validate checks syntax only, not what the
// program reading the file expects.
func Validate(format string, content []byte) error {
	switch format {
	case "yml", "yaml":
		return validateYAML(content)
	case "json":
		return validateJSON(content)
	case "text":
		return validateText(content)
	default:
		return fmt.Errorf("unknown format %q (want yml, yaml, json or text)", format)
	}
}

func validateYAML(content []byte) error {
	if len(content) >= yamlSegmentMin {
		if ok, _ := validateYAMLSegments(content, yamlSegmentSize); ok {
			return nil
		}
	}
	return validateYAMLWhole(content)
}

// validateYAMLWhole parses each document of the stream whole.
func validateYAMLWhole(content []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(content))
	for {
		// Decoding into a yaml.Node skips the library's duplicate key check
		// (it runs only when decoding into Go values), hence validateYAMLKeys.
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := validateYAMLKeys(&doc, map[*yaml.Node]bool{}); err != nil {
			return err
		}
	}
}

// validateYAMLSmall is the size up to which a mapping's keys are compared
// pairwise rather than through a map: most mappings are small, and this
// saves an allocation for each.
const validateYAMLSmall = 8

// validateYAMLLarge is the size from which a mapping's keys are sorted to
// find a duplicate rather than put in a map: a map of every key of a
// mapping of 100,000 keys costs megabytes while the document's tree is
// alive, four bytes a key do the same.
const validateYAMLLarge = 4096

// validateYAMLKeys refuses a mapping holding the same key twice. Keys are
// compared as yaml v3 does when it decodes into Go values: same kind and same
// text, so `1` and `"1"` count as the same key. Aliases are not followed, so
// the walk stays linear however much the document aliases; an alias to a
// node that contains it (&a [*a]) is refused, as no program decoding the
// file could load it. anchored holds the anchored nodes above n.
func validateYAMLKeys(n *yaml.Node, anchored map[*yaml.Node]bool) error {
	switch n.Kind {
	case yaml.MappingNode:
		if err := validateYAMLMapping(n); err != nil {
			return err
		}
		if err := validateYAMLMerges(n); err != nil {
			return err
		}
	case yaml.ScalarNode:
		if err := validateYAMLTagged(n); err != nil {
			return err
		}
	case yaml.AliasNode:
		if anchored[n.Alias] {
			return fmt.Errorf("yaml: line %d: anchor %q contains an alias to itself", n.Line, n.Value)
		}
	}
	if n.Anchor != "" && !anchored[n] {
		anchored[n] = true
		defer delete(anchored, n)
	}
	for _, c := range n.Content {
		if err := validateYAMLKeys(c, anchored); err != nil {
			return err
		}
	}
	return nil
}

// validateYAMLTags are the tags whose values must have a form of their own:
// an explicit "!!int abc" or "!!binary 0" parses, but no program can decode it.
var validateYAMLTags = map[string]bool{
	"!!binary": true, "!!bool": true, "!!float": true, "!!int": true, "!!null": true, "!!timestamp": true,
}

// validateYAMLTagged refuses a scalar given one of validateYAMLTags
// explicitly whose value is not of that type, as decoding it would.
func validateYAMLTagged(n *yaml.Node) error {
	if n.Style&yaml.TaggedStyle == 0 || !validateYAMLTags[n.Tag] {
		return nil // an implicit tag is what the value resolved to
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return fmt.Errorf("yaml: line %d: %s", n.Line, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// validateYAMLMerges refuses a merge key ("<<") whose value is not a
// mapping or a sequence of mappings (directly or through aliases), which
// decoding refuses.
func validateYAMLMerges(n *yaml.Node) error {
	isMap := func(v *yaml.Node) bool {
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		return v.Kind == yaml.MappingNode
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!merge" {
			continue
		}
		ok := isMap(v)
		if v.Kind == yaml.SequenceNode {
			ok = true
			for _, item := range v.Content {
				ok = ok && isMap(item)
			}
		}
		if !ok {
			return fmt.Errorf("yaml: line %d: map merge requires map or sequence of maps as the value", k.Line)
		}
	}
	return nil
}

func validateYAMLMapping(n *yaml.Node) error {
	pairs := len(n.Content) / 2
	keyed := func(k *yaml.Node) bool {
		return k.Kind == yaml.ScalarNode || k.Kind == yaml.AliasNode
	}
	if pairs <= validateYAMLSmall {
		for i := 0; i < 2*pairs; i += 2 {
			k := n.Content[i]
			if !keyed(k) {
				continue
			}
			for j := 0; j < i; j += 2 {
				if p := n.Content[j]; p.Kind == k.Kind && p.Value == k.Value {
					return validateYAMLDup(k, p)
				}
			}
		}
		return nil
	}
	if pairs >= validateYAMLLarge {
		return validateYAMLSorted(n)
	}
	type key struct {
		kind  yaml.Kind
		value string
	}
	seen := make(map[key]*yaml.Node, pairs)
	for i := 0; i < 2*pairs; i += 2 {
		k := n.Content[i]
		if !keyed(k) {
			continue
		}
		if p, dup := seen[key{k.Kind, k.Value}]; dup {
			return validateYAMLDup(k, p)
		}
		seen[key{k.Kind, k.Value}] = k
	}
	return nil
}

// validateYAMLSorted is validateYAMLMapping for a large mapping, with the
// same result: the first key in document order that repeats an earlier one,
// and where that earlier one is. The keys' positions are sorted by key and
// then position, so each key's occurrences are side by side, in order.
func validateYAMLSorted(n *yaml.Node) error {
	keys := make([]int32, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode || k.Kind == yaml.AliasNode {
			keys = append(keys, int32(i))
		}
	}
	slices.SortFunc(keys, func(a, b int32) int {
		ka, kb := n.Content[a], n.Content[b]
		return cmp.Or(cmp.Compare(ka.Kind, kb.Kind), strings.Compare(ka.Value, kb.Value), cmp.Compare(a, b))
	})
	same := func(i, j int) bool {
		ki, kj := n.Content[keys[i]], n.Content[keys[j]]
		return ki.Kind == kj.Kind && ki.Value == kj.Value
	}
	var dup, first *yaml.Node // the earliest repeat, and its first occurrence
	dupAt := int32(-1)
	for start := 0; start < len(keys); {
		end := start + 1
		for end < len(keys) && same(start, end) {
			end++
		}
		if end-start > 1 && (dupAt < 0 || keys[start+1] < dupAt) {
			dupAt = keys[start+1]
			dup, first = n.Content[keys[start+1]], n.Content[keys[start]]
		}
		start = end
	}
	if dup != nil {
		return validateYAMLDup(dup, first)
	}
	return nil
}

func validateYAMLDup(k, first *yaml.Node) error {
	return fmt.Errorf("yaml: line %d: duplicate key %q (first at line %d)", k.Line, k.Value, first.Line)
}

// validateJSONFrame is an open object or array while walking JSON tokens.
type validateJSONFrame struct {
	object  bool
	wantKey bool                // object: the next string is a key
	keys    map[string]struct{} // object: keys seen, made on the first key
}

func validateJSON(content []byte) error {
	if err := validateUTF8(content); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(content))
	dec.UseNumber() // numbers stay text: no float parsing, no overflow on 1e400
	var stack []validateJSONFrame
	done := false // the top-level value is complete
	valueEnded := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		} else if n == 0 {
			done = true
		}
	}
	for {
		offset := int(dec.InputOffset())
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			switch {
			case done:
				return nil
			case len(stack) == 0:
				return errors.New("json: no value (the content is empty or only whitespace)")
			default:
				return fmt.Errorf("json: %s: unexpected end of input", validatePosition(content, len(content)))
			}
		}
		if done {
			// Token reads a stream of values; a file holds exactly one.
			return fmt.Errorf("json: %s: unexpected data after the JSON value", validatePosition(content, validateSkipSpace(content, offset)))
		}
		if err != nil {
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				return fmt.Errorf("json: %s: %w", validatePosition(content, int(syn.Offset)), err)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("json: %s: unexpected end of input", validatePosition(content, len(content)))
			}
			return fmt.Errorf("json: %s: %w", validatePosition(content, int(dec.InputOffset())), err)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, validateJSONFrame{object: true, wantKey: true})
			case '[':
				stack = append(stack, validateJSONFrame{})
			default: // '}' or ']'; the decoder has checked they match
				stack = stack[:len(stack)-1]
				valueEnded()
			}
		case string:
			top := len(stack) - 1
			if top < 0 || !stack[top].object || !stack[top].wantKey {
				valueEnded()
				continue
			}
			f := &stack[top]
			if f.keys == nil {
				f.keys = make(map[string]struct{})
			}
			if _, dup := f.keys[t]; dup {
				return fmt.Errorf("json: %s: duplicate key %q", validatePosition(content, validateSkipSpace(content, offset)), t)
			}
			f.keys[t] = struct{}{}
			f.wantKey = false
		default:
			valueEnded()
		}
	}
}

// validateSkipSpace returns the offset of the first byte at or after off that
// is neither JSON whitespace nor the ':' or ',' the decoder reads with tokens.
func validateSkipSpace(content []byte, off int) int {
	for off < len(content) {
		switch content[off] {
		case ' ', '\t', '\r', '\n', ':', ',':
			off++
		default:
			return off
		}
	}
	return off
}

func validateText(content []byte) error {
	if i := bytes.IndexByte(content, 0); i >= 0 {
		return fmt.Errorf("text: %s: NUL byte, binary content is not text", validatePosition(content, i))
	}
	if err := validateUTF8(content); err != nil {
		return fmt.Errorf("text: %w", err)
	}
	return nil
}

// validateUTF8 reports where content first stops being UTF-8.
func validateUTF8(content []byte) error {
	if utf8.Valid(content) {
		return nil
	}
	for i := 0; i < len(content); {
		r, size := utf8.DecodeRune(content[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("%s: invalid UTF-8", validatePosition(content, i))
		}
		i += size
	}
	return errors.New("invalid UTF-8")
}

// validatePosition turns a byte offset into "line L, column C" (both from 1,
// the column counted in bytes).
func validatePosition(content []byte, off int) string {
	off = min(max(off, 0), len(content))
	line := 1 + bytes.Count(content[:off], []byte{'\n'})
	col := off - bytes.LastIndexByte(content[:off], '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}
