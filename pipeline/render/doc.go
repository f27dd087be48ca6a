// Package render is the render phase: strict mustache templates and the
// yml, json and text validators.
//
// Guarantees:
//   - A name the template looks up that is not in its context is an error
//     naming it, never an empty string; output is not HTML-escaped; partials,
//     which would read local files, are refused.
//   - A render is bounded: at most MaxOutput bytes and MaxSteps tag
//     evaluations, so no template (sections nested over lists) runs for
//     hours or takes gigabytes.
//   - Validate checks syntax only: every YAML document of a stream parses
//     without duplicate keys or an alias inside its own anchor, JSON is one
//     value without duplicate keys, text is UTF-8 without NUL bytes.
//   - A YAML file of 1 MiB or more whose root is a block mapping or sequence
//     is parsed in segments of its root's entries (and of the entries of one
//     large entry's value, and so on down), so the library's tree of the
//     whole file is never in memory; the answer is the one a parse of the
//     whole gives, and every error comes from a parse of the whole.
//   - Render and Validate are safe for concurrent use and touch no disk.
package render
