package fetch

// The sources butler still fetches through go-getter: s3, gcs and git.

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	getter "github.com/hashicorp/go-getter"

	"github.com/butler-sre/butler/pipeline/source"
)

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

// get runs one go-getter download with butler's client settings.
func get(ctx context.Context, src, dst string, mode getter.ClientMode, getters map[string]getter.Getter) error {
	c := &getter.Client{
		Ctx:             ctx,
		Src:             src,
		Dst:             dst,
		Mode:            mode,
		Detectors:       source.Detectors(),
		Decompressors:   map[string]getter.Decompressor{},
		Getters:         getters,
		DisableSymlinks: true,
	}
	return c.Get()
}

// checksumMismatch describes a failed "?checksum=" check without
// go-getter's staging path.
func checksumMismatch(ce *getter.ChecksumError) *failure {
	return errorf(nil, "checksum mismatch: expected %x, got %x", ce.Expected, ce.Actual)
}
