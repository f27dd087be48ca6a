package fetch

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/butler-sre/butler/pipeline/fetch/gcs"
	"github.com/butler-sre/butler/pipeline/fetch/neterr"
	"github.com/butler-sre/butler/pipeline/fetch/s3"
	"github.com/butler-sre/butler/pipeline/source"
)

// stores are the object store clients of a Fetcher, made on first use with
// its HTTP client, so their connections are shared too.
type stores struct {
	once sync.Once
	s3   *s3.Client
	gcs  *gcs.Client
}

func (f *Fetcher) objectStores() *stores {
	f.stores.once.Do(func() {
		f.stores.s3 = s3.New(s3.Options{HTTPClient: f.client})
		f.stores.gcs = gcs.New(gcs.Options{HTTPClient: f.client})
	})
	return &f.stores
}

// getObject fetches an s3 or gcs object straight into memory, conditional on
// req.If (the ETag, or for gcs the generation).
func (f *Fetcher) getObject(ctx context.Context, src, scheme string, req Request) (Result, error) {
	_, rest := source.SplitForced(src)
	u, sum, err := parseSource(rest, "invalid "+scheme+" source")
	if err != nil {
		return Result{}, err
	}
	var (
		status     int
		body       []byte
		bytes      int64
		validators Validators
		tooBig     error
	)
	st := f.objectStores()
	if scheme == "s3" {
		tooBig = s3.ErrTooLarge
		loc, lerr := s3.ParseLocation(u, nil)
		if lerr != nil {
			return Result{}, errorf(nil, "%s", lerr.Error())
		}
		var o s3.Object
		o, err = st.s3.Get(ctx, loc, s3.Conditions{ETag: req.If.ETag}, f.max)
		status, body, bytes, validators = o.Status, o.Body, o.Bytes, Validators{ETag: o.ETag}
	} else {
		tooBig = gcs.ErrTooLarge
		loc, lerr := gcs.ParseLocation(u, nil)
		if lerr != nil {
			return Result{}, errorf(nil, "%s", lerr.Error())
		}
		var o gcs.Object
		o, err = st.gcs.Get(ctx, loc, gcs.Conditions{ETag: req.If.ETag, Generation: req.If.Generation}, f.max)
		status, body, bytes, validators = o.Status, o.Body, o.Bytes, Validators{ETag: o.ETag, Generation: o.Generation}
	}
	res := Result{Status: status, Bytes: bytes, Validators: validators}
	switch {
	case errors.Is(err, tooBig):
		return res, tooLarge(f.max)
	case err != nil && neterr.IsTimeout(ctx, err):
		return Result{Status: status, Bytes: bytes}, contextError(ctx, err)
	case err != nil:
		var kind error
		switch {
		case errors.Is(err, fs.ErrNotExist):
			kind = fs.ErrNotExist
		case errors.Is(err, fs.ErrPermission):
			kind = fs.ErrPermission
		}
		return res, errorf(kind, "%s", err.Error())
	case status == http.StatusNotModified && req.If.IsZero():
		return res, errorf(nil, "%s status 304 Not Modified to a request without a condition", scheme)
	case status == http.StatusNotModified:
		res.NotModified = true
		if res.Validators.IsZero() {
			res.Validators = req.If
		}
		res.Checksum = sum
		return res, nil
	}
	if err := sum.Verify(body); err != nil {
		return res, err
	}
	res.Body = body
	return res, nil
}

// List lists the objects under an s3 or gcs prefix (a directory source),
// relative to it; more than limit is an error.
func (f *Fetcher) List(ctx context.Context, src string, limit int) ([]string, error) {
	detected, scheme, err := source.Detect(src, "")
	if err != nil {
		return nil, err
	}
	if !f.schemes[scheme] {
		return nil, errorf(nil, "scheme %q is not allowed (add it to [butler] schemes)", scheme)
	}
	if scheme == "git" {
		return f.listGit(ctx, src)
	}
	_, rest := source.SplitForced(detected)
	u, err := url.Parse(rest)
	if err != nil {
		return nil, errorf(nil, "invalid %s source", scheme)
	}
	// A prefix is written as a directory; the location parsers want the
	// name of an object.
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	st := f.objectStores()
	var names []string
	switch scheme {
	case "s3":
		loc, lerr := s3.ParseLocation(u, nil)
		if lerr != nil {
			return nil, errorf(nil, "%s", lerr.Error())
		}
		names, err = st.s3.List(ctx, loc, limit)
	case "gcs":
		loc, lerr := gcs.ParseLocation(u, nil)
		if lerr != nil {
			return nil, errorf(nil, "%s", lerr.Error())
		}
		names, err = st.gcs.List(ctx, loc, limit)
	default:
		return nil, errorf(nil, "%s sources cannot be listed", scheme)
	}
	if err != nil {
		if neterr.IsTimeout(ctx, err) {
			return nil, contextError(ctx, err)
		}
		return nil, errorf(nil, "%s", err.Error())
	}
	return names, nil
}
