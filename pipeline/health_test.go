package pipeline

import (
	"strings"
	"testing"
	"time"
)

// healthStarts returns n run starts every interval, the last at last.
func healthStarts(last time.Time, interval time.Duration, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = last.Add(-time.Duration(n-1-i) * interval)
	}
	return out
}

func TestExpectedIntervalAndWindows(t *testing.T) {
	now := time.Unix(1_763_780_000, 0)
	tests := []struct {
		name       string
		starts     []time.Time
		configured Windows
		interval   time.Duration
		known      bool
		want       Windows
	}{
		{"no runs", nil, Windows{}, 0, false, Windows{15 * time.Minute, time.Hour}},
		{"five intervals: fixed defaults", healthStarts(now, time.Minute, 6), Windows{}, 0, false, Windows{15 * time.Minute, time.Hour}},
		{"six intervals: auto", healthStarts(now, time.Minute, 7), Windows{}, time.Minute, true, Windows{90 * time.Second, 3 * time.Minute}},
		{"hourly cron", healthStarts(now, time.Hour, 10), Windows{}, time.Hour, true, Windows{90 * time.Minute, 3 * time.Hour}},
		{"configured windows win", healthStarts(now, time.Minute, 10), Windows{10 * time.Minute, 30 * time.Minute}, time.Minute, true, Windows{10 * time.Minute, 30 * time.Minute}},
		{"only crit configured", healthStarts(now, time.Minute, 10), Windows{CritAfter: 30 * time.Minute}, time.Minute, true, Windows{90 * time.Second, 30 * time.Minute}},
		{"median ignores one long gap", append(healthStarts(now.Add(-2*time.Hour), time.Minute, 7), now), Windows{}, time.Minute, true, Windows{90 * time.Second, 3 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := ExpectedInterval(tt.starts)
			if d != tt.interval || ok != tt.known {
				t.Errorf("ExpectedInterval = %v %v, want %v %v", d, ok, tt.interval, tt.known)
			}
			if got := tt.configured.Resolve(tt.starts); got != tt.want {
				t.Errorf("Resolve = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEvaluateHealth(t *testing.T) {
	now := time.Unix(1_763_780_000, 0)
	first := now.Add(-24 * time.Hour)
	minutely := healthStarts(now.Add(-30*time.Second), time.Minute, 10) // auto windows 90s / 3m
	fresh := func(mod func(ms *ManagerState)) *ManagerState {
		ms := &ManagerState{Ran: true, InStep: true, Files: map[string]*FileState{
			"a.yml": {RemoteTime: now.Add(-30 * time.Second)},
			"b.yml": {RemoteTime: now.Add(-30 * time.Second)},
		}}
		if mod != nil {
			mod(ms)
		}
		return ms
	}
	tests := []struct {
		name   string
		in     HealthInput
		level  Level
		reason string
	}{
		{"no run recorded", HealthInput{Now: now}, LevelUnknown, "no run recorded"},
		{"manager never ran", HealthInput{Now: now, FirstRun: first, RunStarts: minutely}, LevelUnknown, "no run of this manager"},
		{"startup grace", HealthInput{Now: now, FirstRun: now.Add(-time.Minute), RunStarts: minutely[9:], StartupGrace: 5 * time.Minute, Manager: fresh(nil)}, LevelUnknown, "startup_grace"},
		{"after startup grace", HealthInput{Now: now, FirstRun: now.Add(-6 * time.Minute), RunStarts: minutely[9:], StartupGrace: 5 * time.Minute, Manager: fresh(nil)}, LevelOK, "in step"},
		{"ok", HealthInput{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(nil)}, LevelOK, "in step"},
		{"refused, LKG in place", HealthInput{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(ms *ManagerState) {
			ms.Refused, ms.ReloadStatus, ms.InStep = "h", 500, false
		})}, LevelCritical, "refused by reload (status 500)"},
		{"stuck run", HealthInput{Now: now, FirstRun: first, RunStarts: minutely, Stuck: true, StuckSince: now.Add(-time.Hour), Manager: fresh(nil)}, LevelCritical, "held the lock"},
		{"no run for longer than crit (auto)", HealthInput{Now: now.Add(4 * time.Minute), FirstRun: first, RunStarts: minutely, Manager: fresh(nil)}, LevelCritical, "no run for 4m"},
		{"no run for longer than warn (auto)", HealthInput{Now: now.Add(90 * time.Second), FirstRun: first, RunStarts: minutely, Manager: fresh(func(ms *ManagerState) {
			for _, f := range ms.Files {
				f.RemoteTime = now.Add(90 * time.Second)
			}
		})}, LevelWarning, "no run for 2m (warn_after 1m30s)"},
		{"fixed windows before six intervals", HealthInput{Now: now.Add(10 * time.Minute), FirstRun: first, RunStarts: minutely[5:], Manager: fresh(func(ms *ManagerState) {
			for _, f := range ms.Files {
				f.RemoteTime = now.Add(10 * time.Minute)
			}
		})}, LevelOK, "in step"},
		{"per-manager windows", HealthInput{Now: now.Add(10 * time.Minute), FirstRun: first, RunStarts: minutely[5:], Windows: Windows{5 * time.Minute, 30 * time.Minute}, Manager: fresh(func(ms *ManagerState) {
			for _, f := range ms.Files {
				f.RemoteTime = now.Add(10 * time.Minute)
			}
		})}, LevelWarning, "warn_after 5m"},
		{"fetch failing, last success inside crit", HealthInput{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(ms *ManagerState) {
			ms.FetchFailingSince, ms.InStep, ms.Error = now.Add(-30*time.Second), false, "manager m: fetch: a.yml: http status 503"
			ms.Files["a.yml"].RemoteTime = now.Add(-2 * time.Minute)
		})}, LevelWarning, "fetches failing since"},
		{"no successful fetch for longer than crit", HealthInput{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(ms *ManagerState) {
			ms.FetchFailingSince, ms.InStep, ms.Error = now.Add(-10*time.Minute), false, "http status 503"
			ms.Files["a.yml"].RemoteTime = now.Add(-10 * time.Minute)
		})}, LevelCritical, "no successful fetch for 10m (crit_after 3m0s): http status 503"},
		{"never fetched, first run long ago", HealthInput{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(ms *ManagerState) {
			ms.FetchFailingSince, ms.InStep = first, false
			ms.Files["b.yml"].RemoteTime = time.Time{}
		})}, LevelCritical, "no successful fetch since the first run"},
		{"reload timed out", HealthInput{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(ms *ManagerState) {
			ms.ReloadTimedOut, ms.InStep = true, false
		})}, LevelWarning, "timed out"},
		{"other failure", HealthInput{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(ms *ManagerState) {
			ms.InStep, ms.Error = false, "manager m: render: a.yml: missing variable \"dc\""
		})}, LevelWarning, "missing variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := EvaluateHealth(tt.in)
			if h.Level != tt.level || !strings.Contains(h.Reason, tt.reason) {
				t.Errorf("got %s %q, want %s containing %q", h.Level, h.Reason, tt.level, tt.reason)
			}
		})
	}
}

func TestWorst(t *testing.T) {
	tests := []struct {
		in   []Level
		want Level
	}{
		{nil, LevelUnknown},
		{[]Level{LevelOK}, LevelOK},
		{[]Level{LevelOK, LevelUnknown}, LevelUnknown},
		{[]Level{LevelUnknown, LevelWarning}, LevelWarning},
		{[]Level{LevelCritical, LevelWarning, LevelUnknown}, LevelCritical},
	}
	for _, tt := range tests {
		if got := Worst(tt.in...); got != tt.want {
			t.Errorf("Worst(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	tests := map[time.Duration]string{
		42 * time.Second:               "42s",
		12*time.Minute + 5*time.Second: "12m",
		3*time.Hour + 10*time.Minute:   "3h10m",
		2 * time.Hour:                  "2h",
		50 * time.Hour:                 "2d2h",
		72 * time.Hour:                 "3d",
	}
	for d, want := range tests {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
