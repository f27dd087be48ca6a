//go:build linux

package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// e2eStep is one step of an end-to-end test: a change, then one butler sync,
// checked against the step's section of the test's steps file and by after.
type e2eStep struct {
	name   string
	before func(t *testing.T) // the change the step makes; nil: none
	after  func(t *testing.T) // checks beyond the steps file; nil: none
	// cases, when set, are synced one by one after before, instead of one
	// sync of the step's own; each is a subtest, its section named
	// "STEP/CASE", and a failed case does not stop the others.
	cases []e2eStep
}

// e2eWant is what one sync must show, as its section of a steps file says.
type e2eWant struct {
	flags        []string            // the global flags of the sync
	code         int                 // its exit code
	stderr       []string            // parts of its stderr
	logs         []map[string]string // JSON log lines, each by some of its fields
	reloads      *float64            // the reload requests the manager has had so far
	lastReloadOK *float64            // whether the manager's last reload worked: 1 or 0
	series       []string            // series the textfile must have, whatever their values
	metrics      map[string]float64  // series of the textfile with their values
}

// e2eReloads is the program a test syncs, as the steps count its reloads.
// An e2eServer also tells whether its last reload worked.
type e2eReloads interface {
	wantReloads(t *testing.T, n float64)
}

// e2eRunSteps runs the steps in order, each a subtest, against the sections
// of testdata/e2e/steps/file. A failed step ends the test, as the next ones
// build on it. m counts the reloads; nil for a manager no step counts.
func e2eRunSteps(t *testing.T, b *e2eButler, m e2eReloads, file string, steps []e2eStep) {
	t.Helper()
	wants := e2eReadSteps(t, file)
	used := map[string]bool{}
	var run func(t *testing.T, section string, s e2eStep)
	run = func(t *testing.T, section string, s e2eStep) {
		t.Helper()
		if s.before != nil {
			s.before(t)
		}
		if s.cases != nil {
			for _, c := range s.cases {
				t.Run(c.name, func(t *testing.T) { run(t, section+"/"+c.name, c) })
			}
			return
		}
		w, ok := wants[section]
		if !ok {
			t.Fatalf("%s has no section %q", file, section)
		}
		used[section] = true
		res := b.sync(t, w.flags...)
		res.wantCode(t, w.code)
		res.wantStderr(t, w.stderr...)
		for _, l := range w.logs {
			res.wantJSONLog(t, l)
		}
		if w.reloads != nil {
			if m == nil {
				t.Fatalf("%s: %q: reloads, but the test counts none", file, section)
			}
			m.wantReloads(t, *w.reloads)
		}
		if w.lastReloadOK != nil {
			srv, ok := m.(*e2eServer)
			if !ok {
				t.Fatalf("%s: %q: last-reload-ok, but the manager is no Prometheus or Alertmanager", file, section)
			}
			srv.wantLastReloadOK(t, *w.lastReloadOK)
		}
		for _, s := range w.series {
			b.wantSeries(t, s)
		}
		b.wantMetrics(t, w.metrics)
		if s.after != nil {
			s.after(t)
		}
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { run(t, s.name, s) }) {
			t.FailNow()
		}
	}
	for section := range wants {
		if !used[section] {
			t.Errorf("%s: section %q is no step of the test", file, section)
		}
	}
}

// e2eReadSteps reads a steps file of testdata/e2e/steps: for each step a
// line "-- NAME --", then one line for each thing its sync must show:
//
//	flags F...         the global flags of the sync, split at spaces
//	exit N             its exit code (every step has one)
//	stderr TEXT        a part of its stderr
//	log K=V...         a JSON log line with these string fields
//	reloads N          the reload requests the manager has had so far
//	last-reload-ok N   1 or 0: whether the manager's last reload worked
//	series KEY         a series the textfile must have (see e2eKey)
//	KEY VALUE          a series of the textfile and its value
//
// Blank lines and lines starting with # are passed over.
func e2eReadSteps(t *testing.T, file string) map[string]*e2eWant {
	t.Helper()
	wants := map[string]*e2eWant{}
	var name string
	var w *e2eWant
	hasExit := map[string]bool{}
	for i, line := range strings.Split(e2eFixture(t, filepath.Join("steps", file)), "\n") {
		bad := func(why string) {
			t.Helper()
			t.Fatalf("%s:%d: %s: %q", file, i+1, why, line)
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if n, ok := strings.CutPrefix(line, "-- "); ok && strings.HasSuffix(n, " --") {
			name = strings.TrimSuffix(n, " --")
			if wants[name] != nil {
				bad("a second section of that name")
			}
			w = &e2eWant{metrics: map[string]float64{}}
			wants[name] = w
			continue
		}
		if w == nil {
			bad("before the first section")
		}
		key, value, ok := strings.Cut(line, " ")
		if !ok {
			bad("want KEY VALUE")
		}
		number := func() float64 {
			t.Helper()
			f, err := strconv.ParseFloat(value, 64)
			if err != nil {
				bad("not a number")
			}
			return f
		}
		switch key {
		case "flags":
			w.flags = strings.Fields(value)
		case "exit":
			w.code = int(number())
			hasExit[name] = true
		case "stderr":
			w.stderr = append(w.stderr, value)
		case "log":
			fields := map[string]string{}
			for _, f := range strings.Fields(value) {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					bad("want log K=V...")
				}
				fields[k] = v
			}
			w.logs = append(w.logs, fields)
		case "reloads":
			n := number()
			w.reloads = &n
		case "last-reload-ok":
			n := number()
			w.lastReloadOK = &n
		case "series":
			w.series = append(w.series, value)
		default:
			if _, dup := w.metrics[key]; dup {
				bad("that series again")
			}
			f, err := strconv.ParseFloat(value, 64)
			if err != nil {
				bad("want a known key, or a series and its value")
			}
			w.metrics[key] = f
		}
	}
	for name := range wants {
		if !hasExit[name] {
			t.Fatalf("%s: section %q has no exit line", file, name)
		}
	}
	if len(wants) == 0 {
		t.Fatalf("%s has no sections", file)
	}
	return wants
}
