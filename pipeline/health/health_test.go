package health

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/pipeline/config"
)

// healthStarts returns n run starts every interval, the last at last.
func healthStarts(last time.Time, interval time.Duration, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = last.Add(-time.Duration(n-1-i) * interval)
	}
	return out
}

// healthGaps returns run starts separated by the given intervals, the last at last.
func healthGaps(last time.Time, intervals ...time.Duration) []time.Time {
	out := []time.Time{last}
	for i := len(intervals) - 1; i >= 0; i-- {
		out = append(out, out[len(out)-1].Add(-intervals[i]))
	}
	slices.Reverse(out)
	return out
}

// win is a pair of windows.
func win(warn, crit time.Duration) config.Windows {
	return config.Windows{WarnAfter: warn, CritAfter: crit}
}

func TestExpectedIntervalAndWindows(t *testing.T) {
	now := time.Unix(1_763_780_000, 0)
	tests := []struct {
		name       string
		starts     []time.Time
		configured config.Windows
		interval   time.Duration
		known      bool
		want       config.Windows
	}{
		{"no runs", nil, config.Windows{}, 0, false, win(15*time.Minute, time.Hour)},
		{"five intervals: fixed defaults", healthStarts(now, time.Minute, 6), config.Windows{}, 0, false, win(15*time.Minute, time.Hour)},
		{"six intervals: auto", healthStarts(now, time.Minute, 7), config.Windows{}, time.Minute, true, win(90*time.Second, 3*time.Minute)},
		{"even count: mean of the middle two", healthGaps(now, time.Minute, 2*time.Minute, time.Minute, 2*time.Minute, time.Minute, 2*time.Minute), config.Windows{}, 90 * time.Second, true, win(135*time.Second, 270*time.Second)},
		{"hourly cron", healthStarts(now, time.Hour, 10), config.Windows{}, time.Hour, true, win(90*time.Minute, 3*time.Hour)},
		{"configured windows win", healthStarts(now, time.Minute, 10), win(10*time.Minute, 30*time.Minute), time.Minute, true, win(10*time.Minute, 30*time.Minute)},
		{"configured windows win before six intervals", nil, win(10*time.Minute, 30*time.Minute), 0, false, win(10*time.Minute, 30*time.Minute)},
		{"only crit configured", healthStarts(now, time.Minute, 10), config.Windows{CritAfter: 30 * time.Minute}, time.Minute, true, win(90*time.Second, 30*time.Minute)},
		{"median ignores one long gap", append(healthStarts(now.Add(-2*time.Hour), time.Minute, 7), now), config.Windows{}, time.Minute, true, win(90*time.Second, 3*time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := ExpectedInterval(tt.starts)
			if d != tt.interval || ok != tt.known {
				t.Errorf("ExpectedInterval = %v %v, want %v %v", d, ok, tt.interval, tt.known)
			}
			if got := Resolve(tt.configured, tt.starts); got != tt.want {
				t.Errorf("Resolve = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	now := time.Unix(1_763_780_000, 0)
	first := now.Add(-24 * time.Hour)
	minutely := healthStarts(now.Add(-30*time.Second), time.Minute, 10) // auto windows 90s / 3m
	// fresh is a manager in step whose files were all fetched 30s ago.
	fresh := func(mod func(f *Facts)) *Facts {
		f := &Facts{Ran: true, InStep: true, LastFetchOK: now.Add(-30 * time.Second)}
		if mod != nil {
			mod(f)
		}
		return f
	}
	tests := []struct {
		name   string
		in     Input
		level  Level
		reason string
	}{
		{"no run recorded", Input{Now: now}, Unknown, "no run recorded"},
		{"first run known but no run start", Input{Now: now, FirstRun: first, Manager: fresh(nil)}, Unknown, "no run recorded"},
		{"manager never recorded", Input{Now: now, FirstRun: first, RunStarts: minutely}, Unknown, "no run of this manager"},
		{"manager recorded but never ran", Input{Now: now, FirstRun: first, RunStarts: minutely, Manager: &Facts{}}, Unknown, "no run of this manager"},
		{"startup grace", Input{Now: now, FirstRun: now.Add(-time.Minute), RunStarts: minutely[9:], StartupGrace: 5 * time.Minute, Manager: fresh(nil)}, Unknown, "startup_grace"},
		{"after startup grace", Input{Now: now, FirstRun: now.Add(-6 * time.Minute), RunStarts: minutely[9:], StartupGrace: 5 * time.Minute, Manager: fresh(nil)}, OK, "in step"},
		{"ok", Input{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(nil)}, OK, "in step"},
		{"refused, LKG in place", Input{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(f *Facts) {
			f.Refused, f.ReloadStatus, f.InStep = true, 500, false
		})}, Critical, "refused by reload (status 500)"},
		{"stuck run", Input{Now: now, FirstRun: first, RunStarts: minutely, Stuck: true, StuckSince: now.Add(-time.Hour), Manager: fresh(nil)}, Critical, "held the lock"},
		{"no run for longer than crit (auto)", Input{Now: now.Add(4 * time.Minute), FirstRun: first, RunStarts: minutely, Manager: fresh(nil)}, Critical, "no run for 4m"},
		{"no run for longer than warn (auto)", Input{Now: now.Add(90 * time.Second), FirstRun: first, RunStarts: minutely, Manager: fresh(func(f *Facts) {
			f.LastFetchOK = now.Add(90 * time.Second)
		})}, Warning, "no run for 2m (warn_after 1m30s)"},
		{"fixed windows before six intervals", Input{Now: now.Add(10 * time.Minute), FirstRun: first, RunStarts: minutely[5:], Manager: fresh(func(f *Facts) {
			f.LastFetchOK = now.Add(10 * time.Minute)
		})}, OK, "in step"},
		{"per-manager windows", Input{Now: now.Add(10 * time.Minute), FirstRun: first, RunStarts: minutely[5:], Windows: config.Windows{WarnAfter: 5 * time.Minute, CritAfter: 30 * time.Minute}, Manager: fresh(func(f *Facts) {
			f.LastFetchOK = now.Add(10 * time.Minute)
		})}, Warning, "warn_after 5m"},
		// The oldest file's last success (2m ago) is still inside crit_after (3m).
		{"fetch failing, last success inside crit", Input{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(f *Facts) {
			f.FetchFailingSince, f.InStep, f.Error = now.Add(-30*time.Second), false, "manager m: fetch: a.yml: http status 503"
			f.LastFetchOK = now.Add(-2 * time.Minute)
		})}, Warning, "fetches failing since"},
		{"no successful fetch for longer than crit", Input{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(f *Facts) {
			f.FetchFailingSince, f.InStep, f.Error = now.Add(-10*time.Minute), false, "http status 503"
			f.LastFetchOK = now.Add(-10 * time.Minute)
		})}, Critical, "no successful fetch for 10m (crit_after 3m0s): http status 503"},
		{"never fetched, first run long ago", Input{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(f *Facts) {
			f.FetchFailingSince, f.InStep = first, false
			f.LastFetchOK = time.Time{}
		})}, Critical, "no successful fetch since the first run"},
		{"never fetched, first run inside crit", Input{Now: now, FirstRun: now.Add(-2 * time.Minute), RunStarts: minutely, Manager: fresh(func(f *Facts) {
			f.FetchFailingSince, f.InStep, f.Error = now.Add(-2*time.Minute), false, "http status 404"
			f.LastFetchOK = time.Time{}
		})}, Warning, "fetches failing since"},
		{"reload timed out", Input{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(f *Facts) {
			f.ReloadTimedOut, f.InStep = true, false
		})}, Warning, "timed out"},
		{"other failure", Input{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(f *Facts) {
			f.InStep, f.Error = false, "manager m: render: a.yml: missing variable \"dc\""
		})}, Warning, "missing variable"},
		{"failure without a message", Input{Now: now, FirstRun: first, RunStarts: minutely, Manager: fresh(func(f *Facts) {
			f.InStep = false
		})}, Warning, "last run failed"},
		{"configuration stale", Input{Now: now, FirstRun: first, RunStarts: minutely, ConfigStale: true, Manager: fresh(nil)}, Warning, "copy kept from an earlier run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Evaluate(tt.in)
			if h.Level != tt.level || !strings.Contains(h.Reason, tt.reason) {
				t.Errorf("got %s %q, want %s containing %q", h.Level, h.Reason, tt.level, tt.reason)
			}
		})
	}
}

// TestEvaluateRuleOrder walks the rules of Evaluate in order. It starts from
// an input that breaks every rule at once and clears one rule after each
// case, so each case shows that its rule wins over every later one.
func TestEvaluateRuleOrder(t *testing.T) {
	now := time.Unix(1_763_780_000, 0) // 2025-11-22T02:53:20Z
	starts := func(last time.Duration) []time.Time {
		return healthStarts(now.Add(-last), time.Minute, 10) // auto windows 90s / 3m
	}
	in := Input{
		Now:          now,
		FirstRun:     now.Add(-24 * time.Hour),
		RunStarts:    nil, // rule 1
		StartupGrace: 25 * time.Hour,
		Stuck:        true,
		StuckSince:   now.Add(-time.Hour),
		Manager: &Facts{
			Ran:               false, // rule 2
			Refused:           true,
			ReloadStatus:      500,
			ReloadTimedOut:    true,
			InStep:            false,
			Error:             "boom",
			FetchFailingSince: now.Add(-10 * time.Minute),
			LastFetchOK:       time.Time{}, // never fetched (rule 7; rule 8 cannot hold at once)
		},
		ConfigStale: true,
	}
	rules := []struct {
		name   string
		level  Level
		reason string
		clear  func(in *Input) // makes the rule hold no more, for the next cases
	}{
		{"no run recorded", Unknown, "no run recorded yet",
			func(in *Input) { in.RunStarts = starts(4 * time.Minute) }},
		{"manager never ran", Unknown, "no run of this manager recorded yet",
			func(in *Input) { in.Manager.Ran = true }},
		{"startup grace", Unknown, "within startup_grace (25h0m0s) of the first run",
			func(in *Input) { in.StartupGrace = 0 }},
		{"stuck", Critical, "a run has held the lock since 2025-11-22T01:53:20Z, longer than its timeout",
			func(in *Input) { in.Stuck = false }},
		{"refused", Critical, "desired config refused by reload (status 500); last-known-good in place",
			func(in *Input) { in.Manager.Refused = false }},
		{"no run for longer than crit", Critical, "no run for 4m (crit_after 3m0s): is butler still scheduled?",
			func(in *Input) { in.RunStarts = starts(2 * time.Minute) }},
		{"never fetched since the first run", Critical, "no successful fetch since the first run 24h ago (crit_after 3m0s)",
			func(in *Input) { in.Manager.LastFetchOK = now.Add(-10 * time.Minute) }},
		{"no successful fetch for longer than crit", Critical, "no successful fetch for 10m (crit_after 3m0s): boom",
			func(in *Input) { in.Manager.LastFetchOK = now.Add(-time.Minute) }},
		{"fetches failing", Warning, "fetches failing since 2025-11-22T02:43:20Z: boom",
			func(in *Input) { in.Manager.FetchFailingSince = time.Time{} }},
		{"reload timed out", Warning, "the last reload got no response (timed out)",
			func(in *Input) { in.Manager.ReloadTimedOut = false }},
		{"no run for longer than warn", Warning, "no run for 2m (warn_after 1m30s)",
			func(in *Input) { in.RunStarts = starts(30 * time.Second) }},
		{"not in step", Warning, "boom",
			func(in *Input) { in.Manager.InStep = true }},
		{"configuration stale", Warning, "the configuration URL could not be fetched or was invalid: running with the copy kept from an earlier run",
			func(in *Input) { in.ConfigStale = false }},
		{"in step", OK, "in step", nil},
	}
	for _, r := range rules {
		snapshot := in
		facts := *in.Manager
		snapshot.Manager = &facts
		t.Run(r.name, func(t *testing.T) {
			h := Evaluate(snapshot)
			if h.Level != r.level || h.Reason != r.reason {
				t.Errorf("got %s %q, want %s %q", h.Level, h.Reason, r.level, r.reason)
			}
		})
		if r.clear != nil {
			r.clear(&in)
		}
	}
}

func TestLevelString(t *testing.T) {
	tests := []struct {
		in   Level
		want string
	}{
		{OK, "OK"},
		{Warning, "WARNING"},
		{Critical, "CRITICAL"},
		{Unknown, "UNKNOWN"},
		{Level(7), "UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("Level(%d).String() = %q, want %q", int(tt.in), got, tt.want)
			}
		})
	}
}

func TestWorst(t *testing.T) {
	tests := []struct {
		name string
		in   []Level
		want Level
	}{
		{"none", nil, Unknown},
		{"one", []Level{OK}, OK},
		{"unknown worse than ok", []Level{OK, Unknown}, Unknown},
		{"warning worse than unknown", []Level{Unknown, Warning}, Warning},
		{"critical worst", []Level{Critical, Warning, Unknown}, Critical},
		{"critical last", []Level{OK, Warning, Critical, OK}, Critical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Worst(tt.in...); got != tt.want {
				t.Errorf("Worst(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// problemsOf returns the problems written "manager/LEVEL", as Level
// prints the level.
func problemsOf(t *testing.T, specs []string) []Problem {
	t.Helper()
	var ps []Problem
	for _, s := range specs {
		m, name, _ := strings.Cut(s, "/")
		levels := []Level{OK, Warning, Critical, Unknown}
		i := slices.IndexFunc(levels, func(l Level) bool { return l.String() == name })
		if i < 0 {
			t.Fatalf("problem %q: no level %q", s, name)
		}
		ps = append(ps, Problem{Manager: m, Level: levels[i]})
	}
	return ps
}

func TestSortProblems(t *testing.T) {
	tests := []struct {
		name string
		in   []string // "manager/level", as want
		want []string // in order
	}{
		{name: "empty"},
		{name: "worst first: critical, warning, unknown", in: []string{"a/UNKNOWN", "b/WARNING", "c/CRITICAL"},
			want: []string{"c/CRITICAL", "b/WARNING", "a/UNKNOWN"}},
		{name: "same level by name", in: []string{"prometheus/WARNING", "alertmanager/WARNING", "nginx/WARNING"},
			want: []string{"alertmanager/WARNING", "nginx/WARNING", "prometheus/WARNING"}},
		{name: "level before name", in: []string{"a/WARNING", "z/CRITICAL", "b/CRITICAL", "c/UNKNOWN"},
			want: []string{"b/CRITICAL", "z/CRITICAL", "a/WARNING", "c/UNKNOWN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problemsOf(t, tt.in)
			SortProblems(ps)
			var got []string
			for _, p := range ps {
				got = append(got, p.Manager+"/"+p.Level.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("SortProblems = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestShortDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{42 * time.Second, "42s"},
		{42*time.Second + 400*time.Millisecond, "42s"},
		{59*time.Second + 600*time.Millisecond, "1m"},
		{12*time.Minute + 5*time.Second, "12m"},
		{59*time.Minute + 59*time.Second, "59m"},
		{time.Hour, "1h"},
		{2 * time.Hour, "2h"},
		{3*time.Hour + 10*time.Minute, "3h10m"},
		{47*time.Hour + 59*time.Minute, "47h59m"},
		{48 * time.Hour, "2d"},
		{50 * time.Hour, "2d2h"},
		{72 * time.Hour, "3d"},
		{400 * time.Hour, "16d16h"},
	}
	for _, tt := range tests {
		t.Run(tt.in.String(), func(t *testing.T) {
			if got := ShortDuration(tt.in); got != tt.want {
				t.Errorf("ShortDuration(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestStampAndAge(t *testing.T) {
	now := time.Unix(1_763_780_000, 0)
	tests := []struct {
		name  string
		t     time.Time
		stamp string
		age   string
	}{
		{"utc", now.Add(-90 * time.Minute).UTC(), "2025-11-22T01:23:20Z", "1h30m"},
		{"other zone printed in UTC", now.Add(-3 * time.Second).In(time.FixedZone("CET", 3600)), "2025-11-22T02:53:17Z", "3s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Stamp(tt.t); got != tt.stamp {
				t.Errorf("Stamp = %q, want %q", got, tt.stamp)
			}
			if got := Age(now, tt.t); got != tt.age {
				t.Errorf("Age = %q, want %q", got, tt.age)
			}
		})
	}
}
