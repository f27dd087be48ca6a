package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/hashicorp/go-cleanhttp"
	getter "github.com/hashicorp/go-getter"
	"google.golang.org/api/googleapi"
)

// fetchDefaultMaxFileSize applies when FetcherConfig.MaxFileSize is not
// positive: remote content is never read without a limit.
const fetchDefaultMaxFileSize = 10 << 20

// fetchMaxRedirects is how many HTTP redirects one fetch follows.
const fetchMaxRedirects = 10

// fetchWatchInterval is how often the size of a download that butler cannot
// limit while it streams (s3, gcs, file) is checked.
const fetchWatchInterval = 100 * time.Millisecond

// fetchDownloadName is the name of the fresh destination inside a fetch's
// own staging directory.
const fetchDownloadName = "download"

// errFetchTooLarge marks a fetch stopped by max_file_size.
var errFetchTooLarge = errors.New("larger than max_file_size")

// fetchForced matches go-getter's forced getter prefix ("s3::", "git::").
var fetchForced = regexp.MustCompile(`^([A-Za-z0-9]+)::(.+)$`)

// FetcherConfig is what the configuration gives the fetch phase.
type FetcherConfig struct {
	// Schemes lists the allowed schemes: any of "https", "http", "s3",
	// "gcs", "file", "git".
	Schemes []string
	// MaxFileSize is the largest remote file in bytes; a larger one fails
	// its fetch. Zero or less means the default, 10 MiB.
	MaxFileSize int64
	// TempDir is where fresh per-fetch staging directories are made;
	// "" means os.TempDir().
	TempDir string
	// HTTPClient is used for HTTP(S) sources; nil means a client of the
	// Fetcher's own whose connections are kept alive across fetches. Its
	// transport, jar, timeout and redirect policy are kept; butler wraps
	// the transport to record statuses and limit sizes.
	HTTPClient *http.Client
}

// Fetcher downloads remote sources through go-getter with butler's safety
// rules: only allowed schemes, no netrc, no decompression, no symlinks, no
// X-Terraform-Get, never onto an existing file, and max_file_size enforced
// by butler itself. A Fetcher is safe for concurrent use.
type Fetcher struct {
	schemes map[string]bool
	max     int64
	tempDir string
	client  *http.Client // never modified after NewFetcher
}

// NewFetcher returns a Fetcher for cfg.
func NewFetcher(cfg FetcherConfig) *Fetcher {
	f := &Fetcher{
		schemes: map[string]bool{},
		max:     cfg.MaxFileSize,
		tempDir: cfg.TempDir,
		client:  cfg.HTTPClient,
	}
	for _, s := range cfg.Schemes {
		f.schemes[strings.ToLower(s)] = true
	}
	if f.max <= 0 {
		f.max = fetchDefaultMaxFileSize
	}
	if f.client == nil {
		f.client = &http.Client{Transport: cleanhttp.DefaultPooledTransport()}
	}
	return f
}

// fetchError is the error Fetch returns. Its text is scrubbed of secrets;
// it unwraps only to a safe sentinel (context.DeadlineExceeded,
// context.Canceled, fs.ErrNotExist, fs.ErrPermission, errFetchTooLarge),
// never to an error whose text could hold a credential.
type fetchError struct {
	msg  string
	kind error
}

func (e *fetchError) Error() string { return e.msg }
func (e *fetchError) Unwrap() error { return e.kind }

// fetchErrorf returns a fetchError of the given kind (nil for none).
func fetchErrorf(kind error, format string, args ...any) *fetchError {
	return &fetchError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// fetchRedirectError is a redirect butler refused.
type fetchRedirectError struct{ msg string }

func (e *fetchRedirectError) Error() string { return e.msg }

// Fetch downloads one source (a go-getter source string; relative file paths
// were already made absolute by the caller via ResolveSource) into a fresh,
// empty path inside a new temp dir, reads it into memory, removes the temp
// dir, and returns the bytes.
//
// status is the response code as butler_remote_status defines it: the HTTP
// status for http(s), also on errors; the storage API's HTTP status for s3
// and gcs; 200, 403 or 404 for file (403 also for a symlink or a file that
// is not regular, which butler refuses to read); 200 for git (404 or 403 for
// a missing or symlinked path inside the repository); 0 when there was no
// response at all: timeout (also one in the middle of a body), refused
// connection, DNS failure, a failed clone. A file larger than max_file_size
// keeps the status of its response.
//
// headers are sent with HTTP(S) requests only, and never to another host
// after a redirect. ctx carries the run deadline. The error says what
// happened ("http status 404 Not Found", "timed out", "larger than
// max_file_size 10MiB (10485760 bytes)", "scheme \"git\" is not allowed (add
// it to [butler] schemes)"); it does not repeat the source and never
// contains its credentials or the header values.
func (f *Fetcher) Fetch(ctx context.Context, source string, headers map[string]string) (data []byte, status int, err error) {
	data, status, err = f.fetch(ctx, source, headers)
	if err == nil {
		return data, status, nil
	}
	scrub := NewScrubber(Secrets(source)...)
	for _, v := range headers {
		scrub.Add(v)
	}
	fe := &fetchError{msg: err.Error()}
	var inner *fetchError
	if errors.As(err, &inner) {
		fe.kind = inner.kind
	}
	fe.msg = scrub.Scrub(fe.msg)
	return nil, status, fe
}

func (f *Fetcher) fetch(ctx context.Context, source string, headers map[string]string) ([]byte, int, error) {
	// With no base directory, ResolveSource fails exactly on a relative
	// file source, which the caller should have resolved.
	if _, err := ResolveSource(source, ""); err != nil {
		return nil, 0, err
	}
	src, scheme, err := fetchDetect(source, "")
	if err != nil {
		return nil, 0, err
	}
	if !f.schemes[scheme] {
		return nil, 0, fetchErrorf(nil, "scheme %q is not allowed (add it to [butler] schemes)", scheme)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fetchContextError(ctx, err)
	}
	td, err := os.MkdirTemp(f.tempDir, "butler-fetch-")
	if err != nil {
		return nil, 0, fmt.Errorf("create staging directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(td) }()

	switch scheme {
	case "http", "https":
		return f.fetchHTTP(ctx, td, src, headers)
	case "file":
		return f.fetchFile(ctx, td, src)
	case "s3", "gcs":
		return f.fetchObject(ctx, td, src, scheme)
	default: // "git": fetchDetect knows no other scheme
		return f.fetchGit(ctx, td, src)
	}
}

// fetchGet runs one go-getter download with butler's client settings.
func fetchGet(ctx context.Context, src, dst string, mode getter.ClientMode, getters map[string]getter.Getter) error {
	c := &getter.Client{
		Ctx:             ctx,
		Src:             src,
		Dst:             dst,
		Mode:            mode,
		Detectors:       fetchDetectors(),
		Decompressors:   map[string]getter.Decompressor{},
		Getters:         getters,
		DisableSymlinks: true,
	}
	return c.Get()
}

// fetchDetectors are the detectors butler uses: no BitBucket detector, which
// asks bitbucket.org over the network while merely detecting.
func fetchDetectors() []getter.Detector {
	return []getter.Detector{
		new(getter.GitHubDetector),
		new(getter.GitLabDetector),
		new(getter.GitDetector),
		new(getter.S3Detector),
		new(getter.GCSDetector),
		new(getter.FileDetector),
	}
}

// fetchSplitForced splits "s3::https://x" into "s3" and "https://x".
func fetchSplitForced(src string) (forced, rest string) {
	if m := fetchForced.FindStringSubmatch(src); m != nil {
		return m[1], m[2]
	}
	return "", src
}

// fetchNormalizeGS turns the usual "gs://bucket/object" form, which go-getter
// v1 does not know, into its "gcs::https://www.googleapis.com/..." form.
func fetchNormalizeGS(src string) string {
	if len(src) < 5 || !strings.EqualFold(src[:5], "gs://") {
		return src
	}
	bucket, object, _ := strings.Cut(src[5:], "/")
	if bucket == "" || object == "" {
		return src
	}
	return "gcs::https://www.googleapis.com/storage/v1/" + src[5:]
}

// fetchDetect runs go-getter's detection on source and returns the detected
// source and the scheme butler sees. pwd is the directory for relative file
// paths ("" refuses them).
func fetchDetect(source, pwd string) (detected, scheme string, err error) {
	if strings.TrimSpace(source) == "" {
		return "", "", errors.New("empty source")
	}
	scrub := NewScrubber(Secrets(source)...)
	src := fetchNormalizeGS(source)
	if _, rest := fetchSplitForced(src); strings.HasPrefix(strings.ToLower(rest), "bitbucket.org/") {
		return "", "", errors.New("bitbucket.org shorthand sources are not supported: write git::https://bitbucket.org/OWNER/REPO.git//PATH")
	}
	detected, err = getter.Detect(src, pwd, fetchDetectors())
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), src, RedactURL(src))
		return "", "", fmt.Errorf("unrecognised source: %s", scrub.Scrub(msg))
	}
	forced, rest := fetchSplitForced(detected)
	base, sub := getter.SourceDirSubdir(rest)
	u, err := url.Parse(base)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", "", fmt.Errorf("unrecognised source: %s", scrub.Scrub(err.Error()))
	}
	scheme = strings.ToLower(forced)
	if scheme == "" {
		scheme = u.Scheme
	}
	if !slices.Contains(knownSchemes, scheme) {
		if scheme == "ssh" {
			return "", "", fmt.Errorf("unsupported source scheme %q (for a git repository write git::ssh://...)", scheme)
		}
		return "", "", fmt.Errorf("unsupported source scheme %q", scheme)
	}
	if sub != "" && scheme != "git" {
		return "", "", fmt.Errorf("the \"//\" subdirectory form is only supported for git sources, not %q", scheme)
	}
	return detected, scheme, nil
}

// SourceScheme returns the scheme go-getter uses for src after detection and
// forced getters: "s3::https://..." is "s3", "git::https://..." and
// "github.com/a/b" are "git", "https://x" is "https", "gcs::..." and
// "gs://bucket/object" are "gcs", "/abs/path", "file:///x" and relative paths
// are "file". Other forms (hg, ftp, ssh without git::, bitbucket.org
// shorthand, the "//" subdirectory form outside git) are an error naming the
// problem. The error never contains the source's credentials.
func SourceScheme(src string) (string, error) {
	_, scheme, err := fetchDetect(src, string(filepath.Separator))
	return scheme, err
}

// ResolveSource makes a relative file source ("rules.yml", "./x/y.yml",
// "file::rules.yml") absolute against baseDir (the config file's directory);
// every other source (URLs, forced getters other than file::, absolute
// paths, shorthands such as "github.com/a/b" or "bucket.s3.amazonaws.com/k")
// is returned unchanged.
func ResolveSource(src, baseDir string) (string, error) {
	if strings.TrimSpace(src) == "" {
		return "", errors.New("empty source")
	}
	forced, rest := fetchSplitForced(src)
	if forced != "" && !strings.EqualFold(forced, "file") {
		return src, nil
	}
	if filepath.IsAbs(rest) || strings.HasPrefix(strings.ToLower(rest), "bitbucket.org/") {
		return src, nil
	}
	if u, err := url.Parse(rest); err == nil && u.Scheme != "" {
		return src, nil
	}
	ds := fetchDetectors()
	for _, d := range ds[:len(ds)-1] { // every detector but the file one
		if _, ok, err := d.Detect(rest, ""); ok || err != nil {
			return src, nil
		}
	}
	if baseDir == "" {
		return "", errors.New("relative file source needs the configuration file's directory")
	}
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		return "", fmt.Errorf("resolve source against %s: %w", baseDir, err)
	}
	resolved := filepath.Join(abs, rest)
	if forced != "" {
		return forced + "::" + resolved, nil
	}
	return resolved, nil
}

// fetchContextError describes a fetch ended by its context.
func fetchContextError(ctx context.Context, err error) *fetchError {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fetchErrorf(context.DeadlineExceeded, "timed out")
	}
	return fetchErrorf(context.Canceled, "canceled")
}

// fetchIsContextEnd reports whether err is the end of ctx or a network
// timeout.
func fetchIsContextEnd(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fetchTooLarge is the error for content larger than max bytes.
func fetchTooLarge(max int64) *fetchError {
	size := fmt.Sprintf("%d bytes", max)
	for _, u := range []struct {
		name  string
		bytes int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if max >= u.bytes && max%u.bytes == 0 {
			size = fmt.Sprintf("%d%s (%d bytes)", max/u.bytes, u.name, max)
			break
		}
	}
	return fetchErrorf(errFetchTooLarge, "larger than max_file_size %s", size)
}

// fetchChecksumMismatch describes a failed "?checksum=" check without
// go-getter's staging path.
func fetchChecksumMismatch(ce *getter.ChecksumError) *fetchError {
	return fetchErrorf(nil, "checksum mismatch: expected %x, got %x", ce.Expected, ce.Actual)
}

// fetchDescribe says what a transport-level error was, without the URL
// that net/http and the SDKs put around it.
func fetchDescribe(err error) string {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "no response: " + dns.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) {
		if op.Op == "dial" {
			return "no response: " + op.Error()
		}
		return "connection failed: " + op.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// fetchStatusRecorder holds the status of one fetch's latest HTTP response;
// 0 while a request has none.
type fetchStatusRecorder struct{ status atomic.Int64 }

// fetchStatusTransport records statuses and enforces max_file_size for one
// fetch; it wraps the shared transport, so connections stay shared.
type fetchStatusTransport struct {
	base http.RoundTripper
	max  int64
	rec  *fetchStatusRecorder
}

func (t *fetchStatusTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.rec.status.Store(0)
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.rec.status.Store(int64(resp.StatusCode))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 && resp.ContentLength > t.max {
		_ = resp.Body.Close()
		return nil, errFetchTooLarge
	}
	resp.Body = &fetchLimitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

// fetchLimitedBody fails a read that goes past the limit, whether or not
// the response announced a Content-Length.
type fetchLimitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *fetchLimitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errFetchTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errFetchTooLarge
	}
	return n, err
}

func (b *fetchLimitedBody) Close() error { return b.rc.Close() }

// fetchHTTPClient returns a client for one fetch: the shared transport
// wrapped with this fetch's recorder, and a redirect policy that refuses
// schemes that are not allowed and downgrades to http, and drops the
// configured headers when a redirect leaves the host.
func (f *Fetcher) fetchHTTPClient(rec *fetchStatusRecorder, headers map[string]string) *http.Client {
	base := f.client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	next := f.client.CheckRedirect
	return &http.Client{
		Transport: &fetchStatusTransport{base: base, max: f.max, rec: rec},
		Jar:       f.client.Jar,
		Timeout:   f.client.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= fetchMaxRedirects {
				return &fetchRedirectError{msg: fmt.Sprintf("stopped after %d redirects", fetchMaxRedirects)}
			}
			if !f.schemes[req.URL.Scheme] {
				return &fetchRedirectError{msg: fmt.Sprintf("redirect to scheme %q is not allowed", req.URL.Scheme)}
			}
			if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return &fetchRedirectError{msg: "redirect from https to http refused"}
			}
			if req.URL.Host != via[0].URL.Host {
				for k := range headers {
					req.Header.Del(k)
				}
			}
			if next != nil {
				return next(req, via)
			}
			return nil
		},
	}
}

func (f *Fetcher) fetchHTTP(ctx context.Context, td, src string, headers map[string]string) ([]byte, int, error) {
	rec := &fetchStatusRecorder{}
	h := make(http.Header, len(headers))
	for k, v := range headers {
		h.Set(k, v)
	}
	hg := &getter.HttpGetter{
		Netrc:                 false,
		XTerraformGetDisabled: true,
		DoNotCheckHeadFirst:   true,
		Header:                h,
		Client:                f.fetchHTTPClient(rec, headers),
	}
	getters := map[string]getter.Getter{}
	for _, s := range []string{"http", "https"} {
		if f.schemes[s] {
			getters[s] = hg
		}
	}
	err := fetchGet(ctx, src, filepath.Join(td, fetchDownloadName), getter.ClientModeFile, getters)
	status := int(rec.status.Load())
	if err != nil {
		var re *fetchRedirectError
		var ce *getter.ChecksumError
		switch {
		case errors.Is(err, errFetchTooLarge):
			return nil, status, fetchTooLarge(f.max)
		case errors.As(err, &ce):
			return nil, status, fetchChecksumMismatch(ce)
		case fetchIsContextEnd(ctx, err):
			return nil, 0, fetchContextError(ctx, err)
		case errors.As(err, &re):
			return nil, status, fetchErrorf(nil, "http status %d: %s", status, re.msg)
		case status != 0 && status != http.StatusOK && status != http.StatusPartialContent:
			return nil, status, fetchErrorf(nil, "http status %d %s", status, http.StatusText(status))
		case status == 0:
			return nil, 0, fetchErrorf(nil, "%s", fetchDescribe(err))
		default:
			return nil, status, fetchErrorf(nil, "http status %d: %s", status, fetchDescribe(err))
		}
	}
	data, err := fetchReadInside(td, fetchDownloadName, f.max)
	if err != nil {
		return nil, status, err
	}
	return data, status, nil
}

func (f *Fetcher) fetchFile(ctx context.Context, td, src string) ([]byte, int, error) {
	_, rest := fetchSplitForced(src)
	u, err := url.Parse(rest)
	if err != nil {
		return nil, 0, fetchErrorf(nil, "invalid file source")
	}
	p := u.Path
	if u.RawPath != "" { // as go-getter's FileGetter reads it
		p = u.RawPath
	}
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, http.StatusNotFound, fetchErrorf(fs.ErrNotExist, "file %s not found", p)
	case errors.Is(err, fs.ErrPermission):
		return nil, http.StatusForbidden, fetchErrorf(fs.ErrPermission, "file %s: permission denied", p)
	case err != nil:
		return nil, 0, fetchErrorf(nil, "file %s: %s", p, fetchDescribe(err))
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, http.StatusForbidden, fetchErrorf(fs.ErrPermission, "file %s is a symbolic link: butler does not follow symlinks, name the target instead", p)
	case !fi.Mode().IsRegular():
		return nil, http.StatusForbidden, fetchErrorf(fs.ErrPermission, "file %s is not a regular file", p)
	case fi.Size() > f.max:
		return nil, http.StatusOK, fetchTooLarge(f.max)
	}

	dst := filepath.Join(td, fetchDownloadName)
	wctx, stop := fetchWatchSize(ctx, dst, f.max)
	err = fetchGet(wctx, src, dst, getter.ClientModeFile, map[string]getter.Getter{"file": &getter.FileGetter{Copy: true}})
	if stop() {
		return nil, http.StatusOK, fetchTooLarge(f.max)
	}
	var ce *getter.ChecksumError
	switch {
	case err == nil:
	case errors.As(err, &ce):
		return nil, http.StatusOK, fetchChecksumMismatch(ce)
	case errors.Is(err, getter.ErrSymlinkCopy):
		return nil, http.StatusForbidden, fetchErrorf(fs.ErrPermission, "file %s is a symbolic link: butler does not follow symlinks, name the target instead", p)
	case errors.Is(err, fs.ErrNotExist):
		return nil, http.StatusNotFound, fetchErrorf(fs.ErrNotExist, "file %s not found", p)
	case errors.Is(err, fs.ErrPermission):
		return nil, http.StatusForbidden, fetchErrorf(fs.ErrPermission, "file %s: permission denied", p)
	case fetchIsContextEnd(ctx, err):
		return nil, 0, fetchContextError(ctx, err)
	default:
		return nil, 0, fetchErrorf(nil, "file %s: %s", p, err)
	}
	data, err := fetchReadInside(td, fetchDownloadName, f.max)
	if err != nil {
		return nil, http.StatusOK, err
	}
	return data, http.StatusOK, nil
}

// fetchObject fetches from s3 or gcs. The SDKs stream straight to disk with
// no limit of their own, so the download is watched and stopped once it
// passes max_file_size.
func (f *Fetcher) fetchObject(ctx context.Context, td, src, scheme string) ([]byte, int, error) {
	var g getter.Getter = new(getter.S3Getter)
	if scheme == "gcs" {
		g = new(getter.GCSGetter)
	}
	dst := filepath.Join(td, fetchDownloadName)
	wctx, stop := fetchWatchSize(ctx, dst, f.max)
	err := fetchGet(wctx, src, dst, getter.ClientModeFile, map[string]getter.Getter{scheme: g})
	if stop() {
		return nil, http.StatusOK, fetchTooLarge(f.max)
	}
	if err != nil {
		status := fetchStorageStatus(err)
		var ce *getter.ChecksumError
		switch {
		case errors.As(err, &ce):
			return nil, http.StatusOK, fetchChecksumMismatch(ce)
		case status != 0 && status != http.StatusOK:
			msg := fmt.Sprintf("%s status %d", scheme, status)
			var api interface {
				ErrorCode() string
				ErrorMessage() string
			}
			if errors.As(err, &api) && api.ErrorCode() != "" {
				msg += ": " + api.ErrorCode()
				if m := api.ErrorMessage(); m != "" {
					msg += ": " + m
				}
			}
			kind := error(nil)
			switch status {
			case http.StatusNotFound:
				kind = fs.ErrNotExist
			case http.StatusForbidden:
				kind = fs.ErrPermission
			}
			return nil, status, fetchErrorf(kind, "%s", msg)
		case fetchIsContextEnd(ctx, err):
			return nil, 0, fetchContextError(ctx, err)
		default:
			return nil, status, fetchErrorf(nil, "%s: %s", scheme, fetchDescribe(err))
		}
	}
	data, err := fetchReadInside(td, fetchDownloadName, f.max)
	if err != nil {
		return nil, http.StatusOK, err
	}
	return data, http.StatusOK, nil
}

// fetchStorageStatus digs the HTTP status out of an AWS SDK or Google Cloud
// Storage error; 0 when there was no response.
func fetchStorageStatus(err error) int {
	var withStatus interface{ HTTPStatusCode() int } // smithy-go and aws-sdk-go-v2 ResponseError
	if errors.As(err, &withStatus) && withStatus.HTTPStatusCode() > 0 {
		return withStatus.HTTPStatusCode()
	}
	if errors.Is(err, storage.ErrObjectNotExist) || errors.Is(err, storage.ErrBucketNotExist) {
		return http.StatusNotFound
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code > 0 {
		return ge.Code
	}
	return 0
}

// fetchWatchSize watches the file at p while a download writes it, and
// cancels the returned context once it grows past max. stop ends the watch
// and reports whether the limit was passed.
func fetchWatchSize(ctx context.Context, p string, max int64) (wctx context.Context, stop func() bool) {
	wctx, cancel := context.WithCancel(ctx)
	var exceeded atomic.Bool
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(fetchWatchInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-wctx.Done():
				return
			case <-tick.C:
				if fi, err := os.Lstat(p); err == nil && fi.Size() > max {
					exceeded.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	return wctx, func() bool {
		close(done)
		<-stopped
		cancel()
		return exceeded.Load()
	}
}

// fetchGit clones the repository into the staging directory and reads the
// file named after its "//" (or, without one, the last path element of the
// URL: git::https://host/repo.git/file.yml is not a form git knows, so
// git::https://host/repo//file.yml is the one to use for files below the
// top). go-getter's own GitGetter.GetFile only handles files at the top of
// a repository, so the repository is fetched in directory mode.
func (f *Fetcher) fetchGit(ctx context.Context, td, src string) ([]byte, int, error) {
	_, rest := fetchSplitForced(src)
	repo, sub := getter.SourceDirSubdir(rest)
	if sub == "" {
		u, err := url.Parse(repo)
		if err != nil {
			return nil, 0, fetchErrorf(nil, "invalid git source")
		}
		sub = path.Base(u.Path)
		u.Path = path.Dir(u.Path)
		repo = u.String()
	}
	sub = path.Clean("/" + sub)[1:]
	if sub == "" || strings.HasSuffix(sub, ".git") {
		return nil, 0, fetchErrorf(nil, "a git source must name a file in the repository: git::URL//PATH/TO/FILE")
	}
	dst := filepath.Join(td, "repo")
	err := fetchGet(ctx, "git::"+repo, dst, getter.ClientModeDir, map[string]getter.Getter{"git": new(getter.GitGetter)})
	if err != nil {
		if fetchIsContextEnd(ctx, err) {
			return nil, 0, fetchContextError(ctx, err)
		}
		return nil, 0, fetchErrorf(nil, "git: %s", fetchGitMessage(err))
	}
	data, err := fetchReadInside(dst, sub, f.max)
	if err != nil {
		status := http.StatusOK
		switch {
		case errors.Is(err, fs.ErrNotExist):
			status = http.StatusNotFound
		case errors.Is(err, fs.ErrPermission):
			status = http.StatusForbidden
		}
		return nil, status, err
	}
	return data, http.StatusOK, nil
}

// fetchGitMessage keeps the first line of git's output that says what failed,
// without go-getter's "error downloading 'URL'" around it.
func fetchGitMessage(err error) string {
	if inner := errors.Unwrap(err); inner != nil {
		err = inner
	}
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	for _, l := range lines {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "fatal:") || strings.HasPrefix(l, "error:") {
			return l
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// fetchReadInside reads the regular file rel below root without following
// any symlink on the way, refusing anything larger than max.
func fetchReadInside(root, rel string, max int64) ([]byte, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("open staging directory: %w", err)
	}
	defer func() { _ = r.Close() }()
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := r.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fetchErrorf(fs.ErrNotExist, "%s not found", rel)
		case err != nil:
			return nil, fetchErrorf(nil, "%s: %s", rel, fetchDescribe(err))
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, fetchErrorf(fs.ErrPermission, "%s is a symbolic link: butler does not follow symlinks", p)
		case i < len(parts)-1 && !fi.IsDir():
			return nil, fetchErrorf(fs.ErrNotExist, "%s not found", rel)
		case i == len(parts)-1 && !fi.Mode().IsRegular():
			return nil, fetchErrorf(fs.ErrPermission, "%s is not a regular file", rel)
		case i == len(parts)-1 && fi.Size() > max:
			return nil, fetchTooLarge(max)
		}
	}
	fh, err := r.Open(rel)
	if err != nil {
		return nil, fetchErrorf(nil, "%s: %s", rel, fetchDescribe(err))
	}
	defer func() { _ = fh.Close() }()
	data, err := io.ReadAll(io.LimitReader(fh, max+1))
	if err != nil {
		return nil, fetchErrorf(nil, "read %s: %s", rel, fetchDescribe(err))
	}
	if int64(len(data)) > max {
		return nil, fetchTooLarge(max)
	}
	return data, nil
}
