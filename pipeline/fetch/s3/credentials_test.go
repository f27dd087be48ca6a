package s3

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/errtest"
	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/internal/nettest"
)

func TestParseProfile(t *testing.T) {
	const file = `# the shared credentials file
[default]
aws_access_key_id = DEFAULTKEY
aws_secret_access_key = DEFAULTSECRET

[ops]
; comment
AWS_ACCESS_KEY_ID=OPSKEY
aws_secret_access_key = OPSSECRET   # inline comment
aws_session_token = OPSTOKEN
s3 =
  aws_access_key_id = NESTED
  max_concurrent_requests = 10
region = eu-west-1

[ role ]
role_arn = arn:aws:iam::123456789012:role/x
source_profile = default
`
	cases := []struct {
		name      string
		data      string
		profile   string
		want      keys
		wantFound bool
		wantErr   string
	}{
		{name: "default", data: file, profile: "default", want: keys{"DEFAULTKEY", "DEFAULTSECRET", ""}, wantFound: true},
		{name: "named, comments, case and nesting", data: file, profile: "ops", want: keys{"OPSKEY", "OPSSECRET", "OPSTOKEN"}, wantFound: true},
		{name: "no keys", data: file, profile: "role", wantFound: true},
		{name: "missing profile", data: file, profile: "nope"},
		{name: "empty file", data: "", profile: "default"},
		{name: "CRLF", data: "[default]\r\naws_access_key_id = K\r\naws_secret_access_key = S\r\n", profile: "default", want: keys{"K", "S", ""}, wantFound: true},
		{name: "section without bracket", data: "[default\n", profile: "default", wantErr: "line 1: section without ]"},
		{name: "line without =", data: "[default]\naws_access_key_id\n", profile: "default", wantErr: "line 2: neither [section] nor key = value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, found, err := parseProfile([]byte(tc.data), tc.profile)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || found != tc.wantFound {
				t.Errorf("got %+v found %v, want %+v found %v", got, found, tc.want, tc.wantFound)
			}
		})
	}
}

// writeFile writes a file (0600) under dir and returns its path.
func writeFile(t *testing.T, dir, rel, data string) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	fstest.WriteFile(t, p, data, 0o600)
	return p
}

// credTestStore returns a store holding a.yml, and a home directory whose
// shared credentials file (~/.aws/credentials) holds credentials.
func credTestStore(t *testing.T, credentials string) (*store, string) {
	t.Helper()
	s := newStore(t)
	s.put(t, "a.yml", []byte("a"))
	home := t.TempDir()
	writeFile(t, home, ".aws/credentials", credentials)
	return s, home
}

func TestCredentialChain(t *testing.T) {
	s, home := credTestStore(t, "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n\n[ops]\naws_access_key_id = OPSKEY\naws_secret_access_key = OPSSECRET\naws_session_token = OPSTOKEN\n\n[role]\nrole_arn = arn:aws:iam::123456789012:role/x\n")
	other := writeFile(t, t.TempDir(), "creds", "[default]\naws_access_key_id = OTHERKEY\naws_secret_access_key = OTHERSECRET\n")
	emptyHome := t.TempDir()
	envKeys := map[string]string{"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "ENVSECRET", "AWS_SESSION_TOKEN": "ENVTOKEN"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name      string
		query     string
		env       map[string]string
		wantKey   string
		wantToken string
		wantErr   string
	}{
		{name: "environment", env: with(envKeys, "HOME", emptyHome), wantKey: "ENVKEY", wantToken: "ENVTOKEN"},
		{name: "environment before the file", env: with(envKeys, "HOME", home), wantKey: "ENVKEY", wantToken: "ENVTOKEN"},
		{name: "file, default profile", env: with(nil, "HOME", home), wantKey: "FILEKEY"},
		{name: "file, AWS_PROFILE", env: with(nil, "HOME", home, "AWS_PROFILE", "ops"), wantKey: "OPSKEY", wantToken: "OPSTOKEN"},
		{name: "file, aws_profile of the source before AWS_PROFILE and the environment", query: "?aws_profile=ops",
			env: with(envKeys, "HOME", home, "AWS_PROFILE", "default"), wantKey: "OPSKEY", wantToken: "OPSTOKEN"},
		{name: "AWS_SHARED_CREDENTIALS_FILE", env: with(nil, "HOME", home, "AWS_SHARED_CREDENTIALS_FILE", other), wantKey: "OTHERKEY"},
		{name: "AWS_SHARED_CREDENTIALS_FILE with ~", env: with(nil, "HOME", home, "AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"), wantKey: "FILEKEY"},
		{name: "named profile missing", env: with(nil, "HOME", home, "AWS_PROFILE", "nope"),
			wantErr: `s3: no AWS credentials: profile "nope" not found in ` + filepath.Join(home, ".aws/credentials")},
		{name: "named profile without keys", query: "?aws_profile=role", env: with(nil, "HOME", home),
			wantErr: `s3: no AWS credentials: profile "role" has no aws_access_key_id`},
		{name: "named profile, no file", query: "?aws_profile=ops", env: with(nil, "HOME", emptyHome), wantErr: `profile "ops": read ` + filepath.Join(emptyHome, ".aws/credentials") + ": no such file or directory"},
		{name: "half a pair in the environment", env: with(nil, "HOME", home, "AWS_ACCESS_KEY_ID", "ENVKEY"),
			wantErr: "s3: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"},
		{name: "nothing, instance role disabled", env: with(nil, "HOME", emptyHome),
			wantErr: "s3: no AWS credentials: none in the source, the environment (AWS_ACCESS_KEY_ID) or the shared credentials file; the instance role is disabled (AWS_EC2_METADATA_DISABLED)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Options{Getenv: testEnv(t, tc.env)})
			_, err := c.Get(context.Background(), location(t, s.srv.URL+"/configs/a.yml"+tc.query), Conditions{}, 10)
			errtest.Want(t, "Get", err, tc.wantErr)
			if err != nil {
				return
			}
			r := s.rec.Last(t)
			if id, _ := scope(t, r); id != tc.wantKey {
				t.Errorf("signed by %s, want %s", id, tc.wantKey)
			}
			if tok := r.Header.Get("X-Amz-Security-Token"); tok != tc.wantToken {
				t.Errorf("X-Amz-Security-Token %q, want %q", tok, tc.wantToken)
			}
		})
	}
}

// imdsServer is a fake EC2 instance metadata service (IMDSv2) that gives
// the role "butler" the key ROLEKEY, or answers as its mode says: "no
// role" (404), "hang" (never answers; each request is reported on
// arrived), "v1 only" (405 to the PUT for a token, and GETs without one).
// As the real service does, it refuses a PUT without a TTL between 1 and
// 21600 seconds (400) and a GET without the token (401).
type imdsServer struct {
	*httptest.Server
	mode     atomic.Value // string
	expires  atomic.Value // time.Time: the Expiration given; zero for 6h from now
	requests atomic.Int64
	arrived  chan struct{}
	log      nettest.Log[string] // "METHOD path" and " token" when the GET had one
}

func newIMDS(t *testing.T, mode string) *imdsServer {
	s := &imdsServer{arrived: make(chan struct{}, 100)}
	s.mode.Store(mode)
	s.expires.Store(time.Time{})
	done := make(chan struct{})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		entry := r.Method + " " + r.URL.Path
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != "" {
			entry += " token"
		}
		s.log.Add(entry)
		mode := s.mode.Load().(string)
		switch {
		case mode == "hang":
			s.arrived <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-done:
			}
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" && mode == "v1 only":
			w.WriteHeader(http.StatusMethodNotAllowed)
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			ttl, err := strconv.Atoi(r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
			if err != nil || ttl < 1 || ttl > 21600 {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", strconv.Itoa(ttl))
			_, _ = w.Write([]byte("IMDSTOKEN"))
		case r.Method != http.MethodGet:
			w.WriteHeader(http.StatusMethodNotAllowed)
		case mode != "v1 only" && r.Header.Get("X-Aws-Ec2-Metadata-Token") != "IMDSTOKEN":
			w.WriteHeader(http.StatusUnauthorized)
		case mode == "no role":
			http.NotFound(w, r)
		case r.URL.Path == "/latest/meta-data/iam/security-credentials/":
			_, _ = w.Write([]byte("butler\n"))
		case r.URL.Path == "/latest/meta-data/iam/security-credentials/butler":
			expires := s.expires.Load().(time.Time)
			if expires.IsZero() {
				expires = time.Now().Add(6 * time.Hour)
			}
			_ = json.NewEncoder(w).Encode(map[string]string{
				"Code": "Success", "AccessKeyId": "ROLEKEY", "SecretAccessKey": "ROLESECRET", "Token": "ROLETOKEN",
				"Expiration": expires.UTC().Format(time.RFC3339),
			})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(func() {
		close(done)
		s.Close()
	})
	return s
}

func TestInstanceRole(t *testing.T) {
	s, home := credTestStore(t, "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n")
	cases := []struct {
		name      string
		mode      string
		query     string
		env       map[string]string
		wantKey   string
		wantToken string
		wantErr   string
		wantAsked bool
	}{
		{name: "used when nothing else gives keys", wantKey: "ROLEKEY", wantToken: "ROLETOKEN", wantAsked: true},
		{name: "not asked with keys in the source", query: withKeys(), wantKey: testKeyID},
		{name: "not asked with keys in the environment", env: map[string]string{"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "ENVSECRET"}, wantKey: "ENVKEY"},
		{name: "not asked with keys in the file", env: map[string]string{"HOME": home}, wantKey: "FILEKEY"},
		{name: "not asked for a named profile", query: "?aws_profile=ops", env: map[string]string{"HOME": home}, wantErr: `profile "ops" not found`},
		{name: "no role", mode: "no role", wantErr: "; no instance role: the instance has none (instance metadata status 404)", wantAsked: true},
		{name: "no answer", mode: "hang", wantErr: "; no instance role: instance metadata: no answer within 200ms", wantAsked: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			imds := newIMDS(t, tc.mode)
			env := map[string]string{"AWS_EC2_METADATA_DISABLED": ""}
			for k, v := range tc.env {
				env[k] = v
			}
			c := New(Options{Getenv: testEnv(t, env), IMDSEndpoint: imds.URL, IMDSTimeout: 200 * time.Millisecond})
			src := s.srv.URL + "/configs/a.yml" + tc.query
			for i := range 2 { // the second Get asks nothing more
				start := time.Now()
				_, err := c.Get(context.Background(), location(t, src), Conditions{}, 10)
				// A silent metadata service would hold the Get as
				// long as its context; the bound is 200ms.
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("Get %d took %v", i, d)
				}
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("Get %d: error %v, want one containing %q", i, err, tc.wantErr)
					}
				} else {
					if err != nil {
						t.Fatalf("Get %d: %v", i, err)
					}
					r := s.rec.Last(t)
					if id, _ := scope(t, r); id != tc.wantKey {
						t.Errorf("Get %d signed by %s, want %s", i, id, tc.wantKey)
					}
					if tok := r.Header.Get("X-Amz-Security-Token"); tok != tc.wantToken {
						t.Errorf("Get %d: X-Amz-Security-Token %q, want %q", i, tok, tc.wantToken)
					}
				}
				if i == 0 && tc.wantAsked != (imds.requests.Load() > 0) {
					t.Fatalf("instance metadata asked %d times, want asked %v", imds.requests.Load(), tc.wantAsked)
				}
			}
			if !tc.wantAsked && imds.requests.Load() != 0 {
				t.Errorf("instance metadata asked %d times", imds.requests.Load())
			}
		})
	}
}

func TestInstanceRoleAskedOnce(t *testing.T) {
	s := newStore(t)
	s.put(t, "a.yml", []byte("a"))
	for _, mode := range []string{"", "no role", "hang"} {
		t.Run("mode "+mode, func(t *testing.T) {
			imds := newIMDS(t, mode)
			c := New(Options{Getenv: testEnv(t, map[string]string{"AWS_EC2_METADATA_DISABLED": ""}), IMDSEndpoint: imds.URL, IMDSTimeout: 200 * time.Millisecond})
			_, _ = c.Get(context.Background(), location(t, s.srv.URL+"/configs/a.yml"), Conditions{}, 10)
			first := imds.requests.Load()
			for range 3 {
				_, _ = c.Get(context.Background(), location(t, s.srv.URL+"/configs/a.yml"), Conditions{}, 10)
			}
			if n := imds.requests.Load(); n != first || n == 0 {
				t.Errorf("instance metadata asked %d times after the first Get, %d times in all", n-first, n)
			}
		})
	}
}

func TestInstanceRoleCanceledIsNotKept(t *testing.T) {
	s := newStore(t)
	s.put(t, "a.yml", []byte("a"))
	imds := newIMDS(t, "hang")
	c := New(Options{Getenv: testEnv(t, map[string]string{"AWS_EC2_METADATA_DISABLED": ""}), IMDSEndpoint: imds.URL})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-imds.arrived // the run ends while the instance role is asked
		cancel()
	}()
	if _, err := c.Get(ctx, location(t, s.srv.URL+"/configs/a.yml"), Conditions{}, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want canceled", err)
	}
	imds.mode.Store("")
	if _, err := c.Get(context.Background(), location(t, s.srv.URL+"/configs/a.yml"), Conditions{}, 10); err != nil {
		t.Fatalf("Get after a canceled one: %v", err)
	}
}

func TestInstanceRoleIMDSv2(t *testing.T) {
	s := newStore(t)
	s.put(t, "a.yml", []byte("a"))
	cases := []struct {
		mode    string
		wantLog []string
	}{
		{mode: "", wantLog: []string{
			"PUT /latest/api/token",
			"GET /latest/meta-data/iam/security-credentials/ token",
			"GET /latest/meta-data/iam/security-credentials/butler token",
		}},
		{mode: "v1 only", wantLog: []string{
			"PUT /latest/api/token",
			"GET /latest/meta-data/iam/security-credentials/",
			"GET /latest/meta-data/iam/security-credentials/butler",
		}},
	}
	for _, tc := range cases {
		t.Run("mode "+tc.mode, func(t *testing.T) {
			imds := newIMDS(t, tc.mode)
			c := New(Options{Getenv: testEnv(t, map[string]string{"AWS_EC2_METADATA_DISABLED": ""}), IMDSEndpoint: imds.URL + "/"})
			if _, err := c.Get(context.Background(), location(t, s.srv.URL+"/configs/a.yml"), Conditions{}, 10); err != nil {
				t.Fatal(err)
			}
			if id, _ := scope(t, s.rec.Last(t)); id != "ROLEKEY" {
				t.Errorf("signed by %s, want ROLEKEY", id)
			}
			if got := imds.log.Take(); !slices.Equal(got, tc.wantLog) {
				t.Errorf("requests\n got %q\nwant %q", got, tc.wantLog)
			}
		})
	}
}

func TestInstanceRoleEnvEndpoint(t *testing.T) {
	s := newStore(t)
	s.put(t, "a.yml", []byte("a"))
	imds := newIMDS(t, "")
	env := testEnv(t, map[string]string{"AWS_EC2_METADATA_DISABLED": "", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.URL})
	if _, err := New(Options{Getenv: env}).Get(context.Background(), location(t, s.srv.URL+"/configs/a.yml"), Conditions{}, 10); err != nil {
		t.Fatal(err)
	}
	if imds.requests.Load() != 3 {
		t.Errorf("instance metadata asked %d times, want 3", imds.requests.Load())
	}
}

func TestInstanceRoleRefresh(t *testing.T) {
	imds := newIMDS(t, "")
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	imds.expires.Store(base.Add(10 * time.Minute))
	r := newInstanceRole(imds.URL, time.Second)
	steps := []struct {
		name      string
		now       time.Time
		mode      string
		wantAsked int
		wantErr   bool
	}{
		{name: "first", now: base, wantAsked: 3},
		{name: "kept", now: base.Add(4 * time.Minute)},
		{name: "asked again 5 minutes before the expiry", now: base.Add(6 * time.Minute), wantAsked: 3},
		{name: "a failed refresh keeps valid keys", now: base.Add(7 * time.Minute), mode: "no role", wantAsked: 2},
		{name: "expired keys are not kept", now: base.Add(11 * time.Minute), mode: "no role", wantAsked: 2, wantErr: true},
	}
	for _, st := range steps {
		imds.mode.Store(st.mode)
		r.now = func() time.Time { return st.now }
		k, err := r.retrieve(context.Background())
		if st.wantErr != (err != nil) || (err == nil && k.id != "ROLEKEY") {
			t.Errorf("%s: %+v, %v", st.name, k.id, err)
		}
		if n := len(imds.log.Take()); n != st.wantAsked {
			t.Errorf("%s: %d requests, want %d", st.name, n, st.wantAsked)
		}
	}
}
