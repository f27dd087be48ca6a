package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/nettest"
	"github.com/butler-sre/butler/internal/smtptest"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/golden"
	"github.com/butler-sre/butler/pipeline/health"
)

// t0 is the time of the test message.
var t0 = time.Date(2026, 3, 1, 10, 5, 0, 0, time.UTC)

// testMessage has two changes and two problems, the problems given in
// the wrong order so that sorting shows.
func testMessage() Message {
	return Message{
		Host: "web1",
		Time: t0,
		Changes: []health.Change{
			{Time: t0.Add(-15 * time.Minute), Manager: "alertmanager", From: health.OK, To: health.Warning, Reason: "last successful fetch 15m ago"},
			{Time: t0.Add(-5 * time.Minute), Manager: "prometheus", From: health.OK, To: health.Critical, Reason: "validation refused the new configuration:\npromtool exit 1"},
		},
		Problems: []health.Problem{
			{Manager: "alertmanager", Level: health.Warning, Reason: "last successful fetch 15m ago", Since: t0.Add(-15 * time.Minute)},
			{Manager: "prometheus", Level: health.Critical, Reason: "validation refused the new configuration: promtool exit 1", Since: t0.Add(-5 * time.Minute)},
		},
	}
}

func TestGolden(t *testing.T) {
	msg := testMessage()
	body, err := notifyJSON(msg, "[butler]")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file string
		got  []byte
	}{
		{name: "subject", file: "subject.txt", got: []byte(msg.Subject("[butler]") + "\n")},
		{name: "text", file: "text.txt", got: []byte(msg.Text())},
		{name: "webhook body", file: "webhook.json", got: body},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden.Assert(t, "../../testdata/notify/"+tt.file, tt.got)
		})
	}
}

func TestMessageSubject(t *testing.T) {
	one := testMessage()
	one.Changes = one.Changes[1:]
	three := testMessage()
	three.Changes = append(three.Changes, health.Change{Time: t0, Manager: "loki", From: health.Unknown, To: health.OK})
	recovered := testMessage()
	recovered.Changes = []health.Change{
		{Manager: "a", From: health.Critical, To: health.OK},
		{Manager: "b", From: health.OK, To: health.Unknown},
	}
	tests := []struct {
		name   string
		msg    Message
		prefix string
		want   string
	}{
		{name: "one change", msg: one, prefix: "[butler]", want: "[butler] web1: prometheus OK -> CRITICAL"},
		{name: "several changes", msg: three, prefix: "[butler]", want: "[butler] web1: 3 health changes, worst CRITICAL"},
		{name: "unknown is not worse than ok's opposite", msg: recovered, prefix: "[butler]", want: "[butler] web1: 2 health changes, worst UNKNOWN"},
		{name: "no prefix", msg: one, prefix: "", want: "web1: prometheus OK -> CRITICAL"},
		{name: "no changes", msg: Message{Host: "web1"}, prefix: "[b]", want: "[b] web1: no health changes"},
		{name: "line breaks removed", msg: Message{Host: "web1\r\nBcc: x@example.com"}, prefix: "[b]", want: "[b] web1 Bcc: x@example.com: no health changes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.msg.Subject(tt.prefix); got != tt.want {
				t.Errorf("Subject(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		})
	}
}

func TestMessageText(t *testing.T) {
	recovered := Message{Host: "web1", Time: t0, Changes: []health.Change{
		{Time: t0, Manager: "prometheus", From: health.Critical, To: health.OK, Reason: "healthy again"},
	}}
	tests := []struct {
		name    string
		msg     Message
		want    []string // in this order
		notWant []string
	}{
		{
			name: "no current problems",
			msg:  recovered,
			want: []string{"Health changes on web1:", "prometheus  CRITICAL -> OK: healthy again", "web1 at 2026-03-01T10:05:00Z: no current problems."},
		},
		{
			name: "problems worst first then by name",
			msg: Message{Host: "web1", Time: t0, Problems: []health.Problem{
				{Manager: "z", Level: health.Unknown}, {Manager: "b", Level: health.Warning},
				{Manager: "a", Level: health.Warning}, {Manager: "c", Level: health.Critical},
			}},
			want: []string{"No health changes on web1.", "Current problems on web1 at", "CRITICAL  c", "WARNING   a", "WARNING   b", "UNKNOWN   z"},
		},
		{
			name: "changes oldest first",
			msg: Message{Host: "web1", Changes: []health.Change{
				{Time: t0, Manager: "later"}, {Time: t0.Add(-time.Hour), Manager: "earlier"},
			}},
			want: []string{"earlier", "later", "web1: no current problems."},
		},
		{
			name:    "reasons on one line",
			msg:     Message{Host: "web1", Problems: []health.Problem{{Manager: "m", Level: health.Critical, Reason: "one\ntwo\r\nthree"}}},
			want:    []string{"CRITICAL  m: one two three\n"},
			notWant: []string{"since"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.msg.Text()
			rest := text
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("text lacks %q (in order):\n%s", w, text)
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.notWant {
				if strings.Contains(text, w) {
					t.Errorf("text holds %q:\n%s", w, text)
				}
			}
		})
	}
}

// hookServer answers with a status and records the requests.
type hookServer struct {
	mu      sync.Mutex
	status  int
	body    string // "$AUTH" is replaced by the Authorization header
	hang    bool   // wait for the client to give up
	calls   int
	methods []string
	headers []http.Header
	bodies  [][]byte
}

func (s *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.calls++
	s.methods = append(s.methods, r.Method)
	s.headers = append(s.headers, r.Header.Clone())
	s.bodies = append(s.bodies, data)
	status, body, hang := s.status, s.body, s.hang
	s.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, strings.ReplaceAll(body, "$AUTH", r.Header.Get("Authorization")))
}

func (s *hookServer) snapshot() (int, []string, []http.Header, [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.methods, s.headers, s.bodies
}

func TestWebhook(t *testing.T) {
	const token = "s3cr3t-hook-token"
	tests := []struct {
		name      string
		status    int
		body      string // answer; "$AUTH" echoes the Authorization header
		hang      bool
		url       func(base string) string
		timeout   time.Duration
		wantErr   string // "" for success
		wantCalls int
	}{
		{name: "delivered", status: 204, wantCalls: 1},
		{name: "server error", status: 500, wantErr: "webhook: status 500", wantCalls: 1},
		{name: "redirect is not followed", status: 302, wantErr: "webhook: status 302", wantCalls: 1},
		{name: "echoed token redacted", status: 401, body: "rejected $AUTH\n", wantErr: "webhook: status 401: rejected xxxxx", wantCalls: 1},
		{name: "hanging server", hang: true, timeout: 200 * time.Millisecond, wantErr: "webhook: no response within 200ms", wantCalls: 1},
		{
			name: "server down, url credentials kept out",
			url: func(string) string {
				return "http://user:pw-" + token + "@" + nettest.ClosedAddr(t) + "/hook?token=" + token
			},
			wantErr: "webhook: no response",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hook := &hookServer{status: tt.status, body: tt.body, hang: tt.hang}
			srv := httptest.NewServer(hook)
			defer srv.Close()
			u := srv.URL + "/hook"
			if tt.url != nil {
				u = tt.url(srv.URL)
			}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			n := &Webhook{Config: config.Webhook{
				URL:     u,
				Headers: map[string]string{"Authorization": "Bearer " + token, "X-Team": "sre"},
				Timeout: timeout,
			}}
			start := time.Now()
			err := n.Send(context.Background(), testMessage())
			elapsed := time.Since(start)

			calls, methods, headers, bodies := hook.snapshot()
			if calls != tt.wantCalls {
				t.Errorf("server saw %d requests, want %d", calls, tt.wantCalls)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Send() = %v, want no error", err)
				}
			} else {
				if err == nil {
					t.Fatalf("Send() = nil, want an error containing %q", tt.wantErr)
				}
				t.Logf("error: %v", err)
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "pw-") {
					t.Errorf("error %q reveals a secret", err)
				}
				if elapsed > 5*time.Second {
					t.Errorf("Send took %s", elapsed)
				}
			}
			if calls == 0 {
				return
			}
			if methods[0] != http.MethodPost {
				t.Errorf("method %s, want POST", methods[0])
			}
			h := headers[0]
			if got := h.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if h.Get("Authorization") != "Bearer "+token || h.Get("X-Team") != "sre" {
				t.Errorf("configured headers did not arrive: %v", h)
			}
			checkBody(t, bodies[0])
		})
	}
}

func TestWebhookEchoRedacted(t *testing.T) {
	const (
		password = "pw-hook-Secret-77"
		token    = "tok-query-123456"
		apiKey   = "key-0987654321"
	)
	// The server rejects the request and quotes it back: its request line
	// and headers, as some error pages do.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "rejected "+r.URL.RequestURI()+" auth="+r.Header.Get("Authorization")+" key="+r.Header.Get("X-Api-Key"))
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://butler:"+password+"@", 1) + "/hook?token=" + token
	n := &Webhook{Config: config.Webhook{URL: u, Headers: map[string]string{"X-Api-Key": apiKey}, Timeout: 10 * time.Second}}
	err := n.Send(context.Background(), testMessage())
	if err == nil {
		t.Fatal("Send() = nil, want the server's 400")
	}
	basic := base64.StdEncoding.EncodeToString([]byte("butler:" + password))
	for _, secret := range []string{password, token, apiKey, basic} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q holds the secret %q", err, secret)
		}
	}
	if want := "webhook: status 400: rejected /hook?token=xxxxx auth=Basic xxxxx key=xxxxx"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// checkBody decodes a webhook body of testMessage and checks its fields.
func checkBody(t *testing.T, data []byte) {
	t.Helper()
	var got struct {
		Host    string `json:"host"`
		Time    string `json:"time"`
		Subject string `json:"subject"`
		Text    string `json:"text"`
		Changes []struct {
			Time, Manager, From, To, Reason string
		} `json:"changes"`
		Problems []struct {
			Manager, Level, Reason, Since string
		} `json:"problems"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, data)
	}
	msg := testMessage()
	if got.Host != "web1" || got.Time != "2026-03-01T10:05:00Z" {
		t.Errorf("host/time = %q %q", got.Host, got.Time)
	}
	if got.Subject != "[butler] web1: 2 health changes, worst CRITICAL" {
		t.Errorf("subject = %q", got.Subject)
	}
	if got.Text != msg.Text() {
		t.Errorf("text = %q, want %q", got.Text, msg.Text())
	}
	if len(got.Changes) != 2 || len(got.Problems) != 2 {
		t.Fatalf("%d changes and %d problems, want 2 and 2", len(got.Changes), len(got.Problems))
	}
	c := got.Changes[1]
	if c.Time != "2026-03-01T10:00:00Z" || c.Manager != "prometheus" || c.From != "OK" || c.To != "CRITICAL" || !strings.HasPrefix(c.Reason, "validation refused") {
		t.Errorf("second change = %+v", c)
	}
	p := got.Problems[0]
	if p.Manager != "prometheus" || p.Level != "CRITICAL" || p.Since != "2026-03-01T10:00:00Z" || p.Reason == "" {
		t.Errorf("first problem = %+v", p)
	}
	if got.Problems[1].Level != "WARNING" {
		t.Errorf("second problem = %+v", got.Problems[1])
	}
}

func TestEmail(t *testing.T) {
	const password = "pa55-w0rd-secret"
	cert, pool := smtptest.Cert(t)
	tests := []struct {
		name     string
		noTLS    bool   // server without STARTTLS
		untrust  bool   // client does not trust the server's certificate
		down     bool   // nothing listens
		silent   bool   // accepts and never greets
		user     string // client's user ("" = no AUTH, server then requires none)
		pass     string
		reason   string // reason of the second change
		wantErr  string
		wantAuth int
	}{
		{name: "delivered", user: "butler", pass: password, wantAuth: 1},
		{name: "without auth", wantAuth: 0},
		{name: "non-ascii and long lines", user: "butler", pass: password, reason: "réseau injoignable " + strings.Repeat("x", 1200), wantAuth: 1},
		{name: "dot at line start", user: "butler", pass: password, reason: "\n.\n.hidden", wantAuth: 1},
		{name: "wrong password", user: "butler", pass: password + "-wrong", wantErr: "auth", wantAuth: 1},
		{name: "no starttls", noTLS: true, user: "butler", pass: password, wantErr: "does not offer STARTTLS"},
		{name: "untrusted certificate", untrust: true, user: "butler", pass: password, wantErr: "starttls"},
		{name: "server down", down: true, user: "butler", pass: password, wantErr: "connect"},
		{name: "silent server", silent: true, user: "butler", pass: password, wantErr: "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &smtptest.Backend{}
			if tt.user != "" {
				be.User, be.Pass = "butler", password
			}
			var port int
			switch {
			case tt.down:
				port, _ = strconv.Atoi(nettest.ClosedAddr(t)[len("127.0.0.1:"):])
			case tt.silent:
				port = smtptest.Silent(t)
			case tt.noTLS:
				port = smtptest.Serve(t, be, nil)
			default:
				port = smtptest.Serve(t, be, &cert)
			}
			n := &Email{
				Config: config.Email{
					Host: "127.0.0.1", Port: port, Username: tt.user, Password: tt.pass,
					From: "butler@example.com", To: []string{"oncall@example.com", "sre@example.com"},
					Cc: []string{"boss@example.com"}, Subject: "[butler]",
				},
				TLSConfig: &tls.Config{RootCAs: pool},
			}
			if tt.untrust {
				n.TLSConfig = nil
			}
			msg := testMessage()
			if tt.reason != "" {
				msg.Changes[1].Reason = tt.reason
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if tt.silent {
				cancel()
				ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
			}
			defer cancel()
			start := time.Now()
			err := n.Send(ctx, msg)
			elapsed := time.Since(start)
			mails, auths := be.Snapshot()
			if auths != tt.wantAuth {
				t.Errorf("server saw %d AUTH attempts, want %d", auths, tt.wantAuth)
			}

			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Send() = nil, want an error containing %q", tt.wantErr)
				}
				t.Logf("error: %v", err)
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pa55") {
					t.Errorf("error %q reveals the password", err)
				}
				if len(mails) != 0 {
					t.Errorf("%d mails were sent, want none", len(mails))
				}
				if elapsed > 10*time.Second {
					t.Errorf("Send took %s", elapsed)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send() = %v, want no error", err)
			}
			if len(mails) != 1 {
				t.Fatalf("%d mails arrived, want 1", len(mails))
			}
			checkMail(t, mails[0], msg)
		})
	}
}

func TestEmailDialer(t *testing.T) {
	cert, pool := smtptest.Cert(t)
	be := &smtptest.Backend{}
	port := smtptest.Serve(t, be, &cert)
	tests := []struct {
		name     string
		port     int
		wantAddr string
	}{
		{name: "configured port", port: 2525, wantAddr: "localhost:2525"},
		{name: "default port", port: 0, wantAddr: "localhost:" + strconv.Itoa(config.DefaultSMTPPort)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addrs []string
			n := &Email{
				Config: config.Email{Host: "localhost", Port: tt.port, From: "butler@example.com", To: []string{"oncall@example.com"}, Subject: "[butler]"},
				// ServerName stays empty: Send sets it to the host.
				TLSConfig: &tls.Config{RootCAs: pool},
				Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
					addrs = append(addrs, network+" "+addr)
					var d net.Dialer
					return d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
				},
			}
			before, _ := be.Snapshot()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := n.Send(ctx, testMessage()); err != nil {
				t.Fatalf("Send() = %v", err)
			}
			if len(addrs) != 1 || addrs[0] != "tcp "+tt.wantAddr {
				t.Errorf("dialled %q, want one tcp %s", addrs, tt.wantAddr)
			}
			if mails, _ := be.Snapshot(); len(mails) != len(before)+1 {
				t.Errorf("%d mails arrived, want 1", len(mails)-len(before))
			}
		})
	}
}

// checkMail checks the envelope, headers and body of a mail of msg.
func checkMail(t *testing.T, m smtptest.Mail, msg Message) {
	t.Helper()
	if m.Helo != "web1" {
		t.Errorf("EHLO %q, want web1", m.Helo)
	}
	if m.From != "butler@example.com" {
		t.Errorf("MAIL FROM %q", m.From)
	}
	if got := strings.Join(m.To, ","); got != "oncall@example.com,sre@example.com,boss@example.com" {
		t.Errorf("RCPT TO %s", got)
	}
	pm, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("unreadable mail: %v\n%s", err, m.Data)
	}
	h := pm.Header
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"From":         "butler@example.com",
		"To":           "oncall@example.com, sre@example.com",
		"Cc":           "boss@example.com",
		"Content-Type": "text/plain; charset=utf-8",
		"MIME-Version": "1.0",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if want := msg.Subject("[butler]"); subject != want {
		t.Errorf("Subject: %q, want %q", subject, want)
	}
	if d, err := h.Date(); err != nil || !d.Equal(msg.Time) {
		t.Errorf("Date: %q (%v), want %s", h.Get("Date"), err, msg.Time)
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-ID: %q", id)
	}
	raw, err := io.ReadAll(pm.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Errorf("body line of %d bytes", len(line))
		}
	}
	body := raw
	if h.Get("Content-Transfer-Encoding") == "quoted-printable" {
		if body, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw))); err != nil {
			t.Fatal(err)
		}
	}
	if want := strings.ReplaceAll(msg.Text(), "\n", "\r\n"); string(body) != want {
		t.Errorf("body:\n%q\nwant:\n%q", body, want)
	}
}

// Both channels are a Channel; their names key the state's pending changes
// and failure counts, so they must not change.
var (
	_ Channel = (*Webhook)(nil)
	_ Channel = (*Email)(nil)
)

func TestChannelNames(t *testing.T) {
	for _, tt := range []struct {
		ch   Channel
		want string
	}{{&Webhook{}, "webhook"}, {&Email{}, "email"}} {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.ch.Name(); got != tt.want {
				t.Errorf("Name() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWebhookSubjectPrefix(t *testing.T) {
	tests := []struct {
		name, prefix, want string
	}{
		{name: "email subject prefix", prefix: "[x]", want: "[x] web1: 2 health changes, worst CRITICAL"},
		{name: "prefix of several words", prefix: "ALERT prod", want: "ALERT prod web1: 2 health changes, worst CRITICAL"},
		{name: "empty prefix is the default", prefix: "", want: config.DefaultSubject + " web1: 2 health changes, worst CRITICAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hook := &hookServer{status: 204}
			srv := httptest.NewServer(hook)
			defer srv.Close()
			n := &Webhook{Config: config.Webhook{URL: srv.URL, Timeout: 10 * time.Second}, SubjectPrefix: tt.prefix}
			if err := n.Send(context.Background(), testMessage()); err != nil {
				t.Fatal(err)
			}
			calls, _, _, bodies := hook.snapshot()
			if calls != 1 {
				t.Fatalf("server saw %d requests, want 1", calls)
			}
			var got struct {
				Subject string `json:"subject"`
			}
			if err := json.Unmarshal(bodies[0], &got); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, bodies[0])
			}
			if got.Subject != tt.want {
				t.Errorf("subject = %q, want %q", got.Subject, tt.want)
			}
		})
	}
}

// pingServer counts requests by path (with query).
type pingServer struct {
	mu     sync.Mutex
	status int
	hits   map[string]int
}

func (s *pingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.Method+" "+r.URL.RequestURI()]++
	status := s.status
	s.mu.Unlock()
	w.WriteHeader(status)
}

func TestPinger(t *testing.T) {
	tests := []struct {
		name    string
		path    string // appended to the server URL
		status  int
		call    func(p *Pinger) error
		want    string // the one request expected
		wantErr string
	}{
		{name: "start", path: "/ping/abc", status: 200, call: func(p *Pinger) error { return p.Start(context.Background()) }, want: "GET /ping/abc/start"},
		{name: "success", path: "/ping/abc", status: 200, call: func(p *Pinger) error { return p.Finish(context.Background(), true) }, want: "GET /ping/abc"},
		{name: "failure", path: "/ping/abc", status: 200, call: func(p *Pinger) error { return p.Finish(context.Background(), false) }, want: "GET /ping/abc/fail"},
		{name: "trailing slash", path: "/ping/abc/", status: 200, call: func(p *Pinger) error { return p.Start(context.Background()) }, want: "GET /ping/abc/start"},
		{name: "query kept", path: "/ping/abc?rid=7", status: 200, call: func(p *Pinger) error { return p.Finish(context.Background(), false) }, want: "GET /ping/abc/fail?rid=7"},
		{name: "error status", path: "/ping/abc", status: 404, call: func(p *Pinger) error { return p.Start(context.Background()) }, want: "GET /ping/abc/start", wantErr: "ping /start: status 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &pingServer{status: tt.status, hits: map[string]int{}}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			err := tt.call(&Pinger{URL: ts.URL + tt.path})
			if tt.wantErr == "" && err != nil {
				t.Errorf("ping: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("ping error %v, want %q", err, tt.wantErr)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if len(srv.hits) != 1 || srv.hits[tt.want] != 1 {
				t.Errorf("requests %v, want one %q", srv.hits, tt.want)
			}
		})
	}
	t.Run("no url pings nothing", func(t *testing.T) {
		var p *Pinger
		if err := p.Start(context.Background()); err != nil {
			t.Error(err)
		}
		if err := (&Pinger{}).Finish(context.Background(), false); err != nil {
			t.Error(err)
		}
	})
}

func TestPingerDead(t *testing.T) {
	tests := []struct {
		name    string
		url     func(t *testing.T) string
		wantErr string
	}{
		{name: "refused", url: func(t *testing.T) string { return "http://" + nettest.ClosedAddr(t) + "/ping/secret-uuid" }, wantErr: "ping /start: no response"},
		{name: "silent", url: func(t *testing.T) string {
			return "http://127.0.0.1:" + strconv.Itoa(smtptest.Silent(t)) + "/ping/secret-uuid"
		}, wantErr: "ping /start: no response within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Pinger{URL: tt.url(t), Timeout: 300 * time.Millisecond}
			start := time.Now()
			err := p.Start(context.Background())
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Start took %s", elapsed)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Start() = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "secret-uuid") {
				t.Errorf("error %q quotes the ping URL", err)
			}
		})
	}
}
