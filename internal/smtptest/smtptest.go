// Package smtptest is a real SMTP server for tests (go-smtp), on 127.0.0.1,
// with STARTTLS on a self-signed certificate and optional AUTH PLAIN. It
// records every message it accepts. Silent is a server that never greets.
// Tests only.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is one message the server accepted.
type Mail struct {
	Helo string
	From string
	To   []string
	Data []byte
}

// Backend records what the server accepts. With User set, it requires AUTH
// PLAIN with that user and Pass.
type Backend struct {
	User, Pass string
	// Echo, when set, makes the server refuse every AUTH with a 535 reply
	// whose text is Echo(response), response being the decoded SASL PLAIN
	// response ("identity\x00user\x00password"): a server that quotes the
	// exchange back, as some do in their error replies.
	Echo func(response []byte) string

	mu    sync.Mutex
	mails []Mail
	auths int
}

// NewSession implements smtp.Backend.
func (b *Backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{be: b, helo: c.Hostname()}, nil
}

// Snapshot returns the mails accepted so far and the number of AUTH attempts.
func (b *Backend) Snapshot() ([]Mail, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Mail(nil), b.mails...), b.auths
}

type session struct {
	be     *Backend
	helo   string
	authed bool
	from   string
	to     []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	if s.be.Echo != nil {
		return echoServer{be: s.be}, nil
	}
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.be.mu.Lock()
		s.be.auths++
		s.be.mu.Unlock()
		if user != s.be.User || pass != s.be.Pass {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

// echoServer refuses the SASL exchange, quoting its response back.
type echoServer struct{ be *Backend }

func (e echoServer) Next(response []byte) ([]byte, bool, error) {
	e.be.mu.Lock()
	e.be.auths++
	e.be.mu.Unlock()
	return nil, false, &smtp.SMTPError{
		Code:         535,
		EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message:      strings.NewReplacer("\r", " ", "\n", " ").Replace(e.be.Echo(response)),
	}
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.be.User != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.be.mu.Lock()
	s.be.mails = append(s.be.mails, Mail{Helo: s.helo, From: s.from, To: s.to, Data: data})
	s.be.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// Cert returns a self-signed certificate for 127.0.0.1 and a pool that
// trusts it.
func Cert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtp test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// Serve starts an SMTP server for be on 127.0.0.1 and returns its port. It
// offers STARTTLS when cert is set; without it, it offers AUTH in the clear,
// so that only the client's own refusal keeps credentials safe.
func Serve(t testing.TB, be *Backend, cert *tls.Certificate) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(be)
	s.Domain = "mx.test"
	s.ErrorLog = log.New(io.Discard, "", 0)
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	if cert != nil {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	} else {
		s.AllowInsecureAuth = true
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// Silent starts a server on 127.0.0.1 that accepts connections and never
// says a word, and returns its port: an SMTP server that never greets, or an
// HTTP server that never answers. Its connections close when the test ends.
func Silent(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port
}
