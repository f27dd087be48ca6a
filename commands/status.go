package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/urfave/cli/v3"

	"github.com/butler-sre/butler/pipeline"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/health"
)

// statusExit carries the exit code butler status decided: the worst health, or 3
// (UNKNOWN) for any error of its own. What it had to say is already printed.
type statusExit struct{ code int }

func (e statusExit) Error() string { return fmt.Sprintf("status: exit %d", e.code) }

// statusMode is where status prints: a table, JSON or one Nagios line.
type statusMode int

const (
	statusModeTable statusMode = iota
	statusModeJSON
	statusModeNagios
)

// statusReport is what status prints: the status read from the state directory
// and how it was asked for.
type statusReport struct {
	*pipeline.Status
	Filter  string // --manager as given; "" for all
	Missing bool   // the state directory does not exist
	Events  bool
}

// statusListed is how many managers the Nagios summary names; the rest are counted.
const statusListed = 5

// statusReasonMax bounds a reason in the Nagios line, which NRPE may cut at 1 KiB.
const statusReasonMax = 100

func statusCommand(d *Deps) *cli.Command {
	cmd := described("status")
	cmd.OnUsageError = func(_ context.Context, cmd *cli.Command, err error, _ bool) error {
		return statusFail(d, statusModeOf(cmd), fmt.Sprintf("usage: %v (see butler status --help)", err))
	}
	cmd.Flags = []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON for machines"},
		&cli.BoolFlag{Name: "nagios", Usage: "print one line in the Nagios plugin format, with perfdata"},
		&cli.BoolFlag{Name: "events", Usage: "print each manager's events, newest first"},
		&cli.StringFlag{Name: "manager", Usage: "only managers whose whole name matches `REGEX`"},
	}
	cmd.Action = func(_ context.Context, cmd *cli.Command) error {
		mode := statusModeOf(cmd)
		switch {
		case cmd.NArg() > 0:
			return statusFail(d, mode, fmt.Sprintf("usage: status takes no arguments, got %q", cmd.Args().Slice()))
		case cmd.Bool("json") && cmd.Bool("nagios"):
			return statusFail(d, mode, "usage: --json and --nagios cannot be combined")
		case cmd.Bool("nagios") && cmd.Bool("events"):
			return statusFail(d, mode, "usage: --events cannot be combined with --nagios, whose output is one line")
		}
		filter := cmd.String("manager")
		match, err := statusMatcher(filter)
		if err != nil {
			return statusFail(d, mode, err.Error())
		}
		dir, note := statusStateDir(cmd, d)
		r := statusReport{Filter: filter, Events: cmd.Bool("events")}
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			r.Missing = true
			if note != "" {
				fmt.Fprintf(d.Stderr, "butler: %s\n", note)
			}
		}
		r.Status, err = pipeline.ReadStatus(dir, d.Now(), match)
		if err != nil {
			return statusFail(d, mode, err.Error())
		}
		if err := statusWrite(d.Stdout, mode, r); err != nil {
			return statusFail(d, statusModeTable, err.Error())
		}
		if code := int(r.Worst()); code != ExitOK {
			return statusExit{code}
		}
		return nil
	}
	return cmd
}

func statusModeOf(cmd *cli.Command) statusMode {
	switch {
	case cmd.Bool("nagios"):
		return statusModeNagios
	case cmd.Bool("json"):
		return statusModeJSON
	default:
		return statusModeTable
	}
}

// statusFail says why status could not judge health, where its output goes, and
// exits 3 (UNKNOWN), so that a monitoring system never reads it as CRITICAL.
func statusFail(d *Deps, mode statusMode, reason string) error {
	switch mode {
	case statusModeNagios:
		fmt.Fprintf(d.Stdout, "BUTLER UNKNOWN - %s\n", statusOneLine(reason))
	case statusModeJSON:
		data, _ := json.Marshal(struct {
			Health string `json:"health"`
			Error  string `json:"error"`
		}{health.Unknown.String(), reason})
		fmt.Fprintf(d.Stdout, "%s\n", data)
	default:
		fmt.Fprintf(d.Stderr, "butler: status: %s\n", reason)
	}
	return statusExit{int(health.Unknown)}
}

// statusMatcher compiles --manager: a Go regular expression that must match the
// whole name, so that a plain name selects exactly that manager.
func statusMatcher(expr string) (func(string) bool, error) {
	if expr == "" {
		return nil, nil
	}
	if _, err := regexp.Compile(expr); err != nil {
		return nil, fmt.Errorf("--manager %q is not a regular expression: %w", expr, err)
	}
	re := regexp.MustCompile(`^(?:` + expr + `)$`)
	return re.MatchString, nil
}

// statusStateDir finds the state directory without touching the network:
// --state-dir, else [butler] state_dir of a local configuration, else the
// default. note explains a fall back to the default, for when it does not exist.
func statusStateDir(cmd *cli.Command, d *Deps) (dir, note string) {
	if v := cmd.String("state-dir"); v != "" {
		return v, ""
	}
	loc := cmd.String("config")
	if isURL(loc) {
		return config.DefaultStateDir, fmt.Sprintf("status does not fetch a --config URL, so it read the default state directory %s, which does not exist: give --state-dir", config.DefaultStateDir)
	}
	cfg, err := config.LoadFile(loc, d.LookupEnv)
	if cfg != nil {
		// Only manager tables may be wrong: [butler] was read.
		return cfg.Butler.StateDir, ""
	}
	if err != nil {
		return config.DefaultStateDir, fmt.Sprintf("configuration %s could not be read (see butler check), so status read the default state directory %s, which does not exist: give --state-dir", loc, config.DefaultStateDir)
	}
	return config.DefaultStateDir, ""
}

func statusWrite(w io.Writer, mode statusMode, r statusReport) error {
	switch mode {
	case statusModeNagios:
		_, err := io.WriteString(w, statusNagios(r))
		return err
	case statusModeJSON:
		return statusWriteJSON(w, r)
	}
	if len(r.Managers) == 0 {
		_, err := fmt.Fprintf(w, "%s\n", statusNoManagers(r))
		return err
	}
	if r.Events {
		return statusWriteEvents(w, r)
	}
	return statusWriteTable(w, r)
}

// statusNoManagers says why no row is shown.
func statusNoManagers(r statusReport) string {
	switch {
	case r.Missing:
		return fmt.Sprintf("no run recorded yet: the state directory %s does not exist", r.StateDir)
	case r.LastRun.IsZero():
		return fmt.Sprintf("no run recorded yet in %s", r.StateDir)
	case r.Filter != "":
		return fmt.Sprintf("no manager matches --manager %s", r.Filter)
	default:
		return fmt.Sprintf("no manager recorded in %s", r.StateDir)
	}
}

func statusWriteTable(w io.Writer, r statusReport) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "MANAGER\tHEALTH\tSINCE\tLAST FETCH\tLAST CHANGE\tLAST RELOAD\tLKG\tREASON")
	for _, m := range r.Managers {
		since := "-"
		if !m.Since.IsZero() {
			since = statusAgo(r.Now, m.Since)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			statusCell(m.Name), m.Health, since, statusAgo(r.Now, m.LastFetch), statusAgo(r.Now, m.LastChange),
			statusReload(r.Now, m), statusAgo(r.Now, m.LKG), statusCell(m.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if r.Running {
		fmt.Fprintln(w, "a sync is running now; the rows show what the runs before it recorded")
	}
	last := "last run " + statusAgo(r.Now, r.LastRun)
	if r.ExpectedInterval > 0 {
		last += fmt.Sprintf("; expected interval %s (the median of the recent runs)", health.ShortDuration(r.ExpectedInterval))
	}
	fmt.Fprintln(w, last)
	if r.ConfigFetched != nil && !*r.ConfigFetched {
		fmt.Fprintln(w, "the last run could not fetch the configuration URL and used the kept copy")
	}
	_, err := fmt.Fprintf(w, "state directory %s\n", r.StateDir)
	return err
}

// statusReload is "200 2m ago", or the age alone while no status is known.
func statusReload(now time.Time, m pipeline.ManagerStatus) string {
	if m.LastReload.IsZero() || !m.Reloaded {
		return statusAgo(now, m.LastReload)
	}
	return fmt.Sprintf("%d %s", m.ReloadStatus, statusAgo(now, m.LastReload))
}

func statusWriteEvents(w io.Writer, r statusReport) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tMANAGER\tKIND\tMESSAGE")
	n := 0
	for _, m := range r.Managers {
		for _, e := range m.Events {
			msg := statusCell(e.Message)
			if len(e.Files) > 0 {
				msg += " [" + statusCell(strings.Join(e.Files, ", ")) + "]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", health.Stamp(e.Time), statusCell(m.Name), statusCell(e.Kind), msg)
			n++
		}
	}
	if n == 0 {
		_, err := fmt.Fprintln(w, "no events recorded")
		return err
	}
	return tw.Flush()
}

// statusJSON is the stable shape of `butler status --json`; times are RFC 3339
// in UTC, null when unknown (statusStamp).
type statusJSON struct {
	Now                     string              `json:"now"`
	StateDir                string              `json:"state_dir"`
	Running                 bool                `json:"running"`
	LastRun                 statusStamp         `json:"last_run"`
	ExpectedIntervalSeconds *float64            `json:"expected_interval_seconds"`
	ConfigFetched           *bool               `json:"config_fetched"`
	Health                  string              `json:"health"`
	Summary                 string              `json:"summary"`
	Managers                []statusJSONManager `json:"managers"`
}

type statusJSONManager struct {
	Name         string             `json:"name"`
	Health       string             `json:"health"`
	Reason       string             `json:"reason"`
	Since        statusStamp        `json:"since"`
	LastFetch    statusStamp        `json:"last_fetch"`
	LastChange   statusStamp        `json:"last_change"`
	LastReload   statusStamp        `json:"last_reload"`
	ReloadStatus *int               `json:"reload_status"`
	LKG          statusStamp        `json:"lkg"`
	Events       *[]statusJSONEvent `json:"events,omitempty"`
}

type statusJSONEvent struct {
	Time    statusStamp `json:"time"`
	Kind    string      `json:"kind"`
	Message string      `json:"message"`
	Files   []string    `json:"files"`
}

func statusWriteJSON(w io.Writer, r statusReport) error {
	out := statusJSON{
		Now:           health.Stamp(r.Now),
		StateDir:      r.StateDir,
		Running:       r.Running,
		LastRun:       statusStamp(r.LastRun),
		ConfigFetched: r.ConfigFetched,
		Health:        r.Worst().String(),
		Summary:       statusSummary(r),
		Managers:      []statusJSONManager{},
	}
	if r.ExpectedInterval > 0 {
		s := r.ExpectedInterval.Seconds()
		out.ExpectedIntervalSeconds = &s
	}
	for _, m := range r.Managers {
		jm := statusJSONManager{
			Name: m.Name, Health: m.Health.String(), Reason: m.Reason,
			Since: statusStamp(m.Since), LastFetch: statusStamp(m.LastFetch),
			LastChange: statusStamp(m.LastChange), LastReload: statusStamp(m.LastReload),
			LKG: statusStamp(m.LKG),
		}
		if m.Reloaded {
			code := m.ReloadStatus
			jm.ReloadStatus = &code
		}
		if r.Events {
			events := make([]statusJSONEvent, 0, len(m.Events))
			for _, e := range m.Events {
				files := e.Files
				if files == nil {
					files = []string{}
				}
				events = append(events, statusJSONEvent{Time: statusStamp(e.Time), Kind: e.Kind, Message: e.Message, Files: files})
			}
			jm.Events = &events
		}
		out.Managers = append(out.Managers, jm)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// statusStamp is a time of the JSON: RFC 3339 in UTC, null when unknown (zero).
type statusStamp time.Time

func (s statusStamp) MarshalJSON() ([]byte, error) {
	if time.Time(s).IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(health.Stamp(time.Time(s)))
}

// statusNagios is the one line of a Nagios plugin:
// "BUTLER LEVEL - summary | perfdata".
func statusNagios(r statusReport) string {
	counts := map[health.Level]int{}
	for _, m := range r.Managers {
		counts[m.Health]++
	}
	perf := []string{
		fmt.Sprintf("managers=%d", len(r.Managers)),
		fmt.Sprintf("ok=%d", counts[health.OK]),
		fmt.Sprintf("warning=%d", counts[health.Warning]),
		fmt.Sprintf("critical=%d", counts[health.Critical]),
		fmt.Sprintf("unknown=%d", counts[health.Unknown]),
	}
	if !r.LastRun.IsZero() {
		perf = append(perf, fmt.Sprintf("last_run_age=%ds", statusSeconds(r.Now.Sub(r.LastRun))))
	}
	if r.ExpectedInterval > 0 {
		perf = append(perf, fmt.Sprintf("expected_interval=%ds", statusSeconds(r.ExpectedInterval)))
	}
	return fmt.Sprintf("BUTLER %s - %s | %s\n", r.Worst(), statusOneLine(statusSummary(r)), strings.Join(perf, " "))
}

// statusSummary is a one-line account of the managers' health, worst first, that
// names the managers not OK with their reasons (at most statusListed of them).
func statusSummary(r statusReport) string {
	total := len(r.Managers)
	if total == 0 {
		return statusNoManagers(r)
	}
	noun := "managers"
	if total == 1 {
		noun = "manager"
	}
	var parts []string
	listed := 0
	for _, level := range []health.Level{health.Critical, health.Warning, health.Unknown} {
		var names []string
		n := 0
		for _, m := range r.Managers {
			if m.Health != level {
				continue
			}
			n++
			if listed < statusListed {
				names = append(names, fmt.Sprintf("%s (%s)", m.Name, statusClip(m.Reason, statusReasonMax)))
				listed++
			}
		}
		if n == 0 {
			continue
		}
		if more := n - len(names); more > 0 {
			names = append(names, fmt.Sprintf("%d more", more))
		}
		head := fmt.Sprintf("%d %s", n, level)
		if len(parts) == 0 {
			head = fmt.Sprintf("%d of %d %s %s", n, total, noun, level)
		}
		parts = append(parts, head+": "+strings.Join(names, ", "))
	}
	ok := total - statusCountNotOK(r)
	if len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%d of %d %s OK", ok, total, noun))
	} else if ok > 0 {
		parts = append(parts, fmt.Sprintf("%d OK", ok))
	}
	s := statusCell(strings.Join(parts, "; "))
	if !r.LastRun.IsZero() {
		s += ", last run " + statusAgo(r.Now, r.LastRun)
	}
	if r.Running {
		s += ", a sync is running"
	}
	if r.ConfigFetched != nil && !*r.ConfigFetched {
		s += ", the configuration URL could not be fetched (kept copy in use)"
	}
	return s
}

func statusCountNotOK(r statusReport) int {
	n := 0
	for _, m := range r.Managers {
		if m.Health != health.OK {
			n++
		}
	}
	return n
}

// statusOneLine keeps text on one line of plugin output: no "|", which starts
// perfdata, and no control characters.
func statusOneLine(s string) string {
	return strings.ReplaceAll(statusCell(s), "|", "/")
}

// statusCell makes text safe for one table cell: control characters (newlines,
// tabs, terminal escapes from a remote error body) become spaces.
func statusCell(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func statusClip(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return strings.TrimRight(string(r[:max-3]), " ") + "..."
}

func statusSeconds(d time.Duration) int64 {
	return int64(d.Round(time.Second) / time.Second)
}

// statusAgo is "2m ago", "never" for a zero time, or "in 2m" for a time ahead
// of the clock.
func statusAgo(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	if d := now.Sub(t); d < 0 {
		return "in " + health.ShortDuration(-d)
	}
	return health.ShortDuration(now.Sub(t)) + " ago"
}
