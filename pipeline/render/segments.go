package render

import (
	"bytes"
	"errors"
	"hash/maphash"
	"io"
	"slices"

	"go.yaml.in/yaml/v3"
)

// yamlSegmentMin is the size from which a YAML file is first validated in
// segments (validateYAMLSegments). The library builds a tree of the whole
// document, about six times the size of the text: 60 MB for a file of
// 10 MiB, all of it live at once. In segments of yamlSegmentSize the trees
// are small and each is garbage once checked.
const yamlSegmentMin = 1 << 20

// yamlSegmentSize is the least size of a segment: it ends at the first line
// that can start one after this many bytes.
const yamlSegmentSize = 256 << 10

// validateYAMLSegments reports whether content is shown valid by parsing it
// in segments; false says only that it was not, and the whole is parsed
// then, for the one answer that counts and the library's own error.
//
// The root of the document is a block mapping or a block sequence at column
// 0, as the first line that is not blank or a comment shows. A segment is the
// text from one line that starts an entry of the root (yamlEntry: a plain or
// quoted key, or "- ") to the next such line at least size bytes on. It is
// shown valid when it is one document whose root is a block collection of
// that kind at column 0 that passes every check of validateYAMLKeys. If
// every segment is, and, for a mapping, no key of a segment repeats a key of
// another, the whole is valid: it is one collection holding every segment's
// entries in turn.
//
// That holds because at a segment's end the scanner is in the same state as
// at the start of a document's root: a line at column 0 ends a plain scalar,
// a block scalar, an indentless sequence and every nested collection; a
// quoted scalar or a flow collection still open at the end fails the
// segment. What a segment cannot see fails it too (an alias to an anchor of
// an earlier segment is an unknown anchor). A stream with a document marker
// or a directive, or that is not UTF-8 (a NUL byte, a UTF-16 byte order
// mark), is not cut at all.
func validateYAMLSegments(content []byte, size int) bool {
	if bytes.IndexByte(content, 0) >= 0 || bytes.HasPrefix(content, []byte{0xfe, 0xff}) || bytes.HasPrefix(content, []byte{0xff, 0xfe}) {
		return false
	}
	for _, marker := range []string{"---", "...", "%"} {
		if bytes.HasPrefix(content, []byte(marker)) || bytes.Contains(content, []byte("\n"+marker)) {
			return false
		}
	}
	kind := yamlRootKind(content)
	if kind == 0 {
		return false
	}
	type key struct {
		kind  yaml.Kind
		value string
	}
	seed := maphash.MakeSeed()
	var keys []uint64 // hashes of the root's keys; two equal ones send the whole to the library
	for start := 0; start < len(content); {
		// A segment holds at least one entry: the first may start with
		// comments.
		end := yamlEntryLine(content, kind, max(start+size, yamlEntryLine(content, kind, start)+1))
		root, ok := yamlSegment(content[start:end], kind)
		if !ok {
			return false
		}
		for i := 0; kind == yaml.MappingNode && i+1 < len(root.Content); i += 2 {
			if k := root.Content[i]; k.Kind == yaml.ScalarNode || k.Kind == yaml.AliasNode {
				keys = append(keys, maphash.Comparable(seed, key{k.Kind, k.Value}))
			}
		}
		start = end
	}
	slices.Sort(keys)
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			return false // a repeated key, or two keys of one hash: the library says which
		}
	}
	return true
}

// yamlRootKind returns the kind of root the first line of content that is
// not blank or a comment starts, or 0 when that line is indented, starts
// something else (a flow collection, a scalar, an anchor, a tag) or there is
// none.
func yamlRootKind(content []byte) yaml.Kind {
	rest := bytes.TrimPrefix(content, []byte("\ufeff"))
	for len(rest) > 0 {
		line, next, _ := bytes.Cut(rest, []byte("\n"))
		if t := bytes.TrimLeft(line, " \t\r"); len(t) > 0 && t[0] != '#' {
			switch {
			case yamlEntry(yaml.MappingNode, line):
				return yaml.MappingNode
			case yamlEntry(yaml.SequenceNode, line):
				return yaml.SequenceNode
			}
			return 0
		}
		rest = next
	}
	return 0
}

// yamlEntry reports whether line, at column 0, can start an entry of a
// root collection of kind: a plain or quoted key of a mapping, or "- " of a
// sequence. Every other line (indentation, "?", ":", "#", a flow
// collection, an anchor, a tag) stays inside a segment.
func yamlEntry(kind yaml.Kind, line []byte) bool {
	if len(line) == 0 {
		return false
	}
	if kind == yaml.SequenceNode {
		return line[0] == '-' && (len(line) == 1 || line[1] == ' ' || line[1] == '\n' || line[1] == '\r')
	}
	c := line[0]
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '"' || c == '\''
}

// yamlEntryLine returns the offset of the first line at or after from that
// can start an entry of a root of kind, or len(content).
func yamlEntryLine(content []byte, kind yaml.Kind, from int) int {
	if from == 0 && yamlEntry(kind, content) {
		return 0
	}
	for i := max(from, 1); i < len(content); {
		nl := bytes.IndexByte(content[i-1:], '\n')
		if nl < 0 {
			break
		}
		at := i + nl // the line after that newline
		if yamlEntry(kind, content[at:]) {
			return at
		}
		i = at + 1
	}
	return len(content)
}

// yamlSegment parses one segment and returns its root when the segment is
// shown valid: one document, its root a block collection of kind at column
// 0, without anchor or tag of its own, that passes validateYAMLKeys.
func yamlSegment(seg []byte, kind yaml.Kind) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(seg))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil || len(doc.Content) != 1 {
		return nil, false
	}
	root := doc.Content[0]
	if root.Kind != kind || root.Style != 0 || root.Column != 1 || root.Anchor != "" {
		return nil, false
	}
	if validateYAMLKeys(&doc, map[*yaml.Node]bool{}) != nil {
		return nil, false
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return nil, false
	}
	return root, true
}
