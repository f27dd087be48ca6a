package fetch

// The sources butler still fetches through go-getter: s3, gcs and git.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	getter "github.com/hashicorp/go-getter"
	"google.golang.org/api/googleapi"

	"github.com/butler-sre/butler/pipeline/source"
)

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
