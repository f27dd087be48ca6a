package pipeline

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/envtest"
	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/internal/smtptest"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/health"
	"github.com/butler-sre/butler/pipeline/state"
)

// historyHook is a webhook endpoint that records the messages and can fail.
type historyHook struct {
	mu       sync.Mutex
	messages []map[string]any
	fail     bool
}

func (h *historyHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	var m map[string]any
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.messages = append(h.messages, m)
}

func (h *historyHook) take() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.messages
	h.messages = nil
	return out
}

func (h *historyHook) setFail(fail bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail = fail
}

// changesOf returns "manager FROM->TO" for each change of a webhook message.
func changesOf(m map[string]any) []string {
	var out []string
	for _, c := range m["changes"].([]any) {
		c := c.(map[string]any)
		out = append(out, fmt.Sprintf("%s %s->%s", c["manager"], c["from"], c["to"]))
	}
	return out
}

func TestRunNotifiesOnHealthChange(t *testing.T) {
	hook := &historyHook{}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	e := newRunEnv(t)
	text := e.config("") + fmt.Sprintf(`
[health]
startup_grace = "0s"
[notify.webhook]
url = %q
timeout = "2s"
`, srv.URL)
	cfg := e.parse(text)

	// First run: the first judgement is no change, so no message.
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if got := hook.take(); len(got) != 0 {
		t.Errorf("first run sent %d messages", len(got))
	}
	// OK
	e.wantMetric(t, 0, "butler_health", "manager", "prom")

	// The manager refuses a config: one message, OK -> CRITICAL, with the problem.
	e.remote.Set("/prometheus.yml", "refused: 1\n")
	e.reload.set(http.StatusInternalServerError, false)
	_, err = e.run(cfg, nil)
	wantFailed(t, err)
	msgs := hook.take()
	if len(msgs) != 1 || strings.Join(changesOf(msgs[0]), ",") != "prom OK->CRITICAL" {
		t.Fatalf("messages = %v", msgs)
	}
	if probs := msgs[0]["problems"].([]any); len(probs) != 1 || !strings.Contains(fmt.Sprint(probs[0]), "refused") {
		t.Errorf("problems = %v", probs)
	}
	// CRITICAL
	e.wantMetric(t, 2, "butler_health", "manager", "prom")

	// The same health again: nothing sent.
	_, err = e.run(cfg, nil)
	wantFailed(t, err)
	if got := hook.take(); len(got) != 0 {
		t.Errorf("a repeat sent %d messages", len(got))
	}

	// Fixed while the webhook is down: not delivered, counted, kept.
	hook.setFail(true)
	e.remote.Set("/prometheus.yml", "fixed: 1\n")
	e.reload.set(http.StatusOK, false)
	_, err = e.run(cfg, nil)
	wantNoErr(t, err) // a failed notification never fails the run
	e.wantMetric(t, 1, "butler_notify_failures_total", "channel", "webhook")
	if !strings.Contains(e.logs.String(), "notification not delivered") {
		t.Error("failed notification not logged")
	}

	// Next run, webhook back: the kept change is delivered, though nothing changed now.
	hook.setFail(false)
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	msgs = hook.take()
	if len(msgs) != 1 || strings.Join(changesOf(msgs[0]), ",") != "prom CRITICAL->OK" {
		t.Fatalf("kept change not delivered: %v", msgs)
	}
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if got := hook.take(); len(got) != 0 {
		t.Errorf("delivered change sent again: %v", got)
	}
}

func TestRunHistory(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.config("") + "\n[health]\nhistory = 5\n")
	for i := 0; i < 4; i++ {
		e.remote.Set("/prometheus.yml", fmt.Sprintf("v: %d\n", i))
		_, err := e.run(cfg, nil)
		wantNoErr(t, err)
	}
	e.remote.fail("/rules/a.yml", 503)
	_, _ = e.run(cfg, nil)
	st, err := ReadStatus(e.stateDir, e.now, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := st.Managers[0].Events
	if len(events) != 5 {
		t.Fatalf("%d events kept, want the newest 5: %+v", len(events), events)
	}
	if events[0].Kind != state.EventFetchFailing || !strings.Contains(events[0].Message, "503") {
		t.Errorf("newest event = %+v, want fetch-failing", events[0])
	}
	kinds := map[string]bool{}
	for _, ev := range events {
		kinds[ev.Kind] = true
	}
	if !kinds[state.EventApplied] || !kinds[state.EventReload] {
		t.Errorf("kinds = %v", kinds)
	}
	for i := 1; i < len(events); i++ {
		if events[i].Time.After(events[i-1].Time) {
			t.Errorf("events not newest first: %v", events)
		}
	}
	e.remote.fail("/rules/a.yml", 0)
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	st, _ = ReadStatus(e.stateDir, e.now, nil)
	recovered := false
	for _, ev := range st.Managers[0].Events[:2] { // this run's: fetch-recovered, then its health change
		recovered = recovered || ev.Kind == state.EventFetchRecovered
	}
	if !recovered {
		t.Errorf("no fetch-recovered event: %+v", st.Managers[0].Events)
	}
}

func TestStatusSeesRunningAndStuckSync(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.config("") + "\n[health]\nstartup_grace = \"0s\"\n")
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	sd, err := state.Open(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	// This process plays the running sync, started an hour ago with a 5m timeout.
	start := e.now.Add(-time.Hour)
	if err := sd.WriteMarker(start, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(e.stateDir, e.now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || st.Managers[0].Health != health.Critical || !strings.Contains(st.Managers[0].Reason, "held the lock") {
		t.Errorf("status = running %v, %+v", st.Running, st.Managers[0])
	}
	// A marker left by a run that was killed (its process is gone) means nothing.
	marker := filepath.Join(e.stateDir, "running.json")
	fstest.WriteFile(t, marker, `{"pid": 999999999, "start": "2020-01-01T00:00:00Z", "timeout": 1}`, 0o600)
	st, _ = ReadStatus(e.stateDir, e.now, nil)
	if st.Running || st.Managers[0].Health == health.Critical {
		t.Errorf("a dead run's marker counted: running %v, %+v", st.Running, st.Managers[0])
	}
}

// TestRunNotifiesByMail sends the health change of a run by mail, through a real
// SMTP server with STARTTLS and AUTH, the credentials coming from ${VAR}.
func TestRunNotifiesByMail(t *testing.T) {
	const password = "smtp-Secret-9876"
	cert, pool := smtptest.Cert(t)
	be := &smtptest.Backend{User: "butler", Pass: password}
	port := smtptest.Serve(t, be, &cert)
	e := newRunEnv(t)
	text := e.config("") + fmt.Sprintf(`
[health]
startup_grace = "0s"
[notify.email]
host = "127.0.0.1"
port = %d
username = "${SMTP_USER}"
password = "${SMTP_PASSWORD}"
from = "butler@example.com"
to = ["oncall@example.com"]
subject = "[cfg]"
`, port)
	cfg, err := config.Parse([]byte(text), "butler.toml", e.dir, envtest.Lookup(map[string]string{"SMTP_USER": "butler", "SMTP_PASSWORD": password}))
	if err != nil {
		t.Fatal(err)
	}
	notifier := func(o *Options) {
		o.NotifyTLS = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	}
	_, err = e.run(cfg, notifier)
	wantNoErr(t, err)
	e.remote.Set("/prometheus.yml", "refused: 1\n")
	e.reload.set(http.StatusInternalServerError, false)
	_, err = e.run(cfg, notifier)
	wantFailed(t, err)
	_, err = e.run(cfg, notifier) // same health: no mail
	wantFailed(t, err)
	mails, _ := be.Snapshot()
	if len(mails) != 1 {
		t.Fatalf("%d mails, want 1", len(mails))
	}
	data := string(mails[0].Data)
	for _, want := range []string{"Subject: [cfg] host1: prom OK -> CRITICAL", "To: oncall@example.com", "refused"} {
		if !strings.Contains(data, want) {
			t.Errorf("mail does not contain %q:\n%s", want, data)
		}
	}
	if strings.Contains(e.logs.String(), password) {
		t.Error("the SMTP password is in the logs")
	}
}

func TestRunHeartbeat(t *testing.T) {
	ping := newRunRemote(t)
	for _, p := range []string{"/ping/abc/start", "/ping/abc", "/ping/abc/fail"} {
		ping.Set(p, "")
	}
	take := func() string { return strings.Join(ping.takePaths(), " ") }
	e := newRunEnv(t)
	cfg := e.parse(e.config("") + fmt.Sprintf("\n[notify]\nping_url = %q\n", ping.url("/ping/abc")))
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if got := take(); got != "/ping/abc/start /ping/abc" {
		t.Errorf("good run pinged %q", got)
	}
	e.remote.fail("/rules/a.yml", 500)
	_, err = e.run(cfg, nil)
	wantFailed(t, err)
	if got := take(); got != "/ping/abc/start /ping/abc/fail" {
		t.Errorf("failed run pinged %q", got)
	}
	// A dead heartbeat never fails the run.
	ping.Close()
	e.remote.fail("/rules/a.yml", 0)
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if !strings.Contains(e.logs.String(), "heartbeat ping failed") {
		t.Error("a failed ping is not logged")
	}
}

// TestRunNotifyChannelsKeepTheirOwnBacklog: a change the webhook failed to deliver
// is sent again to the webhook only; the mail that got through is not repeated.
func TestRunNotifyChannelsKeepTheirOwnBacklog(t *testing.T) {
	cert, pool := smtptest.Cert(t)
	be := &smtptest.Backend{}
	port := smtptest.Serve(t, be, &cert)
	hook := &historyHook{}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	e := newRunEnv(t)
	cfg := e.parse(e.config("") + fmt.Sprintf(`
[health]
startup_grace = "0s"
[notify.webhook]
url = %q
[notify.email]
host = "127.0.0.1"
port = %d
from = "butler@example.com"
to = ["oncall@example.com"]
`, srv.URL, port))
	tlsOpt := func(o *Options) { o.NotifyTLS = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"} }
	_, err := e.run(cfg, tlsOpt)
	wantNoErr(t, err)

	hook.setFail(true)
	e.remote.fail("/rules/a.yml", 503)
	_, err = e.run(cfg, tlsOpt)
	wantFailed(t, err)
	if mails, _ := be.Snapshot(); len(mails) != 1 {
		t.Fatalf("%d mails after the change, want 1", len(mails))
	}
	e.wantMetric(t, 1, "butler_notify_failures_total", "channel", "webhook")
	if _, ok := e.lookup("butler_notify_failures_total", "channel", "email"); ok {
		t.Error("email failures counted though the mail went out")
	}

	hook.setFail(false)
	_, err = e.run(cfg, tlsOpt) // same health: only the webhook's backlog goes out
	wantFailed(t, err)
	if msgs := hook.take(); len(msgs) != 1 || strings.Join(changesOf(msgs[0]), ",") != "prom OK->WARNING" {
		t.Errorf("webhook backlog = %v", msgs)
	}
	if mails, _ := be.Snapshot(); len(mails) != 1 {
		t.Errorf("%d mails, want still 1: the mail channel had nothing pending", len(mails))
	}
}
