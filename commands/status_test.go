package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/internal/nettest"
	"github.com/butler-sre/butler/internal/statetest"
	"github.com/butler-sre/butler/pipeline"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/golden"
	"github.com/butler-sre/butler/pipeline/health"
	"github.com/butler-sre/butler/pipeline/state"
)

var statusNow = time.Date(2025, 11, 22, 3, 0, 0, 0, time.UTC)

func statusAt(d time.Duration) time.Time { return statusNow.Add(-d) }

// statusManagers are four managers, one at each health level.
func statusManagers() []pipeline.ManagerStatus {
	return []pipeline.ManagerStatus{
		{
			Name: "alertmanager", Health: health.OK, Reason: "in step", Since: statusAt(3 * time.Hour),
			LastFetch: statusAt(time.Minute), LastChange: statusAt(50 * time.Hour), LastReload: statusAt(50 * time.Hour),
			Reloaded: true, ReloadStatus: 200, LKG: statusAt(50 * time.Hour),
		},
		{
			Name: "app", Health: health.Warning,
			Reason: "fetches failing since 2025-11-22T02:40:00Z: fetch app.yml: bad response code: 503 | upstream\ndown",
			Since:  statusAt(20 * time.Minute), LastFetch: statusAt(25 * time.Minute), LastChange: statusAt(26 * time.Hour),
			LastReload: statusAt(26 * time.Hour), Reloaded: true, ReloadStatus: 200, LKG: statusAt(26 * time.Hour),
			Events: []state.Event{
				{Time: statusAt(20 * time.Minute), Kind: "fetch-failing", Message: "fetch app.yml: bad response code: 503", Files: []string{"app.yml"}},
				{Time: statusAt(26 * time.Hour), Kind: "applied", Message: "2 files changed", Files: []string{"app.yml", "rules/app.yml"}},
			},
		},
		{
			Name: "nginx", Health: health.Unknown, Reason: "no run of this manager recorded yet",
		},
		{
			Name: "prometheus", Health: health.Critical,
			Reason:    "desired config refused by reload (status 500); last-known-good in place",
			LastFetch: statusAt(time.Minute), LastChange: statusAt(24 * time.Hour),
			LastReload: statusAt(10 * time.Minute), Reloaded: true, ReloadStatus: 500, LKG: statusAt(24 * time.Hour),
			Events: []state.Event{
				{Time: statusAt(10 * time.Minute), Kind: "lkg-restore", Message: "last-known-good put back"},
				{Time: statusAt(10 * time.Minute), Kind: "reload", Message: "reload refused with status 500:\n\terror loading config"},
				{Time: statusAt(10 * time.Minute), Kind: "health", Message: "OK -> CRITICAL"},
			},
		},
	}
}

// statusFixture is a status read at statusNow with the managers of the given levels.
func statusFixture(levels ...health.Level) *pipeline.Status {
	s := &pipeline.Status{Now: statusNow, StateDir: "/var/lib/butler", LastRun: statusAt(42 * time.Second)}
	for _, m := range statusManagers() {
		for _, l := range levels {
			if m.Health == l {
				s.Managers = append(s.Managers, m)
			}
		}
	}
	return s
}

func TestStatusGolden(t *testing.T) {
	all := []health.Level{health.OK, health.Warning, health.Critical, health.Unknown}
	mixed := statusFixture(all...)
	mixed.ExpectedInterval = 5 * time.Minute
	mixed.ConfigFetched = new(bool)
	running := statusFixture(health.OK, health.Warning)
	running.Running = true
	many := statusFixture()
	for i := range 7 {
		m := statusManagers()[3]
		m.Name = fmt.Sprintf("prom%d", i)
		m.Reason = strings.Repeat("a very long reason ", 10)
		many.Managers = append(many.Managers, m)
	}
	noMatch := statusFixture()

	tests := []struct {
		name   string
		mode   statusMode
		report statusReport
	}{
		{"table-mixed.txt", statusModeTable, statusReport{Status: mixed}},
		{"table-running.txt", statusModeTable, statusReport{Status: running}},
		{"table-empty.txt", statusModeTable, statusReport{Status: &pipeline.Status{Now: statusNow, StateDir: "/var/lib/butler"}}},
		{"table-missing.txt", statusModeTable, statusReport{Status: &pipeline.Status{Now: statusNow, StateDir: "/srv/butler"}, Missing: true}},
		{"table-no-match.txt", statusModeTable, statusReport{Status: noMatch, Filter: "web.*"}},
		{"events.txt", statusModeTable, statusReport{Status: mixed, Events: true}},
		{"events-none.txt", statusModeTable, statusReport{Status: statusFixture(health.OK), Events: true}},
		{"json.json", statusModeJSON, statusReport{Status: mixed}},
		{"json-events.json", statusModeJSON, statusReport{Status: statusFixture(health.OK, health.Critical), Events: true}},
		{"json-empty.json", statusModeJSON, statusReport{Status: &pipeline.Status{Now: statusNow, StateDir: "/var/lib/butler"}}},
		{"nagios-ok.txt", statusModeNagios, statusReport{Status: statusFixture(health.OK)}},
		{"nagios-warning.txt", statusModeNagios, statusReport{Status: statusFixture(health.OK, health.Warning)}},
		{"nagios-critical.txt", statusModeNagios, statusReport{Status: mixed}},
		{"nagios-unknown.txt", statusModeNagios, statusReport{Status: statusFixture(health.OK, health.Unknown)}},
		{"nagios-empty.txt", statusModeNagios, statusReport{Status: &pipeline.Status{Now: statusNow, StateDir: "/var/lib/butler"}}},
		{"nagios-many.txt", statusModeNagios, statusReport{Status: many}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := statusWrite(&buf, tt.mode, tt.report); err != nil {
				t.Fatal(err)
			}
			statusGolden(t, tt.name, buf.Bytes())
			if tt.mode == statusModeNagios {
				statusCheckNagiosLine(t, buf.String(), tt.report.Worst(), true)
			}
			if tt.mode == statusModeJSON && !json.Valid(buf.Bytes()) {
				t.Errorf("not valid JSON:\n%s", buf.String())
			}
		})
	}
}

func statusGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Assert(t, filepath.Join("..", "testdata", "status", name), got)
}

// statusCheckNagiosLine checks the plugin format: one line, "BUTLER LEVEL - ",
// then " | " and well-formed perfdata (absent only when status itself failed).
func statusCheckNagiosLine(t *testing.T, out string, level health.Level, perfdata bool) {
	t.Helper()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("not exactly one line: %q", out)
	}
	if prefix := "BUTLER " + level.String() + " - "; !strings.HasPrefix(out, prefix) {
		t.Errorf("does not start with %q: %q", prefix, out)
	}
	if want := map[bool]int{true: 1, false: 0}[perfdata]; strings.Count(out, "|") != want || strings.Count(out, " | ") != want {
		t.Errorf("want %d \" | \": %q", want, out)
	}
	if len(out) > 1024 {
		t.Errorf("line is %d bytes, longer than NRPE passes on", len(out))
	}
	_, perf, _ := strings.Cut(strings.TrimSuffix(out, "\n"), " | ")
	for _, f := range strings.Fields(perf) {
		label, value, ok := strings.Cut(f, "=")
		if !ok || label == "" || strings.TrimRight(value, "0123456789s") != "" {
			t.Errorf("malformed perfdata %q in %q", f, out)
		}
	}
}

func TestStatusDurations(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"zero", time.Time{}, "never"},
		{"seconds", statusAt(42 * time.Second), "42s ago"},
		{"rounded", statusAt(59*time.Second + 600*time.Millisecond), "1m ago"},
		{"minutes", statusAt(12*time.Minute + 30*time.Second), "12m ago"},
		{"whole hours", statusAt(3 * time.Hour), "3h ago"},
		{"hours and minutes", statusAt(3*time.Hour + 10*time.Minute), "3h10m ago"},
		{"days", statusAt(50 * time.Hour), "2d2h ago"},
		{"whole days", statusAt(72 * time.Hour), "3d ago"},
		{"ahead of the clock", statusNow.Add(5 * time.Minute), "in 5m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusAgo(statusNow, tt.t); got != tt.want {
				t.Errorf("statusAgo = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStatusExitCodeMapping(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"warning", statusExit{1}, 1},
		{"unknown", statusExit{3}, 3},
		{"wrapped critical", fmt.Errorf("x: %w", statusExit{2}), 2},
		{"usage without status", errUsage, ExitConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode = %d, want %d", got, tt.want)
			}
		})
	}
}

// statusState builds a state whose managers evaluate, at statusNow, to the given
// levels: "ok", "warning", "critical", "unknown".
func statusState(levels ...string) *state.State {
	st := state.New()
	st.FirstRun = statusAt(24 * time.Hour)
	for i := 5; i >= 1; i-- {
		st.RunStarts = append(st.RunStarts, statusAt(time.Duration(i)*time.Minute))
	}
	for _, l := range levels {
		ms := st.Manager(l)
		ms.Ran = true
		ms.InStep = true
		ms.File(l + ".yml").RemoteTime = statusAt(time.Minute)
		ms.Reloaded, ms.ReloadStatus, ms.ReloadTime = true, 200, statusAt(time.Hour)
		ms.Events = []state.Event{{Time: statusAt(time.Hour), Kind: "applied", Message: "1 file changed", Files: []string{l + ".yml"}}}
		switch l {
		case "warning":
			ms.InStep = false
			ms.FetchFailingSince = statusAt(10 * time.Minute)
			ms.File(l + ".yml").RemoteTime = statusAt(15 * time.Minute)
			ms.Error = "fetch warning.yml: bad response code: 503"
		case "critical":
			ms.InStep = false
			ms.Refused = "abc"
			ms.ReloadStatus = 500
		case "unknown":
			ms.Ran = false
		}
	}
	return st
}

// statusRun runs butler in-process at statusNow.
func statusRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runButlerWith(t, func(d *Deps) { d.Now = func() time.Time { return statusNow } }, args...)
}

func TestStatusMain(t *testing.T) {
	tests := []struct {
		name       string
		state      *state.State // nil: no state file
		corrupt    bool
		args       []string
		code       int
		stdout     string // prefix
		stderr     string // substring; "" asks for an empty stderr
		stdoutHas  string
		stdoutLack string
	}{
		{name: "nagios ok", state: statusState("ok"), args: []string{"--nagios"}, code: 0, stdout: "BUTLER OK - 1 of 1 manager OK, last run 1m ago | managers=1 ok=1"},
		{name: "nagios warning", state: statusState("ok", "warning"), args: []string{"--nagios"}, code: 1, stdout: "BUTLER WARNING - 1 of 2 managers WARNING: warning (fetches failing since"},
		{name: "nagios critical", state: statusState("ok", "warning", "critical"), args: []string{"--nagios"}, code: 2, stdout: "BUTLER CRITICAL - 1 of 3 managers CRITICAL: critical (desired config refused"},
		{name: "nagios unknown", state: statusState("ok", "unknown"), args: []string{"--nagios"}, code: 3, stdout: "BUTLER UNKNOWN - 1 of 2 managers UNKNOWN: unknown (no run of this manager"},
		{name: "nagios no state", args: []string{"--nagios"}, code: 3, stdout: "BUTLER UNKNOWN - no run recorded yet in "},
		{name: "filter selects", state: statusState("ok", "critical"), args: []string{"--nagios", "--manager", "ok|warn.*"}, code: 0, stdout: "BUTLER OK - 1 of 1 manager OK"},
		{name: "filter is anchored", state: statusState("ok", "critical"), args: []string{"--nagios", "--manager", "crit"}, code: 3, stdout: "BUTLER UNKNOWN - no manager matches --manager crit |"},
		{name: "table", state: statusState("ok", "critical"), code: 2, stdout: "MANAGER   HEALTH    SINCE", stdoutHas: "critical  CRITICAL  -      1m ago      never        500 1h ago"},
		{name: "json", state: statusState("ok", "warning"), args: []string{"--json"}, code: 1, stdout: "{\n", stdoutHas: `"health": "WARNING"`, stdoutLack: `"events"`},
		{name: "events", state: statusState("ok", "warning"), args: []string{"--events", "--manager", "warning"}, code: 1, stdout: "TIME                  MANAGER  KIND     MESSAGE\n2025-11-22T02:00:00Z  warning  applied  1 file changed [warning.yml]\n", stdoutLack: "ok.yml"},
		{name: "corrupt state nagios", corrupt: true, args: []string{"--nagios"}, code: 3, stdout: "BUTLER UNKNOWN - state file ", stdoutHas: "is unreadable"},
		{name: "corrupt state table", corrupt: true, code: 3, stderr: "is unreadable"},
		{name: "corrupt state json", corrupt: true, args: []string{"--json"}, code: 3, stdout: `{"health":"UNKNOWN","error":"state file `},
		{name: "bad regex nagios", state: statusState("ok"), args: []string{"--nagios", "--manager", "("}, code: 3, stdout: `BUTLER UNKNOWN - --manager "(" is not a regular expression`},
		{name: "bad regex table", state: statusState("ok"), args: []string{"--manager", "("}, code: 3, stderr: "butler: status: --manager \"(\" is not a regular expression"},
		{name: "json and nagios", state: statusState("ok"), args: []string{"--nagios", "--json"}, code: 3, stdout: "BUTLER UNKNOWN - usage: --json and --nagios cannot be combined"},
		{name: "nagios and events", state: statusState("ok"), args: []string{"--nagios", "--events"}, code: 3, stdout: "BUTLER UNKNOWN - usage: --events cannot"},
		{name: "unknown flag", state: statusState("ok"), args: []string{"--nagios", "--frob"}, code: 3, stdout: "BUTLER UNKNOWN - usage: ", stdoutHas: "frob"},
		{name: "unknown flag table", state: statusState("ok"), args: []string{"--frob"}, code: 3, stderr: "frob"},
		{name: "stray argument", state: statusState("ok"), args: []string{"--nagios", "now"}, code: 3, stdout: "BUTLER UNKNOWN - usage: status takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			fstest.Mkdir(t, dir, 0o700)
			if tt.state != nil {
				statetest.Save(t, dir, tt.state)
			}
			statePath := filepath.Join(dir, "state.json")
			if tt.corrupt {
				fstest.WriteFile(t, statePath, "{not json", 0o600)
			}
			before := fstest.Tree(t, dir)
			code, stdout, stderr := statusRun(t, append([]string{"--state-dir", dir, "status"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if !strings.HasPrefix(stdout, tt.stdout) {
				t.Errorf("stdout does not start with %q:\n%s", tt.stdout, stdout)
			}
			if !strings.Contains(stdout, tt.stdoutHas) {
				t.Errorf("stdout does not contain %q:\n%s", tt.stdoutHas, stdout)
			}
			if tt.stdoutLack != "" && strings.Contains(stdout, tt.stdoutLack) {
				t.Errorf("stdout contains %q:\n%s", tt.stdoutLack, stdout)
			}
			if tt.stderr == "" && stderr != "" {
				t.Errorf("stderr not empty: %s", stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q: %s", tt.stderr, stderr)
			}
			if strings.Contains(tt.name, "nagios") && !strings.Contains(tt.name, " and ") {
				statusCheckNagiosLine(t, stdout, health.Level(code), !tt.corrupt && !strings.Contains(tt.name, "regex"))
			}
			// status changes nothing, not even a corrupt state file.
			fstest.SameTree(t, dir, before)
			for _, name := range fstest.Names(t, dir) {
				if strings.Contains(name, "corrupt") {
					t.Errorf("status moved the state file aside: %s", name)
				}
			}
		})
	}
}

func TestStatusJSONShape(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	statetest.Save(t, dir, statusState("ok", "critical"))
	code, stdout, _ := statusRun(t, "--state-dir", dir, "status", "--json", "--events")
	if code != 2 {
		t.Fatalf("exit %d", code)
	}
	var got struct {
		Now      string
		StateDir string   `json:"state_dir"`
		LastRun  *string  `json:"last_run"`
		Interval *float64 `json:"expected_interval_seconds"`
		Config   *bool    `json:"config_fetched"`
		Health   string
		Managers []struct {
			Name, Health string
			Since        *string
			Reload       *int `json:"reload_status"`
			Events       []struct{ Kind string }
		}
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if got.Now != "2025-11-22T03:00:00Z" || got.StateDir != dir || got.Health != "CRITICAL" || got.Interval != nil || got.Config != nil {
		t.Errorf("top level = %+v", got)
	}
	if got.LastRun == nil || *got.LastRun != "2025-11-22T02:59:00Z" {
		t.Errorf("last_run = %v", got.LastRun)
	}
	if len(got.Managers) != 2 || got.Managers[0].Name != "critical" || got.Managers[1].Health != "OK" {
		t.Fatalf("managers = %+v", got.Managers)
	}
	if r := got.Managers[0].Reload; r == nil || *r != 500 {
		t.Errorf("reload_status = %v, want 500", r)
	}
	if len(got.Managers[1].Events) != 1 || got.Managers[1].Events[0].Kind != "applied" {
		t.Errorf("events = %+v", got.Managers[1].Events)
	}
}

func TestStatusStateDirSources(t *testing.T) {
	t.Run("from a local configuration", func(t *testing.T) {
		base := t.TempDir()
		dir := filepath.Join(base, "state")
		statetest.Save(t, dir, statusState("warning"))
		config := filepath.Join(base, "butler.toml")
		fstest.WriteFile(t, config, fmt.Sprintf("[butler]\nstate_dir = %q\n", dir), 0o600)
		code, stdout, stderr := statusRun(t, "--config", config, "status", "--nagios")
		if code != 1 || !strings.HasPrefix(stdout, "BUTLER WARNING - ") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("--state-dir wins over the configuration", func(t *testing.T) {
		base := t.TempDir()
		dir := filepath.Join(base, "state")
		statetest.Save(t, dir, statusState("ok"))
		config := filepath.Join(base, "butler.toml")
		fstest.WriteFile(t, config, fmt.Sprintf("[butler]\nstate_dir = %q\n", filepath.Join(base, "other")), 0o600)
		code, stdout, _ := statusRun(t, "--config", config, "--state-dir", dir, "status", "--nagios")
		if code != 0 {
			t.Errorf("exit %d, stdout %q", code, stdout)
		}
	})
	t.Run("missing state directory is not created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nope")
		code, stdout, _ := statusRun(t, "--state-dir", dir, "status")
		if code != 3 || !strings.Contains(stdout, "does not exist") {
			t.Errorf("exit %d, stdout %q", code, stdout)
		}
		if fstest.Exists(t, dir) {
			t.Error("status created the state directory")
		}
	})
	t.Run("a configuration URL is never fetched", func(t *testing.T) {
		srv := nettest.NewFiles(t, map[string]string{"/butler.toml": "[butler]\n"})
		code, stdout, stderr := statusRun(t, "--config", srv.URL+"/butler.toml", "status", "--nagios")
		if n := srv.Log.Count(); n != 0 {
			t.Errorf("status fetched the configuration URL %d times", n)
		}
		if !strings.HasPrefix(stdout, "BUTLER ") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		if !fstest.Exists(t, config.DefaultStateDir) && !strings.Contains(stderr, "--state-dir") {
			t.Errorf("no hint to give --state-dir: %q", stderr)
		}
	})
	t.Run("works while a sync holds the lock", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		statetest.Save(t, dir, statusState("ok"))
		sd, err := state.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer sd.Close()
		code, stdout, _ := statusRun(t, "--state-dir", dir, "status", "--nagios")
		if code != 0 || !strings.HasPrefix(stdout, "BUTLER OK") {
			t.Errorf("exit %d, stdout %q", code, stdout)
		}
	})
}
