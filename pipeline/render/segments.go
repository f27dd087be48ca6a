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
// then, for the one answer that counts and the library's own error. largest
// is the length of the longest segment it parsed.
//
// The root of the document is a block mapping or a block sequence at column
// 0, as the first line that is not blank or a comment shows. A segment is the
// text from one line that starts an entry of the root (yamlEntry: a plain or
// quoted key, or "- ") to the first such line at least size bytes on, or to
// an entry of a mapping larger than two segments, which makes a segment of
// its own (see below). It is
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
//
// Such a large entry ("groups:" of a rules file, "scrape_configs:") is cut
// in turn when its value is a block collection on the lines below it, at
// some column c (see entry): its entries at column c make segments of their
// own, each a document whose root is a collection of that kind at column c,
// by the same reasoning one level down. So is an entry of those, and so on.
func validateYAMLSegments(content []byte, size int) (ok bool, largest int) {
	if bytes.IndexByte(content, 0) >= 0 || bytes.HasPrefix(content, []byte{0xfe, 0xff}) || bytes.HasPrefix(content, []byte{0xff, 0xfe}) {
		return false, 0
	}
	for _, marker := range []string{"---", "...", "%"} {
		if bytes.HasPrefix(content, []byte(marker)) || bytes.Contains(content, []byte("\n"+marker)) {
			return false, 0
		}
	}
	kind := yamlRootKind(content)
	if kind == 0 {
		return false, 0
	}
	s := &yamlSegmenter{size: size, seed: maphash.MakeSeed()}
	var keys []uint64
	ok = s.collection(content, kind, 0, &keys) && yamlUnique(keys)
	return ok, s.largest
}

// yamlSegmenter cuts a document into segments of at least size bytes.
type yamlSegmenter struct {
	size    int
	seed    maphash.Seed
	largest int // the length of the longest segment parsed
}

// parse is yamlSegment, noting the segment's length.
func (s *yamlSegmenter) parse(seg []byte) (*yaml.Node, bool) {
	s.largest = max(s.largest, len(seg))
	return yamlSegment(seg)
}

// collection reports whether content, the entries of a block collection of
// kind whose entries start at column indent (after comments or blank lines,
// for the root), is shown valid in segments. The hashes of a mapping's keys
// are added to keys: the caller checks that none repeats.
func (s *yamlSegmenter) collection(content []byte, kind yaml.Kind, indent int, keys *[]uint64) bool {
	// large reports whether the entry from at to next is one to cut in
	// turn (see entry) rather than to parse with others.
	large := func(at, next int) bool { return kind == yaml.MappingNode && next-at > 2*s.size }
	for start := 0; start < len(content); {
		// A segment holds at least one entry: the first may start with
		// comments. It takes the entries after it while it is shorter
		// than size, up to a large one, which makes a segment of its own.
		first := yamlEntryLine(content, kind, indent, start)
		end := yamlEntryLine(content, kind, indent, first+1)
		if large(first, end) {
			if ok, cut := s.entry(content[start:end], first-start, indent, keys); cut {
				if !ok {
					return false
				}
				start = end
				continue
			}
		}
		for end < len(content) && end-start < s.size {
			next := yamlEntryLine(content, kind, indent, end+1)
			if large(end, next) {
				break
			}
			end = next
		}
		root, ok := s.parse(content[start:end])
		if !ok || !yamlIsBlock(root, kind, indent) {
			return false
		}
		s.addKeys(root, keys)
		start = end
	}
	return true
}

// entry validates seg, one entry of a mapping at column indent (from off,
// after comments), by cutting its value: "KEY:" alone on its line, and
// below it a block collection at a column c, indent or deeper. The key line
// and the first line of the value show that the key holds a collection of
// that kind at c; the value, from that line on, is then validated as the
// entries of such a collection, in segments. cut is false when the entry
// has not that form; then nothing was parsed.
func (s *yamlSegmenter) entry(seg []byte, off, indent int, keys *[]uint64) (ok, cut bool) {
	head, _, found := bytes.Cut(seg[off:], []byte("\n"))
	if h := bytes.TrimRight(head, " \r"); !found || !bytes.HasSuffix(h, []byte(":")) || bytes.IndexByte(h, '#') >= 0 {
		return false, false
	}
	body := off + len(head) + 1
	c, kind := yamlBodyStart(seg[body:])
	if kind == 0 || c < indent || (c == indent && kind == yaml.MappingNode) {
		return false, false
	}
	first := yamlEntryLine(seg, kind, c, body)
	if first == len(seg) {
		return false, false
	}
	line := len(seg)
	if nl := bytes.IndexByte(seg[first:], '\n'); nl >= 0 {
		line = first + nl + 1
	}
	root, ok := s.parse(seg[:line])
	if !ok || !yamlIsBlock(root, yaml.MappingNode, indent) || len(root.Content) != 2 || !yamlIsBlock(root.Content[1], kind, c) {
		return false, true
	}
	s.addKeys(root, keys)
	var inner []uint64
	return s.collection(seg[first:], kind, c, &inner) && yamlUnique(inner), true
}

// addKeys adds the hashes of the keys of n, when it is a mapping, to keys.
// Keys are the same as validateYAMLMapping compares them: kind and text.
func (s *yamlSegmenter) addKeys(n *yaml.Node, keys *[]uint64) {
	type key struct {
		kind  yaml.Kind
		value string
	}
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode || k.Kind == yaml.AliasNode {
			*keys = append(*keys, maphash.Comparable(s.seed, key{k.Kind, k.Value}))
		}
	}
}

// yamlUnique reports whether no two hashes of keys are equal: a repeated
// key, or two keys of one hash, send the whole to the library, which says
// which.
func yamlUnique(keys []uint64) bool {
	slices.Sort(keys)
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			return false
		}
	}
	return true
}

// yamlIsBlock reports whether n is a block collection of kind whose entries
// start at column indent (from 0), without an anchor or a tag of its own.
func yamlIsBlock(n *yaml.Node, kind yaml.Kind, indent int) bool {
	return n.Kind == kind && n.Style == 0 && n.Column == indent+1 && n.Anchor == ""
}

// yamlRootKind returns the kind of root the first line of content that is
// not blank or a comment starts, or 0 when that line is indented, starts
// something else (a flow collection, a scalar, an anchor, a tag) or there is
// none.
func yamlRootKind(content []byte) yaml.Kind {
	c, kind := yamlBodyStart(bytes.TrimPrefix(content, []byte("\ufeff")))
	if c != 0 {
		return 0
	}
	return kind
}

// yamlBodyStart returns the column of the first line of body that is not
// blank or a comment, and the kind of collection whose entry it starts (0
// for none: a tab in its indentation, or anything but an entry).
func yamlBodyStart(body []byte) (int, yaml.Kind) {
	for len(body) > 0 {
		line, next, _ := bytes.Cut(body, []byte("\n"))
		t := bytes.TrimLeft(line, " ")
		c := len(line) - len(t)
		if t = bytes.TrimLeft(t, "\t\r"); len(t) > 0 && t[0] != '#' {
			switch {
			case len(line)-len(t) != c: // a tab: not indentation YAML allows
				return 0, 0
			case yamlEntry(yaml.MappingNode, t):
				return c, yaml.MappingNode
			case yamlEntry(yaml.SequenceNode, t):
				return c, yaml.SequenceNode
			}
			return 0, 0
		}
		body = next
	}
	return 0, 0
}

// yamlEntry reports whether line can start an entry of a collection of
// kind: a plain or quoted key of a mapping, or "- " of a sequence. Every
// other line ("?", ":", "#", a flow collection, an anchor, a tag) stays
// inside a segment.
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

// yamlEntryAt reports whether the line at content[at:] is indent spaces
// and the start of an entry of kind.
func yamlEntryAt(content []byte, at int, kind yaml.Kind, indent int) bool {
	if len(content)-at < indent || !yamlSpaces(content[at:at+indent]) {
		return false
	}
	return yamlEntry(kind, content[at+indent:])
}

func yamlSpaces(b []byte) bool {
	for _, c := range b {
		if c != ' ' {
			return false
		}
	}
	return true
}

// yamlEntryLine returns the offset of the first line at or after from that
// starts an entry of kind at column indent, or len(content).
func yamlEntryLine(content []byte, kind yaml.Kind, indent, from int) int {
	if from == 0 && yamlEntryAt(content, 0, kind, indent) {
		return 0
	}
	for i := max(from, 1); i < len(content); {
		nl := bytes.IndexByte(content[i-1:], '\n')
		if nl < 0 {
			break
		}
		at := i + nl // the line after that newline
		if yamlEntryAt(content, at, kind, indent) {
			return at
		}
		i = at + 1
	}
	return len(content)
}

// yamlSegment parses one segment and returns its root when it is one
// document that passes validateYAMLKeys; the caller checks the root's kind
// and place.
func yamlSegment(seg []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(seg))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil || len(doc.Content) != 1 {
		return nil, false
	}
	if validateYAMLKeys(&doc, map[*yaml.Node]bool{}) != nil {
		return nil, false
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return nil, false
	}
	return doc.Content[0], true
}
