package fetch

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/butler-sre/butler/pipeline/fetch/git"
	"github.com/butler-sre/butler/pipeline/fetch/neterr"
	"github.com/butler-sre/butler/pipeline/source"
)

// checkouts are the git checkouts of a Fetcher, one per repository and ref,
// shared by every file (and directory listing) of a run that names them.
type checkouts struct {
	mu sync.Mutex
	by map[string]*checkout
}

type checkout struct {
	once sync.Once
	co   *git.Checkout
	err  error
}

// Close removes the checkouts the Fetcher made.
func (f *Fetcher) Close() error {
	f.git.mu.Lock()
	defer f.git.mu.Unlock()
	var errs []error
	for _, c := range f.git.by {
		if c.co != nil {
			errs = append(errs, c.co.Close())
		}
	}
	f.git.by = nil
	return errors.Join(errs...)
}

// checkout returns the checkout of s's repository at its ref, made once.
func (f *Fetcher) checkout(ctx context.Context, s *source.Source) (*git.Checkout, error) {
	key := s.URL.String() + "\x00" + s.Ref + "\x00" + string(s.SSHKey)
	f.git.mu.Lock()
	if f.git.by == nil {
		f.git.by = map[string]*checkout{}
	}
	c, ok := f.git.by[key]
	if !ok {
		c = &checkout{}
		f.git.by[key] = c
	}
	f.git.mu.Unlock()
	c.once.Do(func() {
		cl := &git.Client{Staging: f.tempDir, MaxFileSize: f.max}
		c.co, c.err = cl.Checkout(ctx, s)
	})
	return c.co, c.err
}

// gitSource parses a git source; without "//", the last element of the
// path is the file (git::https://host/repo/file.yml).
func gitSource(src string) (*source.Source, string, error) {
	s, err := source.Parse(src)
	if err != nil {
		return nil, "", err
	}
	sub := s.Subdir
	if sub == "" {
		u := *s.URL
		sub = path.Base(u.Path)
		u.Path = path.Dir(u.Path)
		u.RawPath = ""
		s.URL = &u
	}
	return s, sub, nil
}

// getGit reads one file of a git repository: status 200, 404 for a missing
// path, 403 for a symlink (never followed), 0 when the checkout failed.
func (f *Fetcher) getGit(ctx context.Context, src string) (Result, error) {
	s, sub, err := gitSource(src)
	if err != nil {
		return Result{}, err
	}
	if sub == "" || sub == "." || sub == "/" || strings.HasSuffix(sub, ".git") {
		return Result{}, errorf(nil, "a git source must name a file in the repository: git::URL//PATH/TO/FILE")
	}
	co, err := f.checkout(ctx, s)
	if err != nil {
		if neterr.IsTimeout(ctx, err) {
			return Result{}, contextError(ctx, err)
		}
		return Result{}, errorf(nil, "%s", err.Error())
	}
	data, err := co.File(sub)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Result{Status: http.StatusNotFound}, errorf(fs.ErrNotExist, "%s not found", sub)
	case errors.Is(err, fs.ErrPermission):
		return Result{Status: http.StatusForbidden}, errorf(fs.ErrPermission, "%s", err.Error())
	case errors.Is(err, git.ErrTooLarge):
		return Result{Status: http.StatusOK}, tooLarge(f.max)
	case err != nil:
		return Result{}, errorf(nil, "%s", err.Error())
	}
	res := Result{Status: http.StatusOK, Body: data, Bytes: int64(len(data))}
	if s.Checksum != nil {
		if err := s.Checksum.Verify(data); err != nil {
			return res, errorf(nil, "%s", err.Error())
		}
	}
	return res, nil
}

// listGit lists the files of a git subdirectory, relative to it.
func (f *Fetcher) listGit(ctx context.Context, src string) ([]string, error) {
	s, err := source.Parse(src)
	if err != nil {
		return nil, err
	}
	co, err := f.checkout(ctx, s)
	if err != nil {
		return nil, errorf(nil, "%s", err.Error())
	}
	return co.Files(s.Subdir)
}
