// Package fetch is the fetch phase: it downloads one source with butler's
// safety rules.
//
// Guarantees:
//   - Only the allowed schemes; no netrc, no decompression, no symlinks, no
//     X-Terraform-Get, no redirect to a scheme not allowed or from https to
//     http, and configured headers never follow a redirect to another host.
//   - max_file_size is enforced by butler itself, whether or not the server
//     announces a length.
//   - Downloads go to a fresh, empty path, never onto an existing file.
//   - Errors say what happened without the source's credentials or the
//     header values, and unwrap only to safe sentinels.
package fetch

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
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/hashicorp/go-cleanhttp"
	getter "github.com/hashicorp/go-getter"
	"google.golang.org/api/googleapi"

	"github.com/butler-sre/butler/pipeline/redact"
	"github.com/butler-sre/butler/pipeline/source"
)

// defaultMaxFileSize applies when Config.MaxFileSize is not
// positive: remote content is never read without a limit.
const defaultMaxFileSize = 10 << 20

// maxRedirects is how many HTTP redirects one fetch follows.
const maxRedirects = 10

// watchInterval is how often the size of a download that butler cannot
// limit while it streams (s3, gcs, file) is checked.
const watchInterval = 100 * time.Millisecond

// downloadName is the name of the fresh destination inside a fetch's
// own staging directory.
const downloadName = "download"

// errTooLarge marks a fetch stopped by max_file_size.
var errTooLarge = errors.New("larger than max_file_size")

// Config is what the configuration gives the fetch phase.
type Config struct {
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
	client  *http.Client // never modified after New
}

// New returns a Fetcher for cfg.
func New(cfg Config) *Fetcher {
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
		f.max = defaultMaxFileSize
	}
	if f.client == nil {
		f.client = &http.Client{Transport: cleanhttp.DefaultPooledTransport()}
	}
	return f
}

// failure is the error Fetch returns. Its text is scrubbed of secrets;
// it unwraps only to a safe sentinel (context.DeadlineExceeded,
// context.Canceled, fs.ErrNotExist, fs.ErrPermission, errTooLarge),
// never to an error whose text could hold a credential.
type failure struct {
	msg  string
	kind error
}

func (e *failure) Error() string { return e.msg }
func (e *failure) Unwrap() error { return e.kind }

// errorf returns a failure of the given kind (nil for none).
func errorf(kind error, format string, args ...any) *failure {
	return &failure{msg: fmt.Sprintf(format, args...), kind: kind}
}

// redirectError is a redirect butler refused.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

// Fetch downloads one source (a go-getter source string; relative file paths
// were already made absolute by the caller with source.Resolve) into a fresh,
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
func (f *Fetcher) Fetch(ctx context.Context, src string, headers map[string]string) (data []byte, status int, err error) {
	data, status, err = f.fetch(ctx, src, headers)
	if err == nil {
		return data, status, nil
	}
	scrub := redact.NewScrubber(redact.Secrets(src)...)
	for _, v := range headers {
		scrub.Add(v)
	}
	fe := &failure{msg: err.Error()}
	var inner *failure
	if errors.As(err, &inner) {
		fe.kind = inner.kind
	}
	fe.msg = scrub.Scrub(fe.msg)
	return nil, status, fe
}

func (f *Fetcher) fetch(ctx context.Context, raw string, headers map[string]string) ([]byte, int, error) {
	// With no base directory, Resolve fails exactly on a relative file
	// source, which the caller should have resolved.
	if _, err := source.Resolve(raw, ""); err != nil {
		return nil, 0, err
	}
	src, scheme, err := source.Detect(raw, "")
	if err != nil {
		return nil, 0, err
	}
	if !f.schemes[scheme] {
		return nil, 0, errorf(nil, "scheme %q is not allowed (add it to [butler] schemes)", scheme)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, contextError(ctx, err)
	}
	td, err := os.MkdirTemp(f.tempDir, "butler-fetch-")
	if err != nil {
		return nil, 0, fmt.Errorf("create staging directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(td) }()

	switch scheme {
	case "http", "https":
		return f.getHTTP(ctx, td, src, headers)
	case "file":
		return f.getFile(ctx, td, src)
	case "s3", "gcs":
		return f.getObject(ctx, td, src, scheme)
	default: // "git": fetchDetect knows no other scheme
		return f.getGit(ctx, td, src)
	}
}

// fetchGet runs one go-getter download with butler's client settings.
func get(ctx context.Context, src, dst string, mode getter.ClientMode, getters map[string]getter.Getter) error {
	c := &getter.Client{
		Ctx:             ctx,
		Src:             src,
		Dst:             dst,
		Mode:            mode,
		Detectors:       []getter.Detector{new(getter.GitHubDetector), new(getter.GitLabDetector), new(getter.GitDetector), new(getter.S3Detector), new(getter.GCSDetector), new(getter.FileDetector)}, // no BitBucket: it asks bitbucket.org
		Decompressors:   map[string]getter.Decompressor{},
		Getters:         getters,
		DisableSymlinks: true,
	}
	return c.Get()
}

// contextError describes a fetch ended by its context.
func contextError(ctx context.Context, err error) *failure {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errorf(context.DeadlineExceeded, "timed out")
	}
	return errorf(context.Canceled, "canceled")
}

// isContextEnd reports whether err is the end of ctx or a network
// timeout.
func isContextEnd(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tooLarge is the error for content larger than max bytes.
func tooLarge(max int64) *failure {
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
	return errorf(errTooLarge, "larger than max_file_size %s", size)
}

// checksumMismatch describes a failed "?checksum=" check without
// go-getter's staging path.
func checksumMismatch(ce *getter.ChecksumError) *failure {
	return errorf(nil, "checksum mismatch: expected %x, got %x", ce.Expected, ce.Actual)
}

// describe says what a transport-level error was, without the URL
// that net/http and the SDKs put around it.
func describe(err error) string {
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

// statusRecorder holds the status of one fetch's latest HTTP response;
// 0 while a request has none.
type statusRecorder struct{ status atomic.Int64 }

// statusTransport records statuses and enforces max_file_size for one
// fetch; it wraps the shared transport, so connections stay shared.
type statusTransport struct {
	base http.RoundTripper
	max  int64
	rec  *statusRecorder
}

func (t *statusTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.rec.status.Store(0)
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.rec.status.Store(int64(resp.StatusCode))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 && resp.ContentLength > t.max {
		_ = resp.Body.Close()
		return nil, errTooLarge
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

// limitedBody fails a read that goes past the limit, whether or not
// the response announced a Content-Length.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// httpClient returns a client for one fetch: the shared transport
// wrapped with this fetch's recorder, and a redirect policy that refuses
// schemes that are not allowed and downgrades to http, and drops the
// configured headers when a redirect leaves the host.
func (f *Fetcher) httpClient(rec *statusRecorder, headers map[string]string) *http.Client {
	base := f.client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	next := f.client.CheckRedirect
	return &http.Client{
		Transport: &statusTransport{base: base, max: f.max, rec: rec},
		Jar:       f.client.Jar,
		Timeout:   f.client.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return &redirectError{msg: fmt.Sprintf("stopped after %d redirects", maxRedirects)}
			}
			if !f.schemes[req.URL.Scheme] {
				return &redirectError{msg: fmt.Sprintf("redirect to scheme %q is not allowed", req.URL.Scheme)}
			}
			if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return &redirectError{msg: "redirect from https to http refused"}
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

func (f *Fetcher) getHTTP(ctx context.Context, td, src string, headers map[string]string) ([]byte, int, error) {
	rec := &statusRecorder{}
	h := make(http.Header, len(headers))
	for k, v := range headers {
		h.Set(k, v)
	}
	hg := &getter.HttpGetter{
		Netrc:                 false,
		XTerraformGetDisabled: true,
		DoNotCheckHeadFirst:   true,
		Header:                h,
		Client:                f.httpClient(rec, headers),
	}
	getters := map[string]getter.Getter{}
	for _, s := range []string{"http", "https"} {
		if f.schemes[s] {
			getters[s] = hg
		}
	}
	err := get(ctx, src, filepath.Join(td, downloadName), getter.ClientModeFile, getters)
	status := int(rec.status.Load())
	if err != nil {
		var re *redirectError
		var ce *getter.ChecksumError
		switch {
		case errors.Is(err, errTooLarge):
			return nil, status, tooLarge(f.max)
		case errors.As(err, &ce):
			return nil, status, checksumMismatch(ce)
		case isContextEnd(ctx, err):
			return nil, 0, contextError(ctx, err)
		case errors.As(err, &re):
			return nil, status, errorf(nil, "http status %d: %s", status, re.msg)
		case status != 0 && status != http.StatusOK && status != http.StatusPartialContent:
			return nil, status, errorf(nil, "http status %d %s", status, http.StatusText(status))
		case status == 0:
			return nil, 0, errorf(nil, "%s", describe(err))
		default:
			return nil, status, errorf(nil, "http status %d: %s", status, describe(err))
		}
	}
	data, err := readInside(td, downloadName, f.max)
	if err != nil {
		return nil, status, err
	}
	return data, status, nil
}

func (f *Fetcher) getFile(ctx context.Context, td, src string) ([]byte, int, error) {
	_, rest := source.SplitForced(src)
	u, err := url.Parse(rest)
	if err != nil {
		return nil, 0, errorf(nil, "invalid file source")
	}
	p := u.Path
	if u.RawPath != "" { // as go-getter's FileGetter reads it
		p = u.RawPath
	}
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, http.StatusNotFound, errorf(fs.ErrNotExist, "file %s not found", p)
	case errors.Is(err, fs.ErrPermission):
		return nil, http.StatusForbidden, errorf(fs.ErrPermission, "file %s: permission denied", p)
	case err != nil:
		return nil, 0, errorf(nil, "file %s: %s", p, describe(err))
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, http.StatusForbidden, errorf(fs.ErrPermission, "file %s is a symbolic link: butler does not follow symlinks, name the target instead", p)
	case !fi.Mode().IsRegular():
		return nil, http.StatusForbidden, errorf(fs.ErrPermission, "file %s is not a regular file", p)
	case fi.Size() > f.max:
		return nil, http.StatusOK, tooLarge(f.max)
	}

	dst := filepath.Join(td, downloadName)
	wctx, stop := watchSize(ctx, dst, f.max)
	err = get(wctx, src, dst, getter.ClientModeFile, map[string]getter.Getter{"file": &getter.FileGetter{Copy: true}})
	if stop() {
		return nil, http.StatusOK, tooLarge(f.max)
	}
	var ce *getter.ChecksumError
	switch {
	case err == nil:
	case errors.As(err, &ce):
		return nil, http.StatusOK, checksumMismatch(ce)
	case errors.Is(err, getter.ErrSymlinkCopy):
		return nil, http.StatusForbidden, errorf(fs.ErrPermission, "file %s is a symbolic link: butler does not follow symlinks, name the target instead", p)
	case errors.Is(err, fs.ErrNotExist):
		return nil, http.StatusNotFound, errorf(fs.ErrNotExist, "file %s not found", p)
	case errors.Is(err, fs.ErrPermission):
		return nil, http.StatusForbidden, errorf(fs.ErrPermission, "file %s: permission denied", p)
	case isContextEnd(ctx, err):
		return nil, 0, contextError(ctx, err)
	default:
		return nil, 0, errorf(nil, "file %s: %s", p, err)
	}
	data, err := readInside(td, downloadName, f.max)
	if err != nil {
		return nil, http.StatusOK, err
	}
	return data, http.StatusOK, nil
}

// fetchObject fetches from s3 or gcs. The SDKs stream straight to disk with
// no limit of their own, so the download is watched and stopped once it
// passes max_file_size.
func (f *Fetcher) getObject(ctx context.Context, td, src, scheme string) ([]byte, int, error) {
	var g getter.Getter = new(getter.S3Getter)
	if scheme == "gcs" {
		g = new(getter.GCSGetter)
	}
	dst := filepath.Join(td, downloadName)
	wctx, stop := watchSize(ctx, dst, f.max)
	err := get(wctx, src, dst, getter.ClientModeFile, map[string]getter.Getter{scheme: g})
	if stop() {
		return nil, http.StatusOK, tooLarge(f.max)
	}
	if err != nil {
		status := storageStatus(err)
		var ce *getter.ChecksumError
		switch {
		case errors.As(err, &ce):
			return nil, http.StatusOK, checksumMismatch(ce)
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
			return nil, status, errorf(kind, "%s", msg)
		case isContextEnd(ctx, err):
			return nil, 0, contextError(ctx, err)
		default:
			return nil, status, errorf(nil, "%s: %s", scheme, describe(err))
		}
	}
	data, err := readInside(td, downloadName, f.max)
	if err != nil {
		return nil, http.StatusOK, err
	}
	return data, http.StatusOK, nil
}

// storageStatus digs the HTTP status out of an AWS SDK or Google Cloud
// Storage error; 0 when there was no response.
func storageStatus(err error) int {
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

// watchSize watches the file at p while a download writes it, and
// cancels the returned context once it grows past max. stop ends the watch
// and reports whether the limit was passed.
func watchSize(ctx context.Context, p string, max int64) (wctx context.Context, stop func() bool) {
	wctx, cancel := context.WithCancel(ctx)
	var exceeded atomic.Bool
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(watchInterval)
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
func (f *Fetcher) getGit(ctx context.Context, td, src string) ([]byte, int, error) {
	_, rest := source.SplitForced(src)
	repo, sub := getter.SourceDirSubdir(rest)
	if sub == "" {
		u, err := url.Parse(repo)
		if err != nil {
			return nil, 0, errorf(nil, "invalid git source")
		}
		sub = path.Base(u.Path)
		u.Path = path.Dir(u.Path)
		repo = u.String()
	}
	sub = path.Clean("/" + sub)[1:]
	if sub == "" || strings.HasSuffix(sub, ".git") {
		return nil, 0, errorf(nil, "a git source must name a file in the repository: git::URL//PATH/TO/FILE")
	}
	dst := filepath.Join(td, "repo")
	err := get(ctx, "git::"+repo, dst, getter.ClientModeDir, map[string]getter.Getter{"git": new(getter.GitGetter)})
	if err != nil {
		if isContextEnd(ctx, err) {
			return nil, 0, contextError(ctx, err)
		}
		return nil, 0, errorf(nil, "git: %s", gitMessage(err))
	}
	data, err := readInside(dst, sub, f.max)
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

// gitMessage keeps the first line of git's output that says what failed,
// without go-getter's "error downloading 'URL'" around it.
func gitMessage(err error) string {
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

// readInside reads the regular file rel below root without following
// any symlink on the way, refusing anything larger than max.
func readInside(root, rel string, max int64) ([]byte, error) {
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
			return nil, errorf(fs.ErrNotExist, "%s not found", rel)
		case err != nil:
			return nil, errorf(nil, "%s: %s", rel, describe(err))
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, errorf(fs.ErrPermission, "%s is a symbolic link: butler does not follow symlinks", p)
		case i < len(parts)-1 && !fi.IsDir():
			return nil, errorf(fs.ErrNotExist, "%s not found", rel)
		case i == len(parts)-1 && !fi.Mode().IsRegular():
			return nil, errorf(fs.ErrPermission, "%s is not a regular file", rel)
		case i == len(parts)-1 && fi.Size() > max:
			return nil, tooLarge(max)
		}
	}
	fh, err := r.Open(rel)
	if err != nil {
		return nil, errorf(nil, "%s: %s", rel, describe(err))
	}
	defer func() { _ = fh.Close() }()
	data, err := io.ReadAll(io.LimitReader(fh, max+1))
	if err != nil {
		return nil, errorf(nil, "read %s: %s", rel, describe(err))
	}
	if int64(len(data)) > max {
		return nil, tooLarge(max)
	}
	return data, nil
}
