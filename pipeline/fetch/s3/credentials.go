package s3

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/butler-sre/butler/pipeline/fetch/neterr"
)

// provider gives credentials.
type provider interface {
	retrieve(ctx context.Context) (keys, error)
}

// credError is a failure to find credentials; its text says where butler
// looked and never holds a credential.
type credError struct{ msg string }

func (e *credError) Error() string { return e.msg }

// chain finds the credentials of sources that carry none, once per Client
// and profile: the environment, then the shared credentials file, then the
// EC2 instance role, which is asked only when nothing else gave keys, and
// never for longer than its timeout. The outcome is kept, so a run with
// no credentials asks the instance metadata service once, not once per
// file.
type chain struct {
	getenv       func(string) string
	imdsEndpoint string
	imdsTimeout  time.Duration

	mu    sync.Mutex
	found map[string]provider // by the source's aws_profile
	errs  map[string]error
}

func newChain(getenv func(string) string, imdsEndpoint string, imdsTimeout time.Duration) *chain {
	return &chain{
		getenv:       getenv,
		imdsEndpoint: imdsEndpoint,
		imdsTimeout:  imdsTimeout,
		found:        map[string]provider{},
		errs:         map[string]error{},
	}
}

// retrieve returns the credentials for a source whose "?aws_profile=" is
// profile ("" for none).
func (c *chain) retrieve(ctx context.Context, profile string) (keys, error) {
	p, err := c.provider(ctx, profile)
	if err != nil {
		return keys{}, err
	}
	return p.retrieve(ctx)
}

func (c *chain) provider(ctx context.Context, profile string) (provider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.found[profile]; ok {
		return p, nil
	}
	if err, ok := c.errs[profile]; ok {
		return nil, err
	}
	p, err := c.resolve(ctx, profile)
	switch {
	case err == nil:
		c.found[profile] = p
	case ctx.Err() == nil: // a run that ended while looking decides nothing
		c.errs[profile] = err
	}
	return p, err
}

// resolve walks the chain. A profile named by the source or by AWS_PROFILE
// must exist; the default profile may be missing.
func (c *chain) resolve(ctx context.Context, profile string) (provider, error) {
	if profile == "" {
		if k, err := c.fromEnv(); err != nil || k.set() {
			return static(k), err
		}
	}
	named := profile != ""
	if profile == "" {
		profile = c.getenv("AWS_PROFILE")
		named = profile != ""
	}
	if profile == "" {
		profile = "default"
	}
	file, err := c.credentialsFile()
	if err != nil {
		return nil, err
	}
	k, err := readProfile(file, profile, named)
	if err != nil || k.set() {
		return static(k), err
	}
	if named {
		return nil, &credError{msg: fmt.Sprintf("no AWS credentials: profile %q has no aws_access_key_id in %s (only static keys are read there)", profile, file)}
	}
	return c.instanceRole(ctx)
}

// fromEnv reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN; half a pair is an error rather than a reason to try
// other credentials.
func (c *chain) fromEnv() (keys, error) {
	k := keys{id: c.getenv("AWS_ACCESS_KEY_ID"), secret: c.getenv("AWS_SECRET_ACCESS_KEY"), token: c.getenv("AWS_SESSION_TOKEN")}
	switch {
	case k.id != "" && k.secret == "":
		return keys{}, &credError{msg: "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"}
	case k.id == "" && k.secret != "":
		return keys{}, &credError{msg: "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"}
	}
	return k, nil
}

// credentialsFile is AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials.
func (c *chain) credentialsFile() (string, error) {
	home := c.getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if f := c.getenv("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
		if rest, ok := strings.CutPrefix(f, "~/"); ok && home != "" {
			f = filepath.Join(home, rest)
		}
		return f, nil
	}
	if home == "" {
		return "", nil
	}
	return filepath.Join(home, ".aws", "credentials"), nil
}

// readProfile reads the keys of profile from the shared credentials file.
// A missing file or profile gives no keys, or an error when the profile
// was named.
func readProfile(file, profile string, named bool) (keys, error) {
	if file == "" {
		if named {
			return keys{}, &credError{msg: fmt.Sprintf("no AWS credentials: profile %q named but no home directory to find the shared credentials file in", profile)}
		}
		return keys{}, nil
	}
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !named:
		return keys{}, nil
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return keys{}, &credError{msg: fmt.Sprintf("no AWS credentials: profile %q: read %s: %v", profile, file, err)}
	}
	k, ok, err := parseProfile(data, profile)
	switch {
	case err != nil:
		return keys{}, &credError{msg: fmt.Sprintf("no AWS credentials: %s: %v", file, err)}
	case !ok && named:
		return keys{}, &credError{msg: fmt.Sprintf("no AWS credentials: profile %q not found in %s", profile, file)}
	case k.id != "" && k.secret == "":
		return keys{}, &credError{msg: fmt.Sprintf("no AWS credentials: profile %q in %s has aws_access_key_id but no aws_secret_access_key", profile, file)}
	}
	return k, nil
}

// parseProfile finds [profile] in an AWS shared credentials file (INI:
// "[name]" sections, "key = value" lines, "#" and ";" comments, indented
// sub-properties under a key with an empty value) and returns its
// aws_access_key_id, aws_secret_access_key and aws_session_token.
func parseProfile(data []byte, profile string) (k keys, found bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	in := false
	nested := false // the lines below a "key =" with no value
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if nested && raw[0] != line[0] { // indented: a sub-property
			continue
		}
		nested = false
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return keys{}, false, fmt.Errorf("line %d: section without ]", n)
			}
			in = strings.TrimSpace(line[1:end]) == profile
			found = found || in
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return keys{}, false, fmt.Errorf("line %d: neither [section] nor key = value", n)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		if i := strings.IndexAny(value, "#;"); i > 0 && (value[i-1] == ' ' || value[i-1] == '\t') {
			value = strings.TrimSpace(value[:i]) // an inline comment
		}
		if value == "" {
			nested = true
		}
		if !in {
			continue
		}
		switch name {
		case "aws_access_key_id":
			k.id = value
		case "aws_secret_access_key":
			k.secret = value
		case "aws_session_token":
			k.token = value
		}
	}
	if err := sc.Err(); err != nil {
		return keys{}, false, err
	}
	return k, found, nil
}

// instanceRole asks the EC2 instance metadata service for the instance
// role's credentials, within imdsTimeout; it is the last link of the chain.
func (c *chain) instanceRole(ctx context.Context) (provider, error) {
	const none = "no AWS credentials: none in the source, the environment (AWS_ACCESS_KEY_ID) or the shared credentials file"
	if strings.EqualFold(c.getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		return nil, &credError{msg: none + "; the instance role is disabled (AWS_EC2_METADATA_DISABLED)"}
	}
	endpoint := c.imdsEndpoint
	if endpoint == "" {
		endpoint = c.getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
	}
	p := newInstanceRole(endpoint, c.imdsTimeout)
	if _, err := p.retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		var status *imdsStatusError
		var op *net.OpError
		why := neterr.Describe(err)
		switch {
		case errors.As(err, &status) && status.status == http.StatusNotFound:
			why = "the instance has none (instance metadata status 404)"
		case errors.As(err, &op):
			why = "instance metadata: " + neterr.Describe(err)
		case errors.Is(err, context.DeadlineExceeded):
			why = "instance metadata: no answer within " + c.imdsTimeout.String()
		}
		return nil, &credError{msg: none + "; no instance role: " + why}
	}
	return p, nil
}

// staticKeys are credentials that do not change.
type staticKeys keys

func (k staticKeys) retrieve(context.Context) (keys, error) { return keys(k), nil }

// static is a provider of fixed keys; nil for no keys.
func static(k keys) provider {
	if !k.set() {
		return nil
	}
	return staticKeys(k)
}
