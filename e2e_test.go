//go:build linux

package main

// End-to-end tests against the real programs: butler syncs the configuration of
// a running Prometheus and Alertmanager, which judge it on reload, while
// node_exporter exports butler's textfile and promtool lints it. Sources are
// served by an HTTP server in the test process; every program runs on 127.0.0.1
// with a free port and its own temporary directories, and is stopped when its
// test ends, whether it passed or not.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cbroglie/mustache"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/butler-sre/butler/internal/nettest"
	"github.com/butler-sre/butler/internal/textfiletest"
)

const (
	e2eReadyTimeout = 20 * time.Second // for a program to answer after it started
	e2eStopTimeout  = 10 * time.Second // for a program to exit after SIGTERM
	e2eRunTimeout   = time.Minute      // for one butler run
)

// TestE2EPrometheus syncs a running Prometheus through a first configuration it
// refuses (nothing to restore but the files from before), a good one, another it
// refuses (last-known-good restored), the same one again, a fixed one, and two
// that promtool stops as the manager's check command.
func TestE2EPrometheus(t *testing.T) {
	t.Parallel()
	promBin := needProgram(t, "prometheus")
	promtool := needProgram(t, "promtool")
	nodeBin := needProgram(t, "prometheus-node-exporter")

	root := t.TempDir()
	dest := e2eNewDest(t, root, "prometheus")
	node := e2eStartNodeExporter(t, nodeBin, filepath.Join(root, "textfile"))
	prom := e2eStartPrometheus(t, promBin, root, dest)

	src := e2eNewSources(t)
	src.Set("/prometheus.yml", e2eFixture(t, "prometheus/prometheus.yml"))
	src.Set("/rules/instance.yml", e2eFixture(t, "prometheus/rules/instance.yml"))
	src.Set("/rules/dc.yml", e2eFixture(t, "prometheus/rules/dc.yml"))

	b := e2eNewButler(t, root, node)
	config := func(check string) string {
		return e2eRender(t, "prometheus/butler.toml", map[string]string{
			"dest": dest, "target": strings.TrimPrefix(node, "http://"), "check": check,
			"source": src.url(""), "reload": prom.url + "/-/reload",
		})
	}
	b.writeConfig(t, config(""))

	var good e2eSnapshot // the files of the last applied configuration
	var goodConfig string
	var bootstrap e2eSnapshot
	var bootConfig string
	stillGood := func(t *testing.T) {
		good.wantSame(t, dest)
		prom.wantRunning(t, goodConfig)
	}
	keepGood := func(t *testing.T) {
		good = e2eSnap(t, dest)
		goodConfig = prom.configText(t)
	}
	e2eRunSteps(t, b, prom, "prometheus.txt", []e2eStep{
		{name: "refused first sync: no last-known-good yet, the files from before are put back", before: func(t *testing.T) {
			bootstrap = e2eSnap(t, dest)
			bootConfig = prom.configText(t)
			src.Set("/prometheus.yml", e2eFixture(t, "prometheus/prometheus_unknown_field.yml"))
		}, after: func(t *testing.T) {
			bootstrap.wantSame(t, dest) // the rule files this run created are gone
			prom.wantRunning(t, bootConfig)
			src.Set("/prometheus.yml", e2eFixture(t, "prometheus/prometheus.yml"))
		}},
		{name: "first good sync renders, writes and reloads", after: func(t *testing.T) {
			if got, want := e2eRead(t, filepath.Join(dest, "rules", "instance.yml")), e2eFixture(t, "prometheus/rules/instance.yml"); got != want {
				t.Errorf("rules/instance.yml (template = false) was changed on its way:\n%s", got)
			}
			dc := e2eRead(t, filepath.Join(dest, "rules", "dc.yml"))
			for _, want := range []string{"name: dc-ams1", `{{ $labels.job }} has no target in ams1`} {
				if !strings.Contains(dc, want) {
					t.Errorf("rules/dc.yml lacks %q:\n%s", want, dc)
				}
			}

			cfg := prom.config(t)
			e2eWantPath(t, cfg, "ams1", "global", "external_labels", "datacenter")
			e2eWantPath(t, cfg, "edge", "global", "external_labels", "role")
			e2eWantPath(t, cfg, "node", "scrape_configs", 0, "job_name")
			rules := e2ePromRules(t, prom.url)
			e2eWantRule(t, rules, "instance", "InstanceDown", map[string]string{"summary": "{{ $labels.instance }} is down"})
			e2eWantRule(t, rules, "dc-ams1", "JobMissing", map[string]string{"summary": "{{ $labels.job }} has no target in ams1"})
			keepGood(t)
		}},
		{name: "second sync changes nothing", after: func(t *testing.T) { good.wantSame(t, dest) }},
		{name: "refused config: last-known-good restored, Prometheus keeps the old one", before: func(t *testing.T) {
			src.Set("/prometheus.yml", e2eFixture(t, "prometheus/prometheus_refused.yml"))
		}, after: stillGood},
		{name: "refused content is not reloaded again", after: func(t *testing.T) { good.wantSame(t, dest) }},
		{name: "fixed source is applied", before: func(t *testing.T) {
			src.Set("/prometheus.yml", e2eFixture(t, "prometheus/prometheus_fixed.yml"))
		}, after: func(t *testing.T) {
			cfg := prom.config(t)
			e2eWantPath(t, cfg, "fixed", "global", "external_labels", "tier")
			e2eWantPath(t, cfg, "node-fixed", "scrape_configs", 0, "job_name")
			keepGood(t)
		}},
		{name: "promtool as check stops bad configurations before they are written", before: func(t *testing.T) {
			b.writeConfig(t, config(fmt.Sprintf("check = [%q, \"check\", \"config\", \"prometheus.yml\"]", promtool)))
		}, cases: []e2eStep{
			{name: "invalid PromQL in a rule file", before: src.setFor("/rules/instance.yml", "prometheus/rules/instance_bad_expr.yml"), after: stillGood},
			{name: "invalid relabel regex", before: src.setFor("/prometheus.yml", "prometheus/prometheus_bad_regex.yml"), after: stillGood},
		}},
		{name: "promtool passes the good configuration", after: func(t *testing.T) { good.wantSame(t, dest) }},
	})
}

// TestE2EAlertmanager syncs a running Alertmanager through a good configuration,
// one it refuses, the same one again, and a fixed one.
func TestE2EAlertmanager(t *testing.T) {
	t.Parallel()
	amBin := needProgram(t, "prometheus-alertmanager")
	needProgram(t, "promtool")
	nodeBin := needProgram(t, "prometheus-node-exporter")

	root := t.TempDir()
	dest := e2eNewDest(t, root, "alertmanager")
	node := e2eStartNodeExporter(t, nodeBin, filepath.Join(root, "textfile"))
	am := e2eNewAlertmanager(e2eStartProgram(t, amBin, func(addr string) []string {
		return []string{
			"--config.file=" + filepath.Join(dest, "alertmanager.yml"),
			"--storage.path=" + filepath.Join(root, "data"),
			"--web.listen-address=" + addr,
			"--cluster.listen-address=",
		}
	}, "/-/ready"))

	src := e2eNewSources(t)
	src.Set("/alertmanager.yml", e2eFixture(t, "alertmanager/alertmanager.yml"))
	b := e2eNewButler(t, root, node)
	b.writeConfig(t, e2eRender(t, "alertmanager/butler.toml", map[string]string{
		"dest": dest, "source": src.url(""), "reload": am.url + "/-/reload",
	}))

	var good e2eSnapshot
	var goodConfig string
	e2eRunSteps(t, b, am, "alertmanager.txt", []e2eStep{
		{name: "first sync renders, writes and reloads", after: func(t *testing.T) {
			if fi, err := os.Stat(filepath.Join(dest, "alertmanager.yml")); err != nil || fi.Mode().Perm() != 0o640 {
				t.Errorf("alertmanager.yml: mode %v, error %v; want 0640", fi.Mode().Perm(), err)
			}
			cfg := am.config(t)
			e2eWantPath(t, cfg, "sre-pager", "route", "receiver")
			e2eWantPath(t, cfg, "http://127.0.0.1:9/ams1", "receivers", 0, "webhook_configs", 0, "url")
			good = e2eSnap(t, dest)
			goodConfig = am.configText(t)
		}},
		{name: "second sync changes nothing", after: func(t *testing.T) { good.wantSame(t, dest) }},
		{name: "refused config: last-known-good restored, Alertmanager keeps the old one", before: func(t *testing.T) {
			src.Set("/alertmanager.yml", e2eFixture(t, "alertmanager/alertmanager_refused.yml"))
		}, after: func(t *testing.T) {
			good.wantSame(t, dest)
			am.wantRunning(t, goodConfig)
		}},
		{name: "refused content is not reloaded again", after: func(t *testing.T) { good.wantSame(t, dest) }},
		{name: "fixed source is applied", before: func(t *testing.T) {
			src.Set("/alertmanager.yml", e2eFixture(t, "alertmanager/alertmanager_fixed.yml"))
		}, after: func(t *testing.T) {
			cfg := am.config(t)
			e2eWantPath(t, cfg, "sre-fixed", "route", "receiver")
			e2eWantPath(t, cfg, "http://127.0.0.1:9/ams1/fixed", "receivers", 0, "webhook_configs", 0, "url")
		}},
	})
}

// TestE2EReloadTimeout reloads through an endpoint that can be told to never
// answer: with timeout_ok the change counts as applied and the status keeps its
// value; without it the run fails, the files stay, and the next run tries again.
func TestE2EReloadTimeout(t *testing.T) {
	t.Parallel()
	needProgram(t, "promtool")
	nodeBin := needProgram(t, "prometheus-node-exporter")

	root := t.TempDir()
	dest := filepath.Join(root, "etc", "app")
	node := e2eStartNodeExporter(t, nodeBin, filepath.Join(root, "textfile"))
	ep := e2eNewHangingEndpoint(t)
	src := e2eNewSources(t)
	b := e2eNewButler(t, root, node)
	config := func(timeoutOK bool) string {
		return fmt.Sprintf(`
[managers.app]
dest       = %q
timeout_ok = %t

[[managers.app.files]]
source = %q

[managers.app.reload]
url     = %q
timeout = "1s"
retries = 0
`, dest, timeoutOK, src.url("/app.yml"), ep.url)
	}
	content := func(version string) string { return "version: " + version + "\n" }
	wantFile := func(t *testing.T, version string) {
		t.Helper()
		if got := e2eRead(t, filepath.Join(dest, "app.yml")); got != content(version) {
			t.Errorf("app.yml = %q, want %q", got, content(version))
		}
	}
	var lkg, reloadTime float64
	e2eRunSteps(t, b, ep, "reload_timeout.txt", []e2eStep{
		{name: "answered reload", before: func(t *testing.T) {
			b.writeConfig(t, config(false))
			src.Set("/app.yml", content("1"))
		}, after: func(t *testing.T) {
			wantFile(t, "1")
			lkg = b.value(t, `butler_lkg{manager="app"}`)
			reloadTime = b.value(t, `butler_reload_time{manager="app"}`)
		}},
		{name: "timeout_ok: no answer counts as applied, status kept", before: func(t *testing.T) {
			b.writeConfig(t, config(true))
			ep.hang.Store(true)
			src.Set("/app.yml", content("2"))
		}, after: func(t *testing.T) {
			wantFile(t, "2")
			b.wantMetrics(t, map[string]float64{`butler_lkg{manager="app"}`: lkg})
			if got := b.value(t, `butler_reload_time{manager="app"}`); got <= reloadTime {
				t.Errorf("butler_reload_time = %v, want after the previous reload at %v", got, reloadTime)
			}
		}},
		{name: "timeout_ok: applied content is not reloaded again"},
		{name: "no answer fails the run, the files stay", before: func(t *testing.T) {
			b.writeConfig(t, config(false))
			src.Set("/app.yml", content("3"))
		}, after: func(t *testing.T) {
			wantFile(t, "3")
			b.wantMetrics(t, map[string]float64{`butler_lkg{manager="app"}`: lkg})
		}},
		{name: "the next run reloads again though nothing changed", after: func(t *testing.T) { wantFile(t, "3") }},
		{name: "an answer at last: applied", before: func(t *testing.T) { ep.hang.Store(false) }, after: func(t *testing.T) {
			wantFile(t, "3")
			if got := b.value(t, `butler_lkg{manager="app"}`); got <= lkg {
				t.Errorf("butler_lkg = %v, want later than %v", got, lkg)
			}
		}},
		{name: "then in step"},
	})
}

// e2eStartProgram starts bin with the arguments args gives for a listen address,
// waits until GET readyPath answers 200, and returns its base URL. It stops the
// program when the test ends (SIGTERM, then SIGKILL), and logs its output when the
// test failed. A program that exits before it is ready (another process took the
// port) is started again on another port.
func e2eStartProgram(t *testing.T, bin string, args func(addr string) []string, readyPath string) string {
	t.Helper()
	var out string
	for attempt := 0; attempt < 3; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		logPath := filepath.Join(t.TempDir(), filepath.Base(bin)+".log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, args(addr)...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		// Killed with the test binary too, should it die without its cleanups.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		logFile.Close()
		if err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		done := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(done)
		}()
		t.Cleanup(func() {
			e2eStop(t, cmd, done)
			if t.Failed() {
				t.Logf("output of %s:\n%s", filepath.Base(bin), e2eTail(logPath))
			}
		})
		base := "http://" + addr
		err = e2eWaitReady(base+readyPath, done)
		if err == nil {
			return base
		}
		out = e2eTail(logPath)
		if !errors.Is(err, errE2EExited) {
			t.Fatalf("%s: %v\n%s", filepath.Base(bin), err, out)
		}
	}
	t.Fatalf("%s exited before it was ready, three times:\n%s", filepath.Base(bin), out)
	return ""
}

// e2eNewDest makes root/etc/NAME, the dest of the manager NAME, holding
// NAME.yml as the fixture NAME/bootstrap.yml has it, and returns its path.
func e2eNewDest(t *testing.T, root, name string) string {
	t.Helper()
	dest := filepath.Join(root, "etc", name)
	e2eWriteFile(t, filepath.Join(dest, name+".yml"), e2eFixture(t, filepath.Join(name, "bootstrap.yml")))
	return dest
}

// e2eStartPrometheus starts Prometheus on dest/prometheus.yml, reloads
// enabled, its storage under root.
func e2eStartPrometheus(t *testing.T, bin, root, dest string) *e2eServer {
	t.Helper()
	return e2eNewPrometheus(e2eStartProgram(t, bin, func(addr string) []string {
		return []string{
			"--web.enable-lifecycle",
			"--config.file=" + filepath.Join(dest, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(root, "tsdb"),
			"--web.listen-address=" + addr,
		}
	}, "/-/ready"))
}

// e2eStartNodeExporter starts node_exporter with only the textfile collector,
// reading dir, and returns its base URL.
func e2eStartNodeExporter(t *testing.T, bin, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return e2eStartProgram(t, bin, func(addr string) []string {
		return []string{
			"--collector.disable-defaults",
			"--collector.textfile",
			"--collector.textfile.directory=" + dir,
			"--web.listen-address=" + addr,
		}
	}, "/metrics")
}

var errE2EExited = errors.New("exited before it was ready")

// e2eWaitReady polls url until it answers 200, the program exits, or the
// deadline passes.
func e2eWaitReady(url string, done <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(e2eReadyTimeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return errE2EExited
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s (last error %v)", url, e2eReadyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// e2eStop ends a program: SIGTERM, and SIGKILL when it has not exited in time.
func e2eStop(t *testing.T, cmd *exec.Cmd, done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(e2eStopTimeout):
		t.Errorf("%s ignored SIGTERM for %s; killing it", cmd.Path, e2eStopTimeout)
		_ = cmd.Process.Kill()
		<-done
	}
}

// e2eTail returns the end of a log file.
func e2eTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const max = 8 << 10
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return string(data)
}

// e2eSources serves configuration sources from a map that tests change between
// runs.
type e2eSources struct{ *nettest.Files }

func e2eNewSources(t *testing.T) *e2eSources {
	return &e2eSources{nettest.NewFiles(t, nil)}
}

func (s *e2eSources) url(path string) string { return s.URL + path }

// setFor is a step's change: path serves the fixture until the step ends,
// then what it served before.
func (s *e2eSources) setFor(path, fixture string) func(t *testing.T) {
	return func(t *testing.T) {
		before := s.Get(path)
		t.Cleanup(func() { s.Set(path, before) })
		s.Set(path, e2eFixture(t, fixture))
	}
}

// e2eHangingEndpoint is a reload endpoint that answers 200, or while hang is set
// never answers at all. It counts the requests it gets.
type e2eHangingEndpoint struct {
	url   string
	hang  atomic.Bool
	calls atomic.Int32
}

func e2eNewHangingEndpoint(t *testing.T) *e2eHangingEndpoint {
	ep := &e2eHangingEndpoint{}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep.calls.Add(1)
		if ep.hang.Load() {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: Close waits for handlers
	ep.url = srv.URL + "/-/reload"
	return ep
}

// wantReloads requires the endpoint to have had n requests.
func (ep *e2eHangingEndpoint) wantReloads(t *testing.T, n float64) {
	t.Helper()
	e2eWantFloat(t, "reload requests", float64(ep.calls.Load()), n)
}

// e2eButler runs the built binary with one configuration, state directory and
// textfile, the textfile in the directory node_exporter reads.
type e2eButler struct {
	dir, config, textfile, node string
}

func e2eNewButler(t *testing.T, root, node string) *e2eButler {
	dir := filepath.Join(root, "butler")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &e2eButler{
		dir:      dir,
		config:   filepath.Join(dir, "butler.toml"),
		textfile: filepath.Join(root, "textfile", "butler.prom"),
		node:     node,
	}
}

// writeConfig writes butler.toml: the [butler] table, then rest.
func (b *e2eButler) writeConfig(t *testing.T, rest string) {
	t.Helper()
	head := fmt.Sprintf("[butler]\nstate_dir = %q\ntextfile = %q\ntimeout = \"1m\"\n",
		filepath.Join(b.dir, "state"), b.textfile)
	e2eWriteFile(t, b.config, head+rest)
}

// e2eRun is the outcome of one butler run.
type e2eRun struct {
	code           int
	stdout, stderr string
}

// sync runs `butler [global flags] sync`, then checks what every run must leave:
// a textfile that promtool finds nothing to report in and that node_exporter
// exports in full.
func (b *e2eButler) sync(t *testing.T, globalFlags ...string) e2eRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	args := append([]string{"--config", b.config}, globalFlags...)
	cmd := exec.CommandContext(ctx, butlerBin, append(args, "sync")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("butler sync: %v\n%s", err, stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("butler sync did not end within %s:\n%s", e2eRunTimeout, stderr.String())
	}
	res := e2eRun{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	b.checkTextfile(t)
	return res
}

func (r e2eRun) wantCode(t *testing.T, want int) {
	t.Helper()
	if r.code != want {
		t.Fatalf("butler sync exited %d, want %d; stderr:\n%s", r.code, want, r.stderr)
	}
}

func (r e2eRun) wantStderr(t *testing.T, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.stderr, p) {
			t.Errorf("stderr lacks %q:\n%s", p, r.stderr)
		}
	}
}

// wantJSONLog requires a JSON log line whose string fields include want.
func (r e2eRun) wantJSONLog(t *testing.T, want map[string]string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(r.stderr))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Errorf("log line is not JSON: %s", sc.Text())
			continue
		}
		match := true
		for k, v := range want {
			if line[k] != v {
				match = false
				break
			}
		}
		if match {
			return
		}
	}
	t.Errorf("no log line has %v:\n%s", want, r.stderr)
}

// checkTextfile lints the textfile with promtool and requires node_exporter to
// read it without error and export every series of it with its value.
func (b *e2eButler) checkTextfile(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(b.textfile)
	if err != nil {
		t.Fatalf("textfile: %v", err)
	}
	lint := exec.Command("promtool", "check", "metrics")
	lint.Stdin = bytes.NewReader(data)
	if out, err := lint.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s\ntextfile:\n%s", err, out, data)
	}

	own := e2eParse(t, "textfile", bytes.NewReader(data))
	scraped := e2eScrape(t, b.node)
	e2eWantFloat(t, "node_textfile_scrape_error", e2eSum(t, scraped, "node_textfile_scrape_error"), 0)
	for _, name := range []string{"butler_run_success", "butler_build_info", "butler_last_run_timestamp_seconds"} {
		if own[name] == nil {
			t.Errorf("textfile has no %s", name)
		}
	}
	for name, fam := range own {
		for _, m := range fam.GetMetric() {
			key := e2eKey(name, m)
			found := false
			for _, sm := range scraped[name].GetMetric() {
				if e2eKey(name, sm) == key {
					found = true
					if got, want := e2eMetricValue(sm), e2eMetricValue(m); got != want {
						t.Errorf("node_exporter exports %s = %v, the textfile says %v", key, got, want)
					}
				}
			}
			if !found {
				t.Errorf("node_exporter does not export %s", key)
			}
		}
	}
}

// metrics returns the textfile's series by their key (see e2eKey).
func (b *e2eButler) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	fams, err := textfiletest.ReadFile(b.textfile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, fam := range fams {
		for _, s := range fam.Series {
			parts := make([]string, 0, len(s.Labels))
			for _, l := range s.Labels {
				parts = append(parts, fmt.Sprintf("%s=%q", l.Name, l.Value))
			}
			sort.Strings(parts)
			key := fam.Name
			if len(parts) > 0 {
				key += "{" + strings.Join(parts, ",") + "}"
			}
			out[key] = s.Value
		}
	}
	return out
}

func (b *e2eButler) wantMetrics(t *testing.T, want map[string]float64) {
	t.Helper()
	e2eWantEntries(t, b.metrics(t), want, "textfile has no %s", "textfile: %s = %v, want %v")
}

// e2eWantEntries requires got to hold every entry of want: a key it lacks is
// reported with the format missing (of the key), another value with the
// format changed (of the key, the value got has, the value wanted).
func e2eWantEntries[V comparable](t *testing.T, got, want map[string]V, missing, changed string) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf(missing, k)
		case g != w:
			t.Errorf(changed, k, g, w)
		}
	}
}

func (b *e2eButler) wantSeries(t *testing.T, key string) {
	t.Helper()
	if _, ok := b.metrics(t)[key]; !ok {
		t.Errorf("textfile has no %s", key)
	}
}

func (b *e2eButler) value(t *testing.T, key string) float64 {
	t.Helper()
	v, ok := b.metrics(t)[key]
	if !ok {
		t.Fatalf("textfile has no %s", key)
	}
	return v
}

// e2eKey names a series as PromQL would select it: name{a="x",b="y"}, labels
// sorted.
func e2eKey(name string, m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return name
	}
	parts := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

func e2eMetricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Summary != nil:
		return float64(m.GetSummary().GetSampleCount())
	}
	return 0
}

func e2eParse(t *testing.T, what string, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := parser.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse the metrics of %s: %v", what, err)
	}
	return mfs
}

// e2eScrape reads base/metrics.
func e2eScrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %d", base, resp.StatusCode)
	}
	return e2eParse(t, base, resp.Body)
}

// e2eSum adds the values (the sample counts of histograms) of the series of
// family name that carry the given label pairs.
func e2eSum(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	fam, ok := mfs[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	var sum float64
	for _, m := range fam.GetMetric() {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			has := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					has = true
				}
			}
			match = match && has
		}
		if match {
			sum += e2eMetricValue(m)
		}
	}
	return sum
}

func e2eWantFloat(t *testing.T, what string, got, want float64) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// e2eGetJSON decodes the JSON answer of GET url into v.
func e2eGetJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v\n%s", url, resp.StatusCode, err, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
}

// e2eServer is a running Prometheus or Alertmanager as the tests look at it:
// the configuration it runs, the reloads it was asked for, and whether the
// last one worked.
type e2eServer struct {
	name    string   // prometheus or alertmanager, as its metric names begin
	url     string   // where it listens
	status  string   // the endpoint that shows the configuration it runs
	field   []string // the path of that configuration's text in the JSON
	reloads string   // the family whose series of handler /-/reload count the reload requests
}

func e2eNewPrometheus(url string) *e2eServer {
	return &e2eServer{name: "prometheus", url: url, status: "/api/v1/status/config",
		field: []string{"data", "yaml"}, reloads: "prometheus_http_requests_total"}
}

func e2eNewAlertmanager(url string) *e2eServer {
	return &e2eServer{name: "alertmanager", url: url, status: "/api/v2/status",
		field: []string{"config", "original"}, reloads: "alertmanager_http_request_duration_seconds"}
}

// configText returns the configuration the server runs, as it prints it.
func (s *e2eServer) configText(t *testing.T) string {
	t.Helper()
	var v any
	e2eGetJSON(t, s.url+s.status, &v)
	for _, f := range s.field {
		m, _ := v.(map[string]any)
		v = m[f]
	}
	text, ok := v.(string)
	if !ok {
		t.Fatalf("GET %s%s: no %s", s.url, s.status, strings.Join(s.field, "."))
	}
	return text
}

// config returns the configuration the server runs, parsed.
func (s *e2eServer) config(t *testing.T) any {
	t.Helper()
	return e2eYAML(t, s.configText(t))
}

// wantRunning requires the server to run the configuration want, a configText
// of before.
func (s *e2eServer) wantRunning(t *testing.T, want string) {
	t.Helper()
	if got := s.configText(t); got != want {
		t.Errorf("%s runs another configuration:\n%s", s.name, got)
	}
}

// wantReloads requires the server to have been asked to reload n times.
func (s *e2eServer) wantReloads(t *testing.T, n float64) {
	t.Helper()
	e2eWantFloat(t, s.name+" reload requests", e2eSum(t, e2eScrape(t, s.url), s.reloads, "handler", "/-/reload"), n)
}

// wantLastReloadOK requires its <name>_config_last_reload_successful to be ok
// (1 or 0).
func (s *e2eServer) wantLastReloadOK(t *testing.T, ok float64) {
	t.Helper()
	name := s.name + "_config_last_reload_successful"
	e2eWantFloat(t, name, e2eSum(t, e2eScrape(t, s.url), name), ok)
}

func e2eYAML(t *testing.T, text string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("running configuration: %v\n%s", err, text)
	}
	return v
}

// e2eWantPath requires the value at path (map keys and list indexes) in a parsed
// YAML document to be want.
func e2eWantPath(t *testing.T, doc any, want string, path ...any) {
	t.Helper()
	v := doc
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Errorf("running configuration has no %v (no map at %q)", path, p)
				return
			}
			v = m[p]
		case int:
			l, ok := v.([]any)
			if !ok || p >= len(l) {
				t.Errorf("running configuration has no %v (no item %d)", path, p)
				return
			}
			v = l[p]
		}
	}
	if got := fmt.Sprint(v); got != want {
		t.Errorf("running configuration: %v = %q, want %q", path, got, want)
	}
}

// e2ePromRule is a rule as GET /api/v1/rules shows it.
type e2ePromRule struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func e2ePromRules(t *testing.T, base string) map[string][]e2ePromRule {
	t.Helper()
	var resp struct {
		Data struct {
			Groups []struct {
				Name  string        `json:"name"`
				Rules []e2ePromRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	e2eGetJSON(t, base+"/api/v1/rules", &resp)
	out := map[string][]e2ePromRule{}
	for _, g := range resp.Data.Groups {
		out[g.Name] = g.Rules
	}
	return out
}

func e2eWantRule(t *testing.T, groups map[string][]e2ePromRule, group, rule string, annotations map[string]string) {
	t.Helper()
	rules, ok := groups[group]
	if !ok {
		t.Errorf("Prometheus has no rule group %q; it has %v", group, groups)
		return
	}
	for _, r := range rules {
		if r.Name == rule {
			if !reflect.DeepEqual(r.Annotations, annotations) {
				t.Errorf("rule %s/%s: annotations %q, want %q", group, rule, r.Annotations, annotations)
			}
			return
		}
	}
	t.Errorf("rule group %q has no rule %q: %v", group, rule, rules)
}

// e2eSnapshot is every file under a directory by relative path, and every
// directory below it (path ending in "/", empty content).
type e2eSnapshot map[string]string

func e2eSnap(t *testing.T, dir string) e2eSnapshot {
	t.Helper()
	s := e2eSnapshot{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			s[rel+"/"] = ""
			return nil
		}
		data, err := os.ReadFile(p)
		s[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantSame requires dir to hold exactly the files of the snapshot.
func (s e2eSnapshot) wantSame(t *testing.T, dir string) {
	t.Helper()
	now := e2eSnap(t, dir)
	e2eWantEntries(t, now, s, "%s is gone", "%s changed:\n%s\nwant:\n%s")
	for p := range now {
		if _, ok := s[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}

// e2eRender renders a fixture with vars, as butler renders its templates.
func e2eRender(t *testing.T, rel string, vars map[string]string) string {
	t.Helper()
	out, err := mustache.RenderRaw(e2eFixture(t, rel), true, vars)
	if err != nil {
		t.Fatalf("render %s: %v", rel, err)
	}
	return out
}

func e2eFixture(t *testing.T, rel string) string {
	t.Helper()
	return e2eRead(t, filepath.Join("testdata", "e2e", rel))
}

func e2eRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func e2eWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
