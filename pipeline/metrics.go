package pipeline

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/butler-sre/butler/pipeline/atomicfile"
	"github.com/butler-sre/butler/pipeline/health"
	"github.com/butler-sre/butler/pipeline/state"
	"github.com/butler-sre/butler/textfile"
)

// WriteMetrics writes the textfile at path in full from the state: every series of
// the specification whose value is known. An empty path writes nothing.
func WriteMetrics(path string, st *state.State, build BuildInfo) error {
	if path == "" {
		return nil
	}
	return textfile.WriteFile(path, Metrics(st, build))
}

// pendingMetrics is the textfile of a state, written in the background
// while the run saves the state: a large textfile costs its encoding and
// an fsync, which need not wait for the state's.
type pendingMetrics struct {
	path   string
	build  BuildInfo
	wg     sync.WaitGroup
	staged *atomicfile.Staged
	err    error
}

// stageMetrics starts writing the textfile of st at path (none when path is
// empty) under its temporary name. Until wait returns, st is read in the
// background and must not change.
func stageMetrics(path string, st *state.State, build BuildInfo) *pendingMetrics {
	p := &pendingMetrics{path: path, build: build}
	if path != "" {
		p.wg.Go(func() { p.staged, p.err = textfile.Stage(path, Metrics(st, build)) })
	}
	return p
}

// wait waits until the staged textfile is written (or failed).
func (p *pendingMetrics) wait() { p.wg.Wait() }

// finish puts the staged textfile in place. When st changed since
// stageMetrics (changed), the staged file is discarded and the textfile of
// st written instead: it must say what the state says.
func (p *pendingMetrics) finish(st *state.State, changed bool) error {
	p.wait()
	switch {
	case p.path == "":
		return nil
	case changed:
		p.staged.Discard()
		return WriteMetrics(p.path, st, p.build)
	case p.err != nil:
		return p.err
	}
	if err := p.staged.Commit(); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}

// metricSpec describes one family: its name, help and type.
type metricSpec struct {
	name, help string
	typ        textfile.Type
}

var (
	mRemoteStatus   = metricSpec{"butler_remote_status", "Response code of the last fetch of the file: HTTP status, storage API status for s3/gcs, 200/403/404 for file, 200 for git, 0 for no response.", textfile.Gauge}
	mRemoteTime     = metricSpec{"butler_remote_time", "Unix time of the last successful fetch of the file.", textfile.Gauge}
	mMustache       = metricSpec{"butler_cfg_mustache", "1 when the file rendered as a mustache template (or is not a template), 0 when rendering failed.", textfile.Gauge}
	mRender         = metricSpec{"butler_cfg_render", "1 when the rendered file is valid in the format given by method, else 0.", textfile.Gauge}
	mWrite          = metricSpec{"butler_write", "1 when the last write of the file succeeded, 0 when it failed.", textfile.Gauge}
	mReloadStatus   = metricSpec{"butler_reload_status", "Status of the last reload: HTTP status, 200/500 for a command, 0 for a timeout or no response.", textfile.Gauge}
	mReloadTime     = metricSpec{"butler_reload_time", "Unix time of the last attempted reload.", textfile.Gauge}
	mLKG            = metricSpec{"butler_lkg", "Unix time the last-known-good copy of the manager was last stored.", textfile.Gauge}
	mLastRun        = metricSpec{"butler_last_run_timestamp_seconds", "Unix time the last run started.", textfile.Gauge}
	mLastSuccess    = metricSpec{"butler_last_success_timestamp_seconds", "Unix time the last run with every manager in step ended.", textfile.Gauge}
	mRunDuration    = metricSpec{"butler_run_duration_seconds", "Duration of the last run in seconds.", textfile.Gauge}
	mRunSuccess     = metricSpec{"butler_run_success", "1 when the last run exited 0, else 0.", textfile.Gauge}
	mManagerSuccess = metricSpec{"butler_manager_success", "1 when the manager is in step after the last run, else 0.", textfile.Gauge}
	mFetches        = metricSpec{"butler_remote_fetches_total", "Fetches of the file attempted.", textfile.Counter}
	mFetchFailures  = metricSpec{"butler_remote_fetch_failures_total", "Fetches of the file that failed.", textfile.Counter}
	mNotModified    = metricSpec{"butler_remote_not_modified_total", "Fetches of the file answered 304 Not Modified: the kept copy was used.", textfile.Counter}
	mVerify         = metricSpec{"butler_verify", "1 when the file's minisign signature verified by a trusted key, 0 when it was missing or bad.", textfile.Gauge}
	mBytes          = metricSpec{"butler_remote_bytes_total", "Body bytes received for the file.", textfile.Counter}
	mReloads        = metricSpec{"butler_reloads_total", "Reloads of the manager attempted.", textfile.Counter}
	mReloadFailures = metricSpec{"butler_reload_failures_total", "Reloads of the manager that failed or got no response.", textfile.Counter}
	mLKGRestores    = metricSpec{"butler_lkg_restores_total", "Times the last-known-good copy of the manager was put back.", textfile.Counter}
	mHealth         = metricSpec{"butler_health", "Health of the manager after the last run: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", textfile.Gauge}
	mInterval       = metricSpec{"butler_expected_interval_seconds", "Median interval between the recent runs, once six intervals are known.", textfile.Gauge}
	mNotifyFailures = metricSpec{"butler_notify_failures_total", "Notifications that could not be delivered, by channel.", textfile.Counter}
	mConfigFetch    = metricSpec{"butler_config_fetch_success", "1 when the remote configuration was fetched and valid this run, 0 when the kept copy was used.", textfile.Gauge}
	mBuildInfo      = metricSpec{"butler_build_info", "Version of butler that wrote this file.", textfile.Gauge}
)

// metricSet gathers series by family.
type metricSet struct {
	order    []metricSpec
	families map[string]*textfile.Family
}

// add adds a series; series may share labels (textfile never changes them).
func (s *metricSet) add(m metricSpec, value float64, labels textfile.Labels) {
	f, ok := s.families[m.name]
	if !ok {
		f = &textfile.Family{Name: m.name, Help: m.help, Type: m.typ}
		s.families[m.name] = f
		s.order = append(s.order, m)
	}
	f.Series = append(f.Series, textfile.Series{Labels: labels, Value: value})
}

// Metrics turns the state into metric families.
func Metrics(st *state.State, build BuildInfo) []textfile.Family {
	s := &metricSet{families: map[string]*textfile.Family{}}
	// The series go in the order the textfile lists them (by file, then
	// manager: the labels' order), so that it need not sort them.
	type fileOf struct {
		path, manager string
		fs            *state.FileState
	}
	var files []fileOf
	for name, ms := range st.Managers {
		for path, fs := range ms.Files {
			files = append(files, fileOf{path, name, fs})
		}
	}
	slices.SortFunc(files, func(a, b fileOf) int {
		return cmp.Or(strings.Compare(a.path, b.path), strings.Compare(a.manager, b.manager))
	})
	for _, f := range files {
		path, name, fs := f.path, f.manager, f.fs
		// One label set for every series of the file, sorted as written.
		l := textfile.L("file", path, "manager", name)
		if fs.Fetched {
			s.add(mRemoteStatus, float64(fs.RemoteStatus), l)
		}
		if !fs.RemoteTime.IsZero() {
			s.add(mRemoteTime, unixSeconds(fs.RemoteTime), l)
		}
		if fs.Rendered {
			s.add(mMustache, boolValue(fs.Mustache), l)
			s.add(mRender, boolValue(fs.Valid), textfile.L("file", path, "manager", name, "method", fs.Method))
		}
		if fs.Written {
			s.add(mWrite, boolValue(fs.WriteOK), l)
		}
		s.add(mFetches, float64(fs.FetchesTotal), l)
		s.add(mFetchFailures, float64(fs.FetchFailuresTotal), l)
		s.add(mNotModified, float64(fs.NotModifiedTotal), l)
		if fs.Verified {
			s.add(mVerify, boolValue(fs.VerifyOK), l)
		}
		s.add(mBytes, float64(fs.BytesTotal), l)
	}
	for _, name := range slices.Sorted(maps.Keys(st.Managers)) {
		ms := st.Managers[name]
		l := textfile.L("manager", name)
		if ms.Reloaded {
			s.add(mReloadStatus, float64(ms.ReloadStatus), l)
		}
		if !ms.ReloadTime.IsZero() {
			s.add(mReloadTime, unixSeconds(ms.ReloadTime), l)
		}
		if !ms.LKGTime.IsZero() {
			s.add(mLKG, unixSeconds(ms.LKGTime), l)
		}
		s.add(mManagerSuccess, boolValue(ms.InStep), l)
		if !ms.HealthSince.IsZero() {
			s.add(mHealth, float64(ms.Health), l)
		}
		s.add(mReloads, float64(ms.ReloadsTotal), l)
		s.add(mReloadFailures, float64(ms.ReloadFailuresTotal), l)
		s.add(mLKGRestores, float64(ms.LKGRestoresTotal), l)
	}
	if !st.Run.Start.IsZero() {
		s.add(mLastRun, unixSeconds(st.Run.Start), nil)
		s.add(mRunDuration, st.Run.Duration.Seconds(), nil)
		s.add(mRunSuccess, boolValue(st.Run.Success), nil)
	}
	if !st.Run.LastSuccess.IsZero() {
		s.add(mLastSuccess, unixSeconds(st.Run.LastSuccess), nil)
	}
	if d, ok := health.ExpectedInterval(st.RunStarts); ok {
		s.add(mInterval, d.Seconds(), nil)
	}
	for _, ch := range []string{"webhook", "email"} {
		if n, ok := st.Notify.Failures[ch]; ok {
			s.add(mNotifyFailures, float64(n), textfile.L("channel", ch))
		}
	}
	if st.ConfigFetched != nil {
		s.add(mConfigFetch, boolValue(*st.ConfigFetched), nil)
	}
	s.add(mBuildInfo, 1, textfile.L("goversion", build.GoVersion, "revision", build.Revision, "version", build.Version))

	out := make([]textfile.Family, 0, len(s.order))
	for _, m := range s.order {
		out = append(out, *s.families[m.name])
	}
	return out
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
