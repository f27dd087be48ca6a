// Package notify tells people about health changes: a webhook (JSON POST),
// a mail over SMTP with STARTTLS, and a heartbeat ping.
//
// Guarantees:
//   - Every channel implements Channel; each Send delivers one message once,
//     bounded by its context and the channel's own timeout.
//   - Mail is never sent over an unencrypted connection: a server without
//     STARTTLS is an error.
//   - Error texts hold no header value, URL credential or password, nor the
//     base64 forms of the SMTP credentials a server may quote back.
package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/smtp"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/health"
	"github.com/butler-sre/butler/pipeline/httpreq"
	"github.com/butler-sre/butler/pipeline/redact"
)

// Limits of the notification channels.
const (
	notifyDialTimeout   = 10 * time.Second // SMTP connection set-up
	notifyEmailTimeout  = time.Minute      // a whole SMTP conversation when ctx has no deadline
	notifyPingTimeout   = 10 * time.Second // Pinger default
	notifyDetailMax     = 256              // bytes of a webhook answer quoted in an error
	notifyDrainMax      = 64 << 10         // bytes of an answer read before closing
	notifyMaxLineLength = 900              // longer body lines are sent quoted-printable (SMTP allows 998)
)

// Message is one notification.
type Message struct {
	Host     string
	Time     time.Time
	Changes  []health.Change  // oldest first; may include changes of earlier runs not yet delivered
	Problems []health.Problem // every current problem, worst first then by name
}

// Subject returns "<prefix> <host>: <summary>", e.g.
// "[butler] web1: prometheus OK -> CRITICAL" for one change and
// "[butler] web1: 3 health changes, worst CRITICAL" for several, where worst is
// the worst level a change went to. Line breaks are replaced by spaces, so the
// result is safe as a mail header.
func (m Message) Subject(prefix string) string {
	var summary string
	switch len(m.Changes) {
	case 0:
		summary = "no health changes"
	case 1:
		c := m.Changes[0]
		summary = fmt.Sprintf("%s %s -> %s", c.Manager, c.From, c.To)
	default:
		to := make([]health.Level, len(m.Changes))
		for i, c := range m.Changes {
			to[i] = c.To
		}
		summary = fmt.Sprintf("%d health changes, worst %s", len(m.Changes), health.Worst(to...))
	}
	var parts []string
	if p := strings.TrimSpace(prefix); p != "" {
		parts = append(parts, p)
	}
	if m.Host != "" {
		parts = append(parts, m.Host+":")
	}
	parts = append(parts, summary)
	return notifyOneLine(strings.Join(parts, " "))
}

// Text is the plain-text body: the changes, oldest first, then the current
// problems, worst first (or "no current problems"). Lines end with "\n".
func (m Message) Text() string {
	var b strings.Builder
	host := m.Host
	if host == "" {
		host = "this host"
	}
	changes := m.sortedChanges()
	if len(changes) == 0 {
		fmt.Fprintf(&b, "No health changes on %s.\n", host)
	} else {
		fmt.Fprintf(&b, "Health changes on %s:\n", host)
		for _, c := range changes {
			fmt.Fprintf(&b, "  %s  %s  %s -> %s", health.Stamp(c.Time), notifyOneLine(c.Manager), c.From, c.To)
			if r := notifyOneLine(c.Reason); r != "" {
				fmt.Fprintf(&b, ": %s", r)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n")
	at := ""
	if !m.Time.IsZero() {
		at = " at " + health.Stamp(m.Time)
	}
	problems := m.sortedProblems()
	if len(problems) == 0 {
		fmt.Fprintf(&b, "%s%s: no current problems.\n", host, at)
		return b.String()
	}
	fmt.Fprintf(&b, "Current problems on %s%s:\n", host, at)
	for _, p := range problems {
		fmt.Fprintf(&b, "  %-8s  %s", p.Level, notifyOneLine(p.Manager))
		if !p.Since.IsZero() {
			fmt.Fprintf(&b, " since %s", health.Stamp(p.Since))
			if !m.Time.IsZero() && !m.Time.Before(p.Since) {
				fmt.Fprintf(&b, " (%s)", health.Age(m.Time, p.Since))
			}
		}
		if r := notifyOneLine(p.Reason); r != "" {
			fmt.Fprintf(&b, ": %s", r)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// sortedChanges returns the changes oldest first (stable for equal times).
func (m Message) sortedChanges() []health.Change {
	out := slices.Clone(m.Changes)
	slices.SortStableFunc(out, func(a, b health.Change) int { return a.Time.Compare(b.Time) })
	return out
}

// sortedProblems returns the problems worst first, then by manager name.
func (m Message) sortedProblems() []health.Problem {
	out := slices.Clone(m.Problems)
	health.SortProblems(out)
	return out
}

// notifyJSONBody is the webhook's payload.
type notifyJSONBody struct {
	Host     string              `json:"host"`
	Time     string              `json:"time"`
	Subject  string              `json:"subject"`
	Text     string              `json:"text"`
	Changes  []notifyJSONChange  `json:"changes"`
	Problems []notifyJSONProblem `json:"problems"`
}

type notifyJSONChange struct {
	Time    string `json:"time"`
	Manager string `json:"manager"`
	From    string `json:"from"`
	To      string `json:"to"`
	Reason  string `json:"reason"`
}

type notifyJSONProblem struct {
	Manager string `json:"manager"`
	Level   string `json:"level"`
	Reason  string `json:"reason"`
	Since   string `json:"since,omitempty"`
}

// notifyJSON returns the webhook body of msg: times in RFC 3339 (UTC),
// levels as strings, no HTML escaping.
func notifyJSON(msg Message, subjectPrefix string) ([]byte, error) {
	body := notifyJSONBody{
		Host:     msg.Host,
		Subject:  msg.Subject(subjectPrefix),
		Text:     msg.Text(),
		Changes:  []notifyJSONChange{},
		Problems: []notifyJSONProblem{},
	}
	if !msg.Time.IsZero() {
		body.Time = health.Stamp(msg.Time)
	}
	for _, c := range msg.sortedChanges() {
		body.Changes = append(body.Changes, notifyJSONChange{
			Time: health.Stamp(c.Time), Manager: c.Manager, From: c.From.String(), To: c.To.String(), Reason: c.Reason,
		})
	}
	for _, p := range msg.sortedProblems() {
		jp := notifyJSONProblem{Manager: p.Manager, Level: p.Level.String(), Reason: p.Reason}
		if !p.Since.IsZero() {
			jp.Since = health.Stamp(p.Since)
		}
		body.Problems = append(body.Problems, jp)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Channel delivers a message, once.
type Channel interface {
	// Name is the channel's name in logs, metrics and the state: "webhook", "email".
	Name() string
	Send(ctx context.Context, msg Message) error
}

// Webhook POSTs the message as JSON.
type Webhook struct {
	Config config.Webhook
	// SubjectPrefix starts the "subject" field; the run gives the email
	// subject prefix when email is configured, DefaultSubject otherwise.
	SubjectPrefix string
	// Client posts the webhook. nil: a client without an overall timeout
	// that does not follow redirects; Config.Timeout bounds each request.
	Client *http.Client
}

// Email sends the message over SMTP with STARTTLS.
type Email struct {
	Config config.Email
	// TLSConfig is used for STARTTLS. nil: the system roots. An empty
	// ServerName is set to Config.Host.
	TLSConfig *tls.Config
	// Dialer connects to the SMTP server. nil: net.Dialer with a 10s timeout.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Name implements Channel.
func (*Webhook) Name() string { return "webhook" }

// Name implements Channel.
func (*Email) Name() string { return "email" }

// notifyError is an error whose text has been scrubbed of secrets; the wrapped
// error stays available to errors.Is and errors.As.
type notifyError struct {
	msg string
	err error
}

func (e *notifyError) Error() string { return e.msg }
func (e *notifyError) Unwrap() error { return e.err }

// notifyWrap returns "<prefix>: <err>" with every secret scrub knows removed.
func notifyWrap(scrub *redact.Scrubber, prefix string, err error) error {
	return &notifyError{msg: scrub.Scrub(prefix + ": " + err.Error()), err: err}
}

// Send POSTs the JSON body of msg once.
func (n *Webhook) Send(ctx context.Context, msg Message) error {
	w := n.Config
	scrub := redact.NewScrubber(redact.Secrets(w.URL)...)
	for _, v := range w.Headers {
		scrub.Add(v)
	}
	if u, err := url.Parse(w.URL); err == nil {
		if p, ok := u.User.Password(); ok {
			// net/http sends the user info as an Authorization: Basic
			// header, which a server may quote back.
			scrub.Add(base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + p)))
		}
	}
	prefix := n.SubjectPrefix
	if prefix == "" {
		prefix = config.DefaultSubject
	}
	body, err := notifyJSON(msg, prefix)
	if err != nil {
		return fmt.Errorf("webhook: encode: %w", err)
	}
	rctx := ctx
	if w.Timeout > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, w.Timeout)
		defer cancel()
	}
	headers := map[string]string{"Content-Type": "application/json"}
	for k, v := range w.Headers {
		headers[k] = v
	}
	req, err := httpreq.New(rctx, http.MethodPost, w.URL, bytes.NewReader(body), headers)
	if err != nil {
		return notifyWrap(scrub, "webhook: bad request", httpreq.Unwrap(err))
	}
	resp, err := httpreq.Client(n.Client).Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("webhook: no response: %w", ctx.Err())
		case rctx.Err() != nil:
			return fmt.Errorf("webhook: no response within %s: %w", w.Timeout, rctx.Err())
		}
		return notifyWrap(scrub, "webhook: no response", httpreq.Unwrap(err))
	}
	defer func() { _ = resp.Body.Close() }()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, notifyDetailMax))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, notifyDrainMax))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	text := fmt.Sprintf("webhook: status %d", resp.StatusCode)
	if detail := notifyOneLine(strings.ToValidUTF8(string(head), "\uFFFD")); detail != "" {
		text += ": " + detail
	}
	return errors.New(scrub.Scrub(text))
}

// Send delivers msg once over SMTP with STARTTLS.
func (n *Email) Send(ctx context.Context, msg Message) error {
	e := &n.Config
	scrub := redact.NewScrubber(EmailSecrets(*e)...)
	port := e.Port
	if port == 0 {
		port = config.DefaultSMTPPort
	}
	addr := net.JoinHostPort(e.Host, strconv.Itoa(port))
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, notifyEmailTimeout)
		defer cancel()
	}
	data, recipients, err := notifyMail(e, msg)
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}

	dial := n.Dialer
	if dial == nil {
		dial = (&net.Dialer{Timeout: notifyDialTimeout}).DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("email: connect to %s: %w", addr, ctx.Err())
		}
		return notifyWrap(scrub, "email: connect to "+addr, err)
	}
	defer func() { _ = conn.Close() }()
	// The end of ctx (its deadline or a cancel) unblocks any read or write
	// in progress; ctx.Err() is set by then, so errors name the real cause.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	fail := func(step string, err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("email: %s %s: %w", addr, step, ctx.Err())
		}
		return notifyWrap(scrub, fmt.Sprintf("email: %s %s", addr, step), err)
	}
	c, err := smtp.NewClient(conn, e.Host)
	if err != nil {
		return fail("greeting", err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Hello(notifyHeloName(msg.Host)); err != nil {
		return fail("hello", err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		_ = c.Quit()
		return fmt.Errorf("email: %s does not offer STARTTLS; refusing to send over an unencrypted connection", addr)
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if n.TLSConfig != nil {
		tlsConfig = n.TLSConfig.Clone()
	}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = e.Host
	}
	if err := c.StartTLS(tlsConfig); err != nil {
		return fail("starttls", err)
	}
	if e.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", e.Username, e.Password, e.Host)); err != nil {
			return fail("auth", err)
		}
	}
	if err := c.Mail(e.From); err != nil {
		return fail("mail from", err)
	}
	for _, r := range recipients {
		if err := c.Rcpt(r); err != nil {
			return fail("rcpt "+r, err)
		}
	}
	wc, err := c.Data()
	if err != nil {
		return fail("data", err)
	}
	if _, err := wc.Write(data); err != nil {
		_ = wc.Close()
		return fail("data", err)
	}
	if err := wc.Close(); err != nil {
		return fail("data", err)
	}
	// The server has accepted the message; a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}

// EmailSecrets returns what must never appear in a text about e: the
// password (also as quoted by %q, which net/smtp uses for server replies),
// and the base64 forms (standard and URL alphabets, padded and
// not) of the AUTH PLAIN response "\x00user\x00password" that Send sends,
// of the password and of the user name, so that a server quoting the
// exchange back in an error reply leaks nothing. A password inside any
// other base64 text is caught too: for each of the three byte offsets it
// can start at, the characters of the encoding that depend on it alone are
// known.
func EmailSecrets(e config.Email) []string {
	out := []string{e.Password}
	if q := strconv.Quote(e.Password); q[1:len(q)-1] != e.Password {
		out = append(out, q[1:len(q)-1])
	}
	if e.Password != "" {
		out = append(out, notifyBase64Forms("\x00"+e.Username+"\x00"+e.Password)...)
		out = append(out, notifyBase64Forms(e.Password)...)
		out = append(out, notifyBase64Cores(e.Password)...)
	}
	if e.Username != "" {
		out = append(out, notifyBase64Forms(e.Username)...)
	}
	return out
}

// notifyBase64Encodings are the alphabets a server may quote base64 in.
var notifyBase64Encodings = []*base64.Encoding{
	base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
}

// notifyBase64Forms returns s encoded in each of notifyBase64Encodings.
func notifyBase64Forms(s string) []string {
	out := make([]string, 0, len(notifyBase64Encodings))
	for _, enc := range notifyBase64Encodings {
		out = append(out, enc.EncodeToString([]byte(s)))
	}
	return out
}

// notifyBase64Cores returns, for s starting at each byte offset modulo 3 of
// a base64 text, the run of characters that encode bits of s alone: one of
// them is in any standard or URL base64 encoding of a text containing s.
func notifyBase64Cores(s string) []string {
	var out []string
	for k := range 3 {
		data := append(make([]byte, k), s...)
		first := (8*k + 5) / 6       // first character made of s's bits only
		last := (8*k + 8*len(s)) / 6 // one past the last such character
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			if text := enc.EncodeToString(data); last > first {
				out = append(out, text[first:last])
			}
		}
	}
	return out
}

// notifyMail returns the message as sent after DATA (headers and body, CRLF
// line endings, not yet dot-stuffed) and the envelope recipients.
func notifyMail(e *config.Email, msg Message) ([]byte, []string, error) {
	var recipients []string
	for _, a := range slices.Concat(e.To, e.Cc) {
		if !slices.Contains(recipients, a) {
			recipients = append(recipients, a)
		}
	}
	if len(recipients) == 0 {
		return nil, nil, errors.New("no recipients")
	}
	date := msg.Time
	if date.IsZero() {
		date = time.Now()
	}
	var id [12]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, nil, fmt.Errorf("message id: %w", err)
	}
	domain := "butler.invalid"
	if _, d, ok := strings.Cut(e.From, "@"); ok && d != "" {
		domain = d
	}

	var b bytes.Buffer
	header := func(name, value string) {
		fmt.Fprintf(&b, "%s: %s\r\n", name, notifyOneLine(value))
	}
	header("From", e.From)
	header("To", strings.Join(e.To, ", "))
	if len(e.Cc) > 0 {
		header("Cc", strings.Join(e.Cc, ", "))
	}
	header("Subject", mime.QEncoding.Encode("utf-8", msg.Subject(e.Subject)))
	header("Date", date.Format(time.RFC1123Z))
	header("Message-ID", fmt.Sprintf("<%d.%s@%s>", date.Unix(), hex.EncodeToString(id[:]), domain))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	body := strings.ReplaceAll(msg.Text(), "\n", "\r\n")
	if !notifyNeedsQP(body) {
		header("Content-Transfer-Encoding", "7bit")
		b.WriteString("\r\n")
		b.WriteString(body)
		return b.Bytes(), recipients, nil
	}
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, nil, err
	}
	return b.Bytes(), recipients, nil
}

// notifyNeedsQP reports whether a body must be quoted-printable: it has
// non-ASCII bytes or lines too long for SMTP.
func notifyNeedsQP(body string) bool {
	for line := range strings.SplitSeq(body, "\r\n") {
		if len(line) > notifyMaxLineLength {
			return true
		}
		for i := 0; i < len(line); i++ {
			if line[i] >= 0x80 || (line[i] < 0x20 && line[i] != '\t') {
				return true
			}
		}
	}
	return false
}

// notifyHeloName is the name butler gives in EHLO: the host when it looks like
// a host name, "localhost" otherwise.
func notifyHeloName(host string) string {
	if host == "" || len(host) > 253 {
		return "localhost"
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return "localhost"
		}
	}
	return host
}

// notifyOneLine replaces line breaks by spaces and trims the result.
func notifyOneLine(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s))
}

// Pinger is the heartbeat: a dead man's switch that expects a request at the
// start and at the end of every run. A nil Pinger or an empty URL pings nothing.
type Pinger struct {
	URL     string
	Client  *http.Client  // nil: a client of its own
	Timeout time.Duration // of each request; default 10s
}

// Start announces a run: GET URL + "/start".
func (p *Pinger) Start(ctx context.Context) error {
	return p.ping(ctx, "start")
}

// Finish announces the end of a run: GET URL when ok, URL + "/fail" otherwise.
func (p *Pinger) Finish(ctx context.Context, ok bool) error {
	if ok {
		return p.ping(ctx, "")
	}
	return p.ping(ctx, "fail")
}

// ping sends one GET to the URL with suffix appended to its path. Errors do
// not quote the URL: its path is often the check's secret.
func (p *Pinger) ping(ctx context.Context, suffix string) error {
	if p == nil || p.URL == "" {
		return nil
	}
	what := "ping"
	if suffix != "" {
		what += " /" + suffix
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return fmt.Errorf("%s: bad url %s", what, redact.URL(p.URL))
	}
	if suffix != "" {
		u = u.JoinPath(suffix)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = notifyPingTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%s: bad request: %w", what, httpreq.Unwrap(err))
	}
	client := p.Client
	if client == nil {
		client = &http.Client{}
	}
	resp, err := client.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%s: no response: %w", what, ctx.Err())
		case rctx.Err() != nil:
			return fmt.Errorf("%s: no response within %s: %w", what, timeout, rctx.Err())
		}
		return notifyWrap(redact.NewScrubber(redact.Secrets(p.URL)...), what+": no response", httpreq.Unwrap(err))
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, notifyDrainMax))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: status %d", what, resp.StatusCode)
	}
	return nil
}
