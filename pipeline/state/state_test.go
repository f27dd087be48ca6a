package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/casefile"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/health"
	"github.com/butler-sre/butler/pipeline/write"
)

// openTemp opens a new state directory in the test's temporary directory,
// closed when the test ends.
func openTemp(t testing.TB) *Dir {
	t.Helper()
	sd, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	return sd
}

func TestStateRoundTrip(t *testing.T) {
	sd := openTemp(t)
	now := time.Unix(1_763_780_000, 0).UTC()
	st := New()
	ms := st.Manager("prom")
	ms.Reloaded, ms.ReloadStatus, ms.ReloadTime, ms.Refused, ms.ReloadsTotal = true, 500, now, "abc", 7
	ms.File("a.yml").RemoteStatus = 404
	if err := sd.Save(st); err != nil {
		t.Fatal(err)
	}
	got, warning, err := sd.Load(now)
	if err != nil || warning != nil {
		t.Fatalf("load: %v %v", err, warning)
	}
	g := got.Managers["prom"]
	if !g.Reloaded || g.ReloadStatus != 500 || !g.ReloadTime.Equal(now) || g.Refused != "abc" || g.ReloadsTotal != 7 ||
		g.Files["a.yml"].RemoteStatus != 404 {
		t.Errorf("round trip lost values: %+v", g)
	}
	info, err := os.Stat(filepath.Join(sd.Path, "state.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode: %v %v", info, err)
	}
}

// TestStateSaveReadsAsEncodingJSON: the state file reads back, by
// encoding/json and by Parse, as the state saved, also for the strings and
// values where encoders differ (HTML, U+2028, invalid UTF-8, a zone, a
// duration, nil and empty collections). Only invalid UTF-8 is written
// otherwise (U+FFFD itself, not its escape): the same string once read.
func TestStateSaveReadsAsEncodingJSON(t *testing.T) {
	sd := openTemp(t)
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	st := New()
	st.Run = RunState{Start: at, Duration: 1500 * time.Millisecond, Success: true}
	st.RunStarts = []time.Time{}
	st.Owner = "<a href=\"x\">&amp;</a>\u2028\u2029 \xff\xfe é"
	st.Notify.Failures = map[string]int64{"webhook": 3, "email": 0}
	ms := st.Manager("prom")
	ms.Error, ms.Owned = "line\nbreak\ttab \x00 \x7f", []string{"b", "a"}
	ms.Events = []Event{{Time: at, Kind: "applied", Message: "<>&", Files: nil}}
	fs := ms.File("z/a.yml")
	fs.SignedAt, fs.Env, fs.BytesTotal = at, []string{}, 1<<63
	ms.File("b.yml").Disk.Size = -1

	if err := sd.Save(st); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(sd.Path, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data, []byte("}\n")) || bytes.Count(data, []byte("\n")) != 1 {
		t.Errorf("state file is not one line of JSON and a newline:\n%s", data)
	}
	// What encoding/json reads of its own output of st.
	want := encodingJSON(t, readEncodingJSON(t, encodingJSON(t, st)))
	byParse, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*State{"encoding/json": readEncodingJSON(t, data), "Parse": byParse} {
		if g := encodingJSON(t, got); !bytes.Equal(g, want) {
			t.Errorf("read by %s:\n%s\nwant:\n%s", name, g, want)
		}
	}
}

// readEncodingJSON is data read by encoding/json, normalized as Parse does.
func readEncodingJSON(t *testing.T, data []byte) *State {
	t.Helper()
	st := New()
	if err := json.Unmarshal(data, st); err != nil {
		t.Fatal(err)
	}
	return normalize(st)
}

// encodingJSON is st as encoding/json writes it.
func encodingJSON(t *testing.T, st *State) []byte {
	t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestStateUnreadableIsMovedAside(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{name: "not json", content: "{"},
		{name: "no version field", content: `{"managers": {}}`},
		{name: "wrong types", content: `{"version": 1, "managers": {"m": {"reloads_total": "many"}}}`},
		{name: "not an object", content: `[1, 2]`},
		{name: "empty file", content: ``},
		{name: "binary garbage", content: "\x00\x01\x02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := openTemp(t)
			p := filepath.Join(sd.Path, "state.json")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			now := time.Unix(1_700_000_000, 0)
			st, warning, err := sd.Load(now)
			if err != nil || warning == nil || len(st.Managers) != 0 {
				t.Fatalf("got %v, warning %v, err %v", st, warning, err)
			}
			if !strings.Contains(warning.Error(), "state.json.corrupt-1700000000") {
				t.Errorf("warning does not say where it went: %v", warning)
			}
			if b, err := os.ReadFile(p + ".corrupt-1700000000"); err != nil || string(b) != tt.content {
				t.Errorf("not moved aside intact: %v", err)
			}
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("state.json still there: %v", err)
			}
			// The run goes on: the next save and load work.
			if err := sd.Save(st); err != nil {
				t.Fatal(err)
			}
			if _, warning, err := sd.Load(now); err != nil || warning != nil {
				t.Errorf("load after save: %v, %v", warning, err)
			}
		})
	}
}

// TestStateNewerVersionRefused: a state file of a newer butler is left as it
// is and the run refuses, naming both versions (SPEC section 6).
func TestStateNewerVersionRefused(t *testing.T) {
	sd := openTemp(t)
	p := filepath.Join(sd.Path, "state.json")
	content := `{"version": 99, "managers": {"m": {"reloads_total": 7}}}`
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := sd.Load(time.Unix(1_700_000_000, 0))
	if !errors.Is(err, ErrNewer) || !strings.Contains(err.Error(), "version 99") || !strings.Contains(err.Error(), "up to 2") {
		t.Fatalf("Load = %v, want ErrNewer naming both versions", err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != content {
		t.Errorf("the newer state file was touched: %q, %v", b, err)
	}
}

// TestStateMigratesEarlierReleases loads state files in the shapes earlier
// releases wrote (testdata/state) and keeps every counter, hash, refusal and
// the first-run time; the list of pending changes becomes every channel's.
func TestStateMigratesEarlierReleases(t *testing.T) {
	for _, name := range []string{"v1-pending-list.json", "v1-pending-map.json"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "state", name))
			if err != nil {
				t.Fatal(err)
			}
			st, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			ms := st.Managers["prometheus"]
			if st.Version != Version || ms == nil || ms.ReloadsTotal != 41 || ms.ReloadFailuresTotal != 3 ||
				ms.LKGRestoresTotal != 2 || ms.Refused != "9f2c" || ms.Applied != "77ab" ||
				ms.Files["prometheus.yml"].FetchesTotal != 1440 || !st.FirstRun.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
				t.Fatalf("migration lost values: %+v %+v", st, ms)
			}
			for _, ch := range []string{"webhook", "email"} {
				if p := st.Notify.Pending[ch]; len(p) != 1 || p[0].Manager != "prometheus" {
					t.Errorf("pending of %s = %+v, want the one change", ch, p)
				}
			}
			if st.Notify.Failures["webhook"] != 5 {
				t.Errorf("notify failures lost: %+v", st.Notify.Failures)
			}
		})
	}
}

func TestStateDirectoryIsMovedAside(t *testing.T) {
	sd := openTemp(t)
	p := filepath.Join(sd.Path, "state.json")
	if err := os.MkdirAll(filepath.Join(p, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	st, warning, err := sd.Load(time.Unix(1_700_000_000, 0))
	if err != nil || warning == nil || st == nil || len(st.Managers) != 0 {
		t.Fatalf("got %v, warning %v, err %v; want an empty state and a warning", st, warning, err)
	}
	for _, want := range []string{"directory", "state.json.corrupt-1700000000"} {
		if !strings.Contains(warning.Error(), want) {
			t.Errorf("warning %q does not say %q", warning, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(p+".corrupt-1700000000", "inside")); err != nil || !fi.IsDir() {
		t.Errorf("the directory was not moved aside whole: %v", err)
	}
	if err := sd.Save(st); err != nil {
		t.Errorf("save after the directory went: %v", err)
	}
}

// TestStateMovedAsideTwiceInOneSecond: a second corrupt file in the same
// second gets a name of its own, never overwriting the first.
func TestStateMovedAsideTwiceInOneSecond(t *testing.T) {
	sd := openTemp(t)
	p := filepath.Join(sd.Path, "state.json")
	now := time.Unix(1_700_000_000, 0)
	want := map[string]string{ // content -> where it must go
		"first {":  p + ".corrupt-1700000000",
		"second {": p + ".corrupt-1700000000-1",
		"third {":  p + ".corrupt-1700000000-2",
	}
	for _, content := range []string{"first {", "second {", "third {"} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, warning, err := sd.Load(now.Add(500 * time.Millisecond))
		if err != nil || warning == nil {
			t.Fatalf("load %q: %v, %v", content, warning, err)
		}
		if !strings.HasSuffix(warning.Error(), want[content]+", starting from empty state") {
			t.Errorf("warning %q does not name %s", warning, want[content])
		}
	}
	for content, aside := range want {
		if b, err := os.ReadFile(aside); err != nil || string(b) != content {
			t.Errorf("%s: %q, %v; want %q", filepath.Base(aside), b, err, content)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		managers []string          // the managers kept, sorted
		files    map[string]string // manager -> its files kept, sorted and joined
		errPart  string
	}{
		{name: "null manager and file entries dropped",
			data:     `{"version": 1, "managers": {"gone": null, "m": {"files": {"x": null, "y": {"remote_status": 200}}}}}`,
			managers: []string{"m"}, files: map[string]string{"m": "y"}},
		{name: "null managers", data: `{"version": 1, "managers": null}`},
		{name: "no managers", data: `{"version": 1}`},
		{name: "null files", data: `{"version": 1, "managers": {"m": {"files": null}}}`,
			managers: []string{"m"}, files: map[string]string{"m": ""}},
		{name: "unknown fields ignored", data: `{"version": 1, "later": true, "managers": {"m": {"files": {}, "new_field": 1}}}`,
			managers: []string{"m"}, files: map[string]string{"m": ""}},
		// A file without a version field is not butler state: it is moved aside.
		{name: "no version", data: `{"managers": {"m": {"files": {}}}}`, errPart: "no version field"},
		{name: "null", data: `null`, errPart: "no version field"},
		{name: "newer version", data: `{"version": 3, "managers": {}}`, errPart: "version 3, this butler reads versions up to 2"},
		{name: "older version", data: `{"version": 0, "managers": {}}`, errPart: "version 0"},
		{name: "not json", data: `{`, errPart: "unexpected end"},
	}
	cfg := &config.Config{Managers: []*config.Manager{{Name: "m", Files: []*config.File{{Path: "y"}}}}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Parse([]byte(tt.data))
			if casefile.CheckErr(t, err, tt.errPart, "Parse") {
				return
			}
			if st.Managers == nil {
				t.Fatal("Managers is nil")
			}
			if got := slices.Sorted(maps.Keys(st.Managers)); !slices.Equal(got, tt.managers) {
				t.Errorf("managers %q, want %q", got, tt.managers)
			}
			// What the run and status do with a parsed state must not trip
			// on what was dropped.
			for _, ms := range st.Managers {
				_ = ms.Facts()
			}
			for name, want := range tt.files {
				ms := st.Managers[name]
				if got := strings.Join(slices.Sorted(maps.Keys(ms.Files)), " "); got != want {
					t.Errorf("%s files %q, want %q", name, got, want)
				}
				ms.File("z").RemoteStatus = 1
			}
			st.Prune(cfg)
			_ = st.Judge(cfg, time.Unix(1_700_000_000, 0))
			_ = st.Problems(cfg)
		})
	}
}

func TestRead(t *testing.T) {
	tests := []struct {
		name    string
		content *string // nil: no state file
		wantNil bool
		errPart string
	}{
		{name: "no state file", wantNil: true},
		{name: "valid", content: ptr(`{"version": 1, "managers": {"m": {"files": {}}}}`)},
		{name: "corrupt", content: ptr(`{`), errPart: "the next sync moves it aside"},
		{name: "newer version", content: ptr(`{"version": 99}`), errPart: "version 99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, FileName)
			if tt.content != nil {
				if err := os.WriteFile(p, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			st, err := Read(dir)
			switch {
			case tt.errPart != "":
				if err == nil || !strings.Contains(err.Error(), tt.errPart) || !strings.Contains(err.Error(), p) {
					t.Errorf("Read = %v, want an error naming %s and containing %q", err, p, tt.errPart)
				}
				// Read only reads: the file stays for the next sync.
				if b, err := os.ReadFile(p); err != nil || string(b) != *tt.content {
					t.Errorf("state file changed by Read: %q, %v", b, err)
				}
			case err != nil:
				t.Fatal(err)
			case tt.wantNil != (st == nil):
				t.Errorf("Read = %v, want nil %v", st, tt.wantNil)
			case st != nil && st.Managers["m"] == nil:
				t.Errorf("Read lost the manager: %+v", st)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 1 {
				t.Errorf("Read wrote into the state directory: %v", entries)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestStatePrune(t *testing.T) {
	st := New()
	st.Manager("kept").File("a.yml")
	st.Manager("kept").File("gone.yml")
	st.Manager("removed").File("a.yml")
	cfg := &config.Config{Managers: []*config.Manager{
		{Name: "kept", Files: []*config.File{{Path: "a.yml"}, {Path: "new.yml"}}},
		{Name: "never ran"},
	}}
	st.Prune(cfg)
	if got := slices.Sorted(maps.Keys(st.Managers)); !slices.Equal(got, []string{"kept"}) {
		t.Errorf("managers %q, want [kept]", got)
	}
	if got := slices.Sorted(maps.Keys(st.Managers["kept"].Files)); !slices.Equal(got, []string{"a.yml"}) {
		t.Errorf("files %q, want [a.yml]", got)
	}
}

func TestMarkWriting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	sd, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if sd.Writing("prom") {
		t.Error("Writing before MarkWriting")
	}
	if err := sd.ClearWriting("prom"); err != nil {
		t.Errorf("ClearWriting without a mark: %v", err)
	}
	for range 2 { // marking twice is fine
		if err := sd.MarkWriting("prom"); err != nil {
			t.Fatal(err)
		}
	}
	if !sd.Writing("prom") || sd.Writing("nginx") {
		t.Errorf("Writing(prom) = %v, Writing(nginx) = %v; want true, false", sd.Writing("prom"), sd.Writing("nginx"))
	}
	// The mark outlives the run that made it: that is its point.
	if err := sd.Close(); err != nil {
		t.Fatal(err)
	}
	sd, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if !sd.Writing("prom") {
		t.Error("the mark did not survive the run")
	}
	if err := sd.ClearWriting("prom"); err != nil {
		t.Fatal(err)
	}
	if sd.Writing("prom") {
		t.Error("Writing after ClearWriting")
	}
}

func TestMarker(t *testing.T) {
	dir := t.TempDir()
	sd, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if _, ok := ReadMarker(dir); ok {
		t.Error("a marker before WriteMarker")
	}
	start := time.Unix(1_700_000_000, 0).UTC()
	if err := sd.WriteMarker(start, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	m, ok := ReadMarker(dir)
	if !ok || m.PID != os.Getpid() || !m.Start.Equal(start) || m.Timeout != 20*time.Second {
		t.Errorf("ReadMarker = %+v, %v; want this process, its start and timeout", m, ok)
	}
	if err := sd.RemoveMarker(); err != nil {
		t.Fatal(err)
	}
	if _, ok := ReadMarker(dir); ok {
		t.Error("a marker after RemoveMarker")
	}
	if err := sd.RemoveMarker(); err != nil {
		t.Errorf("RemoveMarker without a marker: %v", err)
	}
	for name, content := range map[string]string{
		"a killed run's": `{"pid": 1073741824, "start": "2023-11-14T22:13:20Z", "timeout": 1}`, // above any pid_max
		"unreadable":     `{`,
		"without a pid":  `{"start": "2023-11-14T22:13:20Z"}`,
		"a negative pid": `{"pid": -1}`,
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, markerName), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if m, ok := ReadMarker(dir); ok {
				t.Errorf("ReadMarker = %+v, want it ignored", m)
			}
		})
	}
}

func TestStateHistory(t *testing.T) {
	t.Run("events beyond the limit drop the oldest", func(t *testing.T) {
		var ms ManagerState
		for i := range 5 {
			ms.AddEvent(3, Event{Kind: EventApplied, Message: strconv.Itoa(i)})
		}
		var got []string
		for _, e := range ms.Events {
			got = append(got, e.Message)
		}
		if !slices.Equal(got, []string{"2", "3", "4"}) {
			t.Errorf("events %q, want the three newest", got)
		}
	})
	t.Run("run starts bounded, first run kept", func(t *testing.T) {
		st := New()
		st.Manager("m")
		cfg := &config.Config{Managers: []*config.Manager{{Name: "m", Windows: config.Windows{WarnAfter: time.Minute}}}}
		cfg.Health.StartupGrace = time.Hour
		first := time.Unix(1_700_000_000, 0)
		for i := range health.RunStartsKept + 5 {
			st.RecordStart(first.Add(time.Duration(i)*time.Minute), cfg)
		}
		if !st.FirstRun.Equal(first) || len(st.RunStarts) != health.RunStartsKept ||
			!st.RunStarts[len(st.RunStarts)-1].Equal(first.Add(time.Duration(health.RunStartsKept+4)*time.Minute)) {
			t.Errorf("first run %v, %d starts ending %v", st.FirstRun, len(st.RunStarts), st.RunStarts[len(st.RunStarts)-1])
		}
		if st.StartupGrace != time.Hour || st.Managers["m"].Windows.WarnAfter != time.Minute {
			t.Errorf("startup grace %v, windows %+v; want those of the configuration", st.StartupGrace, st.Managers["m"].Windows)
		}
	})
	t.Run("judge records changes", func(t *testing.T) {
		st := New()
		cfg := &config.Config{Managers: []*config.Manager{{Name: "a"}, {Name: "b"}}}
		cfg.Health.History = 10
		now := time.Unix(1_700_000_000, 0)
		st.RecordStart(now, cfg)
		for _, name := range []string{"a", "b"} {
			ms := st.Manager(name)
			ms.Ran, ms.InStep = true, true
			ms.File("x").RemoteTime = now
		}
		if changes := st.Judge(cfg, now); len(changes) != 0 {
			t.Errorf("first judgement gave changes %+v", changes)
		}
		if len(st.Problems(cfg)) != 0 {
			t.Errorf("problems %+v, want none", st.Problems(cfg))
		}
		st.Managers["b"].InStep, st.Managers["b"].Error = false, "render failed"
		changes := st.Judge(cfg, now.Add(time.Second))
		if len(changes) != 1 || changes[0].Manager != "b" || changes[0].From != health.OK || changes[0].To != health.Warning {
			t.Fatalf("changes %+v, want b OK -> WARNING", changes)
		}
		problems := st.Problems(cfg)
		if len(problems) != 1 || problems[0].Manager != "b" || problems[0].Reason != "render failed" || !problems[0].Since.Equal(now.Add(time.Second)) {
			t.Errorf("problems %+v, want b since the change", problems)
		}
		if n := len(st.Managers["b"].Events); n != 2 {
			t.Errorf("b has %d events, want the first judgement and the change", n)
		}
	})
}

func TestStateDirLockAndTmp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	sd, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("second open: %v, want ErrLocked", err)
	}
	tmp, err := sd.TmpDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "leftover"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if tmp, err = sd.TmpDir(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("leftovers of an interrupted run kept: %v", entries)
	}
	if err := sd.Close(); err != nil {
		t.Fatal(err)
	}
	sd, err = Open(dir)
	if err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	sd.Close()
}

// benchState is the state of a no-change run of one manager of n files.
func benchState(n int) *State {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	st := New()
	st.Run = RunState{Start: at, Duration: 60 * time.Millisecond, Success: true, LastSuccess: at}
	ms := st.Manager("m")
	ms.Ran, ms.InStep = true, true
	for i := range n {
		fs := ms.File(fmt.Sprintf("f%d.yml", i))
		*fs = FileState{
			Fetched: true, RemoteStatus: 304, RemoteTime: at, Rendered: true, Mustache: true, Method: "yml",
			Valid: true, Written: true, WriteOK: true, FetchesTotal: 24, NotModifiedTotal: 23, BytesTotal: 4070,
			Input: strings.Repeat("7", 64), Output: strings.Repeat("a", 64), Env: []string{"_"},
			Disk: write.Stat{Size: 4070, MtimeNs: at.UnixNano(), CtimeNs: at.UnixNano(), Ino: uint64(10_000_000 + i), Mode: 0o644},
		}
	}
	return st
}

// BenchmarkStateParse1000 and BenchmarkStateSave1000: the state of 1,000
// files, read and written as every run does; the read also by encoding/json
// alone, as before Parse had its fast path.
func BenchmarkStateParse1000(b *testing.B) {
	data, err := json.Marshal(benchState(1000))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		parse func([]byte) (*State, error)
	}{{"Parse", Parse}, {"encoding-json", parseV1}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.parse(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkStateSave1000(b *testing.B) {
	sd := openTemp(b)
	st := benchState(1000)
	b.ReportAllocs()
	for b.Loop() {
		if err := sd.Save(st); err != nil {
			b.Fatal(err)
		}
	}
}
