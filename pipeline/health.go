package pipeline

import (
	"fmt"
	"slices"
	"time"
)

// Level is a manager's health, numbered as the Nagios plugin exit codes.
type Level int

// Health levels.
const (
	LevelOK       Level = 0
	LevelWarning  Level = 1
	LevelCritical Level = 2
	LevelUnknown  Level = 3
)

// String returns the level as Nagios writes it: OK, WARNING, CRITICAL, UNKNOWN.
func (l Level) String() string {
	switch l {
	case LevelOK:
		return "OK"
	case LevelWarning:
		return "WARNING"
	case LevelCritical:
		return "CRITICAL"
	default:
		return "UNKNOWN"
	}
}

// severity orders levels from best to worst: OK, UNKNOWN, WARNING, CRITICAL.
func (l Level) severity() int {
	return map[Level]int{LevelOK: 0, LevelUnknown: 1, LevelWarning: 2, LevelCritical: 3}[l]
}

// Worst returns the worst of levels (UNKNOWN for none).
func Worst(levels ...Level) Level {
	if len(levels) == 0 {
		return LevelUnknown
	}
	w := levels[0]
	for _, l := range levels[1:] {
		if l.severity() > w.severity() {
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
	// runStartsKept bounds the history of run start times in the state.
	runStartsKept = 25
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

// Resolve turns configured windows (0 = auto) into durations: auto is the median
// run interval x1.5 for warn and x3 for crit, or the fixed 15m / 1h until six
// intervals are known.
func (w Windows) Resolve(starts []time.Time) Windows {
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

// HealthInput is everything the health of one manager depends on; all of it comes
// from the state directory.
type HealthInput struct {
	Now          time.Time
	FirstRun     time.Time   // the first run ever recorded; zero when none
	RunStarts    []time.Time // recent run start times, oldest first
	StartupGrace time.Duration
	Windows      Windows // configured (0 = auto)

	// Stuck is set when a run holds the lock longer than its own timeout.
	Stuck      bool
	StuckSince time.Time

	Manager *ManagerState // nil when no run has recorded this manager

	// ConfigStale is set when the configuration URL could not be fetched or was
	// invalid, and the last run used the kept copy.
	ConfigStale bool
}

// Health is a manager's health with the reason an operator reads.
type Health struct {
	Level  Level
	Reason string
}

// EvaluateHealth applies the health rules in order: UNKNOWN before there is
// anything to judge, then CRITICAL, then WARNING, else OK.
func EvaluateHealth(in HealthInput) Health {
	ms := in.Manager
	switch {
	case in.FirstRun.IsZero():
		return Health{LevelUnknown, "no run recorded yet"}
	case ms == nil || !ms.Ran:
		return Health{LevelUnknown, "no run of this manager recorded yet"}
	case in.Now.Sub(in.FirstRun) < in.StartupGrace:
		return Health{LevelUnknown, fmt.Sprintf("within startup_grace (%s) of the first run", in.StartupGrace)}
	}
	w := in.Windows.Resolve(in.RunStarts)
	lastRun := in.RunStarts[len(in.RunStarts)-1]
	lastFetch := ms.LastFetchOK()

	switch {
	case in.Stuck:
		return Health{LevelCritical, fmt.Sprintf("a run has held the lock since %s, longer than its timeout", stamp(in.StuckSince))}
	case ms.Refused != "":
		return Health{LevelCritical, fmt.Sprintf("desired config refused by reload (status %d); last-known-good in place", ms.ReloadStatus)}
	case in.Now.Sub(lastRun) > w.CritAfter:
		return Health{LevelCritical, fmt.Sprintf("no run for %s (crit_after %s): is butler still scheduled?", age(in.Now, lastRun), w.CritAfter)}
	case lastFetch.IsZero() && in.Now.Sub(in.FirstRun) > w.CritAfter:
		return Health{LevelCritical, fmt.Sprintf("no successful fetch since the first run %s ago (crit_after %s)", age(in.Now, in.FirstRun), w.CritAfter)}
	case !lastFetch.IsZero() && in.Now.Sub(lastFetch) > w.CritAfter:
		return Health{LevelCritical, fmt.Sprintf("no successful fetch for %s (crit_after %s): %s", age(in.Now, lastFetch), w.CritAfter, ms.failure())}
	case ms.FetchFailing():
		return Health{LevelWarning, fmt.Sprintf("fetches failing since %s: %s", stamp(ms.FetchFailingSince), ms.failure())}
	case ms.ReloadTimedOut:
		return Health{LevelWarning, "the last reload got no response (timed out)"}
	case in.Now.Sub(lastRun) > w.WarnAfter:
		return Health{LevelWarning, fmt.Sprintf("no run for %s (warn_after %s)", age(in.Now, lastRun), w.WarnAfter)}
	case !ms.InStep:
		return Health{LevelWarning, ms.failure()}
	case in.ConfigStale:
		return Health{LevelWarning, "the configuration URL could not be fetched or was invalid: running with the copy kept from an earlier run"}
	}
	return Health{LevelOK, "in step"}
}

// failure describes the manager's last failure, for reasons.
func (ms *ManagerState) failure() string {
	if ms.Error == "" {
		return "last run failed"
	}
	return ms.Error
}

// FetchFailing reports whether the manager's last fetch failed.
func (ms *ManagerState) FetchFailing() bool {
	return !ms.FetchFailingSince.IsZero()
}

// LastFetchOK is the time every file of the manager was last fetched
// successfully: the oldest of the files' last successes (zero if any never was).
func (ms *ManagerState) LastFetchOK() time.Time {
	var oldest time.Time
	for _, fs := range ms.Files {
		if fs.RemoteTime.IsZero() {
			return time.Time{}
		}
		if oldest.IsZero() || fs.RemoteTime.Before(oldest) {
			oldest = fs.RemoteTime
		}
	}
	return oldest
}

func stamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// age is a short human age: "45s", "12m", "3h10m", "2d4h".
func age(now, t time.Time) string {
	return shortDuration(now.Sub(t))
}

func shortDuration(d time.Duration) string {
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
