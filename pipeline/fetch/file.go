package fetch

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"syscall"

	"github.com/butler-sre/butler/pipeline/fetch/neterr"
	"github.com/butler-sre/butler/pipeline/source"
)

// getFile reads a local file source into memory: a regular file, never
// through a symlink, at most max_file_size bytes, its checksum checked.
func (f *Fetcher) getFile(src string) (Result, error) {
	_, rest := source.SplitForced(src)
	u, sum, err := parseSource(rest, "invalid file source")
	if err != nil {
		return Result{}, err
	}
	p := u.Path
	if u.RawPath != "" {
		p = u.RawPath
	}
	fail := func(err error) (Result, error) {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			return Result{Status: http.StatusNotFound}, errorf(fs.ErrNotExist, "file %s not found", p)
		case errors.Is(err, fs.ErrPermission):
			return Result{Status: http.StatusForbidden}, errorf(fs.ErrPermission, "file %s: permission denied", p)
		case errors.Is(err, syscall.ELOOP):
			return Result{Status: http.StatusForbidden}, errorf(fs.ErrPermission, "file %s is a symbolic link: butler does not follow symlinks, name the target instead", p)
		}
		return Result{}, errorf(nil, "file %s: %s", p, neterr.Describe(err))
	}
	// O_NOFOLLOW: the file itself may not be a symlink, even one swapped in
	// between a check and the open.
	fh, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fail(err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	switch {
	case err != nil:
		return fail(err)
	case !fi.Mode().IsRegular():
		return Result{Status: http.StatusForbidden}, errorf(fs.ErrPermission, "file %s is not a regular file", p)
	case fi.Size() > f.max:
		return Result{Status: http.StatusOK}, tooLarge(f.max)
	}
	body, err := io.ReadAll(io.LimitReader(fh, f.max+1))
	if err != nil {
		return fail(err)
	}
	if int64(len(body)) > f.max {
		return Result{Status: http.StatusOK}, tooLarge(f.max)
	}
	res := Result{Status: http.StatusOK, Body: body, Bytes: int64(len(body))}
	if err := sum.Verify(body); err != nil {
		return res, err
	}
	return res, nil
}
