// Package health holds the health rules of butler: how the facts a run left
// in the state directory become OK, WARNING, CRITICAL or UNKNOWN, and the
// windows after which a manager that was not synced turns WARNING and
// CRITICAL.
//
// Guarantees: Evaluate is a pure function of its Input (no clock, no disk),
// so `butler status`, the run and the notifications judge alike; levels are
// numbered as Nagios plugin exit codes.
package health

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/butler-sre/butler/pipeline/config"
)

// Level is a manager's health, numbered as the Nagios plugin exit codes.
type Level int

// Health levels.
const (
	OK       Level = 0
	Warning  Level = 1
	Critical Level = 2
	Unknown  Level = 3
)

// String returns the level as Nagios writes it: OK, WARNING, CRITICAL, UNKNOWN.
func (l Level) String() string {
	switch l {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	default:
		return "UNKNOWN"
	}
}

// Severity orders levels from best to worst: OK, UNKNOWN, WARNING, CRITICAL.
func (l Level) Severity() int {
	switch l {
	case OK:
		return 0
	case Warning:
		return 2
	case Critical:
		return 3
	default:
		return 1
	}
}

// Worst returns the worst of levels (UNKNOWN for none).
func Worst(levels ...Level) Level {
	if len(levels) == 0 {
		return Unknown
	}
	w := levels[0]
	for _, l := range levels[1:] {
		if l.Severity() > w.Severity() {
			w = l
		}
	}
	return w
}

// Fixed windows used while too few run intervals are known for "auto".
const (
	DefaultWarnAfter = 15 * time.Minute
	DefaultCritAfter = time.Hour
	// autoMinIntervals is how many intervals between runs "auto" needs.
	autoMinIntervals = 6
	// RunStartsKept bounds the history of run start times in the state.
	RunStartsKept = 25
)

// ExpectedInterval is the median interval between the given run start times
// (oldest first), once at least six intervals are known.
func ExpectedInterval(starts []time.Time) (time.Duration, bool) {
	if len(starts) < autoMinIntervals+1 {
		return 0, false
	}
	intervals := make([]time.Duration, 0, len(starts)-1)
	for i := 1; i < len(starts); i++ {
		intervals = append(intervals, starts[i].Sub(starts[i-1]))
	}
	slices.Sort(intervals)
	n := len(intervals)
	if n%2 == 1 {
		return intervals[n/2], true
	}
	return (intervals[n/2-1] + intervals[n/2]) / 2, true
}

// Resolve turns configured windows (0 = auto) into durations: auto is the
// median run interval x1.5 for warn and x3 for crit, or the fixed 15m / 1h
// until six intervals are known.
func Resolve(w config.Windows, starts []time.Time) config.Windows {
	median, known := ExpectedInterval(starts)
	out := w
	if out.WarnAfter == 0 {
		out.WarnAfter = DefaultWarnAfter
		if known {
			out.WarnAfter = median * 3 / 2
		}
	}
	if out.CritAfter == 0 {
		out.CritAfter = DefaultCritAfter
		if known {
			out.CritAfter = median * 3
		}
	}
	return out
}

// Facts are what the state knows of one manager that its health depends on.
type Facts struct {
	Ran               bool      // a run of this manager is recorded
	InStep            bool      // after the last run
	Error             string    // the last failure, when not in step
	Refused           bool      // the desired content was refused by the reload
	ReloadStatus      int       // of the last reload
	ReloadTimedOut    bool      // the last reload got no response
	FetchFailingSince time.Time // start of the current run of failed fetches; zero when fetching
	LastFetchOK       time.Time // when every file was last fetched; zero if any never was
}

// Input is everything the health of one manager depends on; all of it comes
// from the state directory.
type Input struct {
	Now          time.Time
	FirstRun     time.Time   // the first run ever recorded; zero when none
	RunStarts    []time.Time // recent run start times, oldest first
	StartupGrace time.Duration
	Windows      config.Windows // configured (0 = auto)

	// Stuck is set when a run holds the lock longer than its own timeout.
	Stuck      bool
	StuckSince time.Time

	Manager *Facts // nil when no run has recorded this manager

	// ConfigStale is set when the configuration URL could not be fetched or was
	// invalid, and the last run used the kept copy.
	ConfigStale bool
}

// Health is a manager's health with the reason an operator reads.
type Health struct {
	Level  Level
	Reason string
}

// Evaluate applies the health rules in order: UNKNOWN before there is
// anything to judge, then CRITICAL, then WARNING, else OK.
func Evaluate(in Input) Health {
	ms := in.Manager
	switch {
	case in.FirstRun.IsZero() || len(in.RunStarts) == 0:
		return Health{Unknown, "no run recorded yet"}
	case ms == nil || !ms.Ran:
		return Health{Unknown, "no run of this manager recorded yet"}
	case in.Now.Sub(in.FirstRun) < in.StartupGrace:
		return Health{Unknown, fmt.Sprintf("within startup_grace (%s) of the first run", in.StartupGrace)}
	}
	w := Resolve(in.Windows, in.RunStarts)
	lastRun := in.RunStarts[len(in.RunStarts)-1]
	lastFetch := ms.LastFetchOK

	switch {
	case in.Stuck:
		return Health{Critical, fmt.Sprintf("a run has held the lock since %s, longer than its timeout", Stamp(in.StuckSince))}
	case ms.Refused:
		return Health{Critical, fmt.Sprintf("desired config refused by reload (status %d); last-known-good in place", ms.ReloadStatus)}
	case in.Now.Sub(lastRun) > w.CritAfter:
		return Health{Critical, fmt.Sprintf("no run for %s (crit_after %s): is butler still scheduled?", Age(in.Now, lastRun), w.CritAfter)}
	case lastFetch.IsZero() && in.Now.Sub(in.FirstRun) > w.CritAfter:
		return Health{Critical, fmt.Sprintf("no successful fetch since the first run %s ago (crit_after %s)", Age(in.Now, in.FirstRun), w.CritAfter)}
	case !lastFetch.IsZero() && in.Now.Sub(lastFetch) > w.CritAfter:
		return Health{Critical, fmt.Sprintf("no successful fetch for %s (crit_after %s): %s", Age(in.Now, lastFetch), w.CritAfter, ms.failure())}
	case !ms.FetchFailingSince.IsZero():
		return Health{Warning, fmt.Sprintf("fetches failing since %s: %s", Stamp(ms.FetchFailingSince), ms.failure())}
	case ms.ReloadTimedOut:
		return Health{Warning, "the last reload got no response (timed out)"}
	case in.Now.Sub(lastRun) > w.WarnAfter:
		return Health{Warning, fmt.Sprintf("no run for %s (warn_after %s)", Age(in.Now, lastRun), w.WarnAfter)}
	case !ms.InStep:
		return Health{Warning, ms.failure()}
	case in.ConfigStale:
		return Health{Warning, "the configuration URL could not be fetched or was invalid: running with the copy kept from an earlier run"}
	}
	return Health{OK, "in step"}
}

// failure describes the manager's last failure, for reasons.
func (f *Facts) failure() string {
	if f.Error == "" {
		return "last run failed"
	}
	return f.Error
}

// Change is a manager's move from one health to another.
type Change struct {
	Time    time.Time `json:"time"`
	Manager string    `json:"manager"`
	From    Level     `json:"from"`
	To      Level     `json:"to"`
	Reason  string    `json:"reason"`
}

// Problem is a manager whose current health is not OK.
type Problem struct {
	Manager string
	Level   Level
	Reason  string
	Since   time.Time // zero when not known
}

// SortProblems orders problems worst first, then by manager name.
func SortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(b.Level.Severity()-a.Level.Severity(), strings.Compare(a.Manager, b.Manager))
	})
}

// Stamp is a time as butler prints it: RFC 3339 in UTC.
func Stamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// Age is a short human age: "45s", "12m", "3h10m", "2d4h".
func Age(now, t time.Time) string {
	return ShortDuration(now.Sub(t))
}

// ShortDuration writes d the way Age does.
func ShortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		h := int(d.Hours())
		if m := int(d.Minutes()) % 60; m != 0 {
			return fmt.Sprintf("%dh%dm", h, m)
		}
		return fmt.Sprintf("%dh", h)
	default:
		days := int(d.Hours()) / 24
		if h := int(d.Hours()) % 24; h != 0 {
			return fmt.Sprintf("%dd%dh", days, h)
		}
		return fmt.Sprintf("%dd", days)
	}
}
