package s3

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The EC2 instance metadata service (IMDSv2): a session token from
// PUT /latest/api/token, then the role name and its credentials with
// GETs that carry the token.
const (
	defaultIMDSEndpoint = "http://169.254.169.254"
	imdsTokenPath       = "/latest/api/token"
	imdsRolesPath       = "/latest/meta-data/iam/security-credentials/"
	// imdsTokenTTL is the life asked for the session token, in seconds:
	// it serves the two GETs that follow, and a refresh asks a new one.
	imdsTokenTTL = "300"
	// imdsMaxBody bounds what is read of an answer.
	imdsMaxBody = 64 << 10
	// roleRefresh is how long before their expiry the instance role's
	// credentials are asked again (EC2 has new ones well before).
	roleRefresh = 5 * time.Minute
)

// imdsStatusError is an answer of the metadata service that is not 200.
type imdsStatusError struct {
	status int
	what   string
}

func (e *imdsStatusError) Error() string {
	return fmt.Sprintf("instance metadata status %d for the %s", e.status, e.what)
}

// instanceRole gives the credentials of the EC2 instance's role, kept
// until shortly before they expire. Each retrieval, all its requests
// together, takes at most timeout.
type instanceRole struct {
	endpoint string
	timeout  time.Duration
	http     *http.Client
	now      func() time.Time

	mu      sync.Mutex
	keys    keys
	expires time.Time // zero when the service gave none: never asked again
}

// newInstanceRole asks the metadata service at endpoint ("" for the
// default). Its requests never go through a proxy: the service is only
// on the instance's link-local address.
func newInstanceRole(endpoint string, timeout time.Duration) *instanceRole {
	if endpoint == "" {
		endpoint = defaultIMDSEndpoint
	}
	return &instanceRole{
		endpoint: strings.TrimSuffix(endpoint, "/"),
		timeout:  timeout,
		http:     &http.Client{Transport: &http.Transport{Proxy: nil}},
		now:      time.Now,
	}
}

// retrieve returns the role's credentials: those kept, else new ones. When
// a refresh fails while the kept ones are still valid, those are used.
func (r *instanceRole) retrieve(ctx context.Context) (keys, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.keys.set() && (r.expires.IsZero() || now.Before(r.expires.Add(-roleRefresh))) {
		return r.keys, nil
	}
	k, expires, err := r.fetch(ctx)
	if err != nil {
		if r.keys.set() && now.Before(r.expires) {
			return r.keys, nil
		}
		return keys{}, err
	}
	r.keys, r.expires = k, expires
	return k, nil
}

// fetch asks the metadata service for a token, the role's name and the
// role's credentials, within r.timeout.
func (r *instanceRole) fetch(ctx context.Context) (keys, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	token, err := r.token(ctx)
	if err != nil {
		return keys{}, time.Time{}, err
	}
	list, err := r.get(ctx, token, imdsRolesPath, "role name")
	if err != nil {
		return keys{}, time.Time{}, err
	}
	role := ""
	sc := bufio.NewScanner(bytes.NewReader(list))
	for role == "" && sc.Scan() {
		role = strings.TrimSpace(sc.Text())
	}
	if role == "" {
		return keys{}, time.Time{}, &imdsStatusError{status: http.StatusNotFound, what: "role name (empty list)"}
	}
	data, err := r.get(ctx, token, imdsRolesPath+role, "credentials of role "+role)
	if err != nil {
		return keys{}, time.Time{}, err
	}
	var doc struct {
		Code            string
		Message         string
		AccessKeyID     string `json:"AccessKeyId"`
		SecretAccessKey string
		Token           string
		Expiration      time.Time
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return keys{}, time.Time{}, fmt.Errorf("instance metadata: credentials of role %s: %v", role, err)
	}
	switch {
	case !strings.EqualFold(doc.Code, "Success"):
		return keys{}, time.Time{}, fmt.Errorf("instance metadata: credentials of role %s: %s: %s", role, doc.Code, doc.Message)
	case doc.AccessKeyID == "" || doc.SecretAccessKey == "":
		return keys{}, time.Time{}, fmt.Errorf("instance metadata: credentials of role %s: no AccessKeyId or SecretAccessKey", role)
	}
	return keys{id: doc.AccessKeyID, secret: doc.SecretAccessKey, token: doc.Token}, doc.Expiration, nil
}

// token asks for an IMDSv2 session token. A service that does not know
// the PUT (403, 404 or 405: IMDSv1 only) gives "" and is asked without.
func (r *instanceRole) token(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.endpoint+imdsTokenPath, nil)
	if err != nil {
		return "", fmt.Errorf("instance metadata: %w", err)
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", imdsTokenTTL)
	data, status, err := r.do(req)
	switch {
	case err != nil:
		return "", err
	case status == http.StatusForbidden || status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		return "", nil
	case status != http.StatusOK:
		return "", &imdsStatusError{status: status, what: "session token"}
	}
	return strings.TrimSpace(string(data)), nil
}

// get reads path with the session token.
func (r *instanceRole) get(ctx context.Context, token, path, what string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.endpoint+path, nil)
	if err != nil {
		return nil, fmt.Errorf("instance metadata: %w", err)
	}
	if token != "" {
		req.Header.Set("X-aws-ec2-metadata-token", token)
	}
	data, status, err := r.do(req)
	switch {
	case err != nil:
		return nil, err
	case status != http.StatusOK:
		return nil, &imdsStatusError{status: status, what: what}
	}
	return data, nil
}

// do sends req and reads the answer.
func (r *instanceRole) do(req *http.Request) ([]byte, int, error) {
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, imdsMaxBody))
	if err != nil {
		return nil, 0, err
	}
	return data, resp.StatusCode, nil
}
