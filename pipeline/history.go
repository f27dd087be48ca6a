package pipeline

import (
	"fmt"
	"strings"
	"time"
)

// Event kinds of a manager's history.
const (
	EventHealth         = "health"
	EventApplied        = "applied"
	EventReload         = "reload"
	EventLKGRestore     = "lkg-restore"
	EventFetchFailing   = "fetch-failing"
	EventFetchRecovered = "fetch-recovered"
)

// addEvent appends an event to the manager's history, dropping the oldest beyond
// limit: old events go, never the state.
func (ms *ManagerState) addEvent(limit int, e Event) {
	ms.Events = append(ms.Events, e)
	if limit > 0 && len(ms.Events) > limit {
		ms.Events = append([]Event(nil), ms.Events[len(ms.Events)-limit:]...)
	}
}

// recordStart notes a run's start for the health windows.
func (st *State) recordStart(start time.Time, cfg *Config) {
	if st.FirstRun.IsZero() {
		st.FirstRun = start
	}
	st.RunStarts = append(st.RunStarts, start)
	if n := len(st.RunStarts); n > runStartsKept {
		st.RunStarts = append([]time.Time(nil), st.RunStarts[n-runStartsKept:]...)
	}
	st.StartupGrace = cfg.Health.StartupGrace
	for _, m := range cfg.Managers {
		if ms, ok := st.Managers[m.Name]; ok {
			ms.Windows = m.Windows
		}
	}
}

// judgeHealth evaluates every configured manager at now, records what changed
// as events, and returns the changes.
func (st *State) judgeHealth(cfg *Config, now time.Time) []HealthChange {
	var changes []HealthChange
	for _, m := range cfg.Managers {
		ms, ok := st.Managers[m.Name]
		if !ok {
			continue
		}
		h := EvaluateHealth(HealthInput{
			Now: now, FirstRun: st.FirstRun, RunStarts: st.RunStarts, StartupGrace: st.StartupGrace,
			Windows: m.Windows, Manager: ms, ConfigStale: st.ConfigFetched != nil && !*st.ConfigFetched,
		})
		if ms.HealthSince.IsZero() {
			// The first judgement of this manager: nothing changed yet.
			ms.Health, ms.HealthReason, ms.HealthSince = h.Level, h.Reason, now
			ms.addEvent(cfg.Health.History, Event{Time: now, Kind: EventHealth, Message: fmt.Sprintf("health %s: %s", h.Level, h.Reason)})
			continue
		}
		if h.Level != ms.Health {
			c := HealthChange{Time: now, Manager: m.Name, From: ms.Health, To: h.Level, Reason: h.Reason}
			changes = append(changes, c)
			ms.addEvent(cfg.Health.History, Event{Time: now, Kind: EventHealth, Message: fmt.Sprintf("health %s -> %s: %s", c.From, c.To, h.Reason)})
			ms.HealthSince = now
		}
		ms.Health, ms.HealthReason = h.Level, h.Reason
	}
	return changes
}

// Problems lists every manager whose health is not OK, worst first then by name.
func (st *State) Problems(cfg *Config) []Problem {
	var out []Problem
	for _, m := range cfg.Managers {
		ms, ok := st.Managers[m.Name]
		if !ok || ms.Health == LevelOK {
			continue
		}
		out = append(out, Problem{Manager: m.Name, Level: ms.Health, Reason: ms.HealthReason, Since: ms.HealthSince})
	}
	sortProblems(out)
	return out
}

func sortProblems(ps []Problem) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && problemLess(ps[j], ps[j-1]); j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

func problemLess(a, b Problem) bool {
	if a.Level.severity() != b.Level.severity() {
		return a.Level.severity() > b.Level.severity()
	}
	return strings.Compare(a.Manager, b.Manager) < 0
}
