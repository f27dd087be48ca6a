package redact

import (
	"context"
	"log/slog"
)

// handler removes every known secret from log messages and attribute values
// before they reach the next handler.
type handler struct {
	next  slog.Handler
	scrub *Scrubber
}

// NewHandler wraps next so that no secret scrub knows reaches it: whatever a
// library puts in an error, no credential reaches the log.
func NewHandler(next slog.Handler, scrub *Scrubber) slog.Handler {
	return &handler{next: next, scrub: scrub}
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.scrub.Scrub(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return &handler{next: h.next.WithAttrs(clean), scrub: h.scrub}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), scrub: h.scrub}
}

func (h *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.scrub.Scrub(v.String()))
	case slog.KindGroup:
		group := v.Group()
		clean := make([]any, len(group))
		for i, g := range group {
			clean[i] = h.attr(g)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.scrub.Scrub(err.Error()))
		}
		return slog.String(a.Key, h.scrub.Scrub(v.String()))
	}
	return a
}
