package redact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

// handlerSecret is the secret every case of TestHandler tries to log.
const handlerSecret = "hunter2-s3cret"

type handlerStringer struct{ v string }

func (s handlerStringer) String() string { return "stringer(" + s.v + ")" }

type handlerValuer struct{ v string }

func (v handlerValuer) LogValue() slog.Value { return slog.StringValue("valuer(" + v.v + ")") }

// TestHandler logs a known secret in every place a log line can carry it and
// checks that it never reaches the output, while the rest of the line does.
func TestHandler(t *testing.T) {
	wrapped := fmt.Errorf("fetch a.yml: %w", errors.New("token "+handlerSecret+" refused"))
	urlErr := &url.Error{Op: "Get", URL: "https://h/p.yml?token=" + handlerSecret, Err: errors.New("connection refused")}
	tests := []struct {
		name   string
		log    func(l *slog.Logger, s *Scrubber)
		secret string   // defaults to handlerSecret
		keep   []string // text that must survive
	}{
		{
			name: "message",
			log:  func(l *slog.Logger, _ *Scrubber) { l.Info("login with " + handlerSecret + " failed") },
			keep: []string{"login with", "failed"},
		},
		{
			name: "string attribute",
			log:  func(l *slog.Logger, _ *Scrubber) { l.Info("request", "authorization", "Bearer "+handlerSecret) },
			keep: []string{"request", "authorization"},
		},
		{
			name: "error attribute",
			log:  func(l *slog.Logger, _ *Scrubber) { l.Error("fetch failed", "error", wrapped) },
			keep: []string{"fetch a.yml: token", "refused"},
		},
		{
			name: "url error attribute",
			log:  func(l *slog.Logger, _ *Scrubber) { l.Error("fetch failed", "error", urlErr) },
			keep: []string{"https://h/p.yml?token=", "connection refused"},
		},
		{
			name: "error attribute through LogAttrs",
			log: func(l *slog.Logger, _ *Scrubber) {
				l.LogAttrs(context.Background(), slog.LevelError, "fetch failed", slog.Any("error", wrapped))
			},
			keep: []string{"fetch a.yml"},
		},
		{
			name: "group",
			log: func(l *slog.Logger, _ *Scrubber) {
				l.Info("reload", slog.Group("request",
					slog.String("url", "https://h/-/reload?key="+handlerSecret),
					slog.Int("status", 500),
					slog.Group("headers", slog.String("X-Token", handlerSecret)),
					slog.Any("error", wrapped),
				))
			},
			keep: []string{"request", "headers", "X-Token", "500", "https://h/-/reload?key="},
		},
		{
			name: "WithAttrs",
			log: func(l *slog.Logger, _ *Scrubber) {
				l.With("source", "s3::https://h/b/k?aws_access_key_secret="+handlerSecret, "error", wrapped).Info("fetched")
			},
			keep: []string{"fetched", "s3::https://h/b/k?aws_access_key_secret="},
		},
		{
			name: "WithAttrs group",
			log: func(l *slog.Logger, _ *Scrubber) {
				l.With(slog.Group("manager", "name", "prom", "token", handlerSecret)).Info("applied")
			},
			keep: []string{"applied", "prom"},
		},
		{
			name: "WithGroup then attributes",
			log: func(l *slog.Logger, _ *Scrubber) {
				l.WithGroup("run").With("header", handlerSecret).Info("done", "again", handlerSecret)
			},
			keep: []string{"run", "header", "again", "done"},
		},
		{
			name: "any value",
			log: func(l *slog.Logger, _ *Scrubber) {
				l.Info("check", "command", []string{"curl", "-H", "Authorization: " + handlerSecret})
			},
			keep: []string{"curl"},
		},
		{
			name: "stringer",
			log:  func(l *slog.Logger, _ *Scrubber) { l.Info("value", "v", handlerStringer{handlerSecret}) },
			keep: []string{"stringer("},
		},
		{
			name: "log valuer",
			log:  func(l *slog.Logger, _ *Scrubber) { l.Info("value", "v", handlerValuer{handlerSecret}) },
			keep: []string{"valuer("},
		},
		{
			name: "unknown URL password",
			log: func(l *slog.Logger, _ *Scrubber) {
				l.Warn("get https://u:zz-pw@h/x failed", "url", "https://u:zz-pw@h/y")
			},
			secret: "zz-pw",
			keep:   []string{"https://u:", "@h/x failed", "@h/y"},
		},
		{
			name: "secret known after the logger was made",
			log: func(l *slog.Logger, s *Scrubber) {
				s.Add("late-secret-42")
				l.Info("late-secret-42", "v", "late-secret-42", "error", errors.New("late-secret-42"))
			},
			secret: "late-secret-42",
		},
	}
	handlers := []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
	}
	for _, tt := range tests {
		for _, h := range handlers {
			t.Run(tt.name+"/"+h.name, func(t *testing.T) {
				var buf bytes.Buffer
				scrub := NewScrubber(handlerSecret)
				tt.log(slog.New(NewHandler(h.new(&buf), scrub)), scrub)
				out := buf.String()
				secret := tt.secret
				if secret == "" {
					secret = handlerSecret
				}
				if out == "" {
					t.Fatal("nothing logged")
				}
				if strings.Contains(out, secret) {
					t.Errorf("secret %q logged:\n%s", secret, out)
				}
				if !strings.Contains(out, Mask) {
					t.Errorf("no %q in place of the secret:\n%s", Mask, out)
				}
				for _, k := range tt.keep {
					if !strings.Contains(out, k) {
						t.Errorf("%q lost:\n%s", k, out)
					}
				}
			})
		}
	}
}

// TestHandlerKeepsValues checks that values without secrets reach the next
// handler as they were: numbers stay numbers, groups stay groups.
func TestHandlerKeepsValues(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil), NewScrubber(handlerSecret)))
	log.With("manager", "prom").WithGroup("reload").Warn("reload refused",
		"status", 500, "ok", false, slog.Group("http", "method", "POST"))
	got := strings.TrimSpace(buf.String())
	for _, want := range []string{
		`"level":"WARN"`,
		`"msg":"reload refused"`,
		`"manager":"prom"`,
		`"reload":{"status":500,"ok":false,"http":{"method":"POST"}}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("%s lacks %s", got, want)
		}
	}
}

func TestHandlerEnabled(t *testing.T) {
	tests := []struct {
		name  string
		min   slog.Level
		level slog.Level
		want  bool
	}{
		{"below the next handler's level", slog.LevelWarn, slog.LevelInfo, false},
		{"at the next handler's level", slog.LevelWarn, slog.LevelWarn, true},
		{"above the next handler's level", slog.LevelInfo, slog.LevelError, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := NewHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.min}), NewScrubber())
			if got := h.Enabled(context.Background(), tt.level); got != tt.want {
				t.Errorf("Enabled(%v) = %v, want %v", tt.level, got, tt.want)
			}
			slog.New(h).Log(context.Background(), tt.level, "line")
			if logged := buf.Len() > 0; logged != tt.want {
				t.Errorf("logged = %v, want %v", logged, tt.want)
			}
		})
	}
}
