// Package git fetches files from git repositories with the git program: a
// shallow checkout of one ref into butler's staging directory, read
// without following symlinks.
//
// Guarantees:
//   - git runs in a process group of its own, with stdin from /dev/null, no
//     terminal prompt (GIT_TERMINAL_PROMPT=0, ssh in batch mode) and a
//     minimal environment. When the context ends (the run's deadline, a
//     signal), and also after git exits, the whole group is killed before
//     the call returns: no git, ssh or upload-pack outlives it. Should
//     butler itself be killed (SIGKILL), git gets SIGKILL too.
//   - Only the repository URL's own transport is allowed (https, http, ssh,
//     git or file; never ext:: or fd::), no hooks run, no submodule is
//     fetched, no background gc or maintenance starts.
//   - Clones and key files are made only below Client.Staging, never in
//     $TMPDIR (git and ssh get TMPDIR inside the staging directory too). An
//     sshkey is written 0600 into a fresh 0700 directory and removed before
//     Checkout returns, on errors too; only a SIGKILL of butler can leave it,
//     under the staging directory, for the next run's cleanup.
//   - File and Files never follow a symlink (one on the way is an error),
//     never leave the checkout, never read git's own metadata, and File
//     never reads more than MaxFileSize bytes.
//   - Errors keep git's first "fatal:" or "error:" line and never contain
//     the URL's credentials or the key.
package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/butler-sre/butler/pipeline/redact"
	"github.com/butler-sre/butler/pipeline/source"
)

// DefaultDepth is the number of commits fetched when the source sets no
// ?depth=.
const DefaultDepth = 1

// defaultMaxFileSize applies when Client.MaxFileSize is not positive.
const defaultMaxFileSize = 10 << 20

// ErrTooLarge marks a file larger than MaxFileSize.
var ErrTooLarge = errors.New("larger than max_file_size")

// Client clones with the git program.
type Client struct {
	// Staging is a directory under butler's state directory where clones
	// and key files go (never $TMPDIR). It is created 0700 if missing.
	Staging string
	// MaxFileSize is the largest file File reads; zero or less means
	// 10 MiB.
	MaxFileSize int64
}

// Checkout is a shallow checkout of one commit.
type Checkout struct {
	dir    string // the clone's own staging directory, removed by Close
	root   *os.Root
	commit string
	max    int64
}

// abbrevCommit matches what may be an abbreviated commit id, which no
// server can be asked for by name.
var abbrevCommit = regexp.MustCompile(`^[0-9a-fA-F]{4,39}$`)

// Checkout fetches s.Ref (default HEAD: the remote's default branch) of
// the repository s.URL at depth s.Depth (default DefaultDepth) into a
// fresh directory under Staging, and returns it; call Close to remove it.
// A branch, a tag or a full commit id is fetched by name; an abbreviated
// commit id, when no depth is set, by fetching every branch and tag.
//
// An error of a context that ended wraps ctx.Err() (context.Canceled,
// context.DeadlineExceeded).
func (c *Client) Checkout(ctx context.Context, s *source.Source) (co *Checkout, err error) {
	if s == nil || s.Scheme != "git" || s.URL == nil {
		return nil, errors.New("not a git source")
	}
	if c.Staging == "" {
		return nil, errors.New("git: no staging directory")
	}
	scrub := redact.NewScrubber(redact.Secrets(s.URL.String())...)
	defer func() {
		if err != nil {
			err = &scrubbed{msg: scrub.Scrub(err.Error()), err: err}
		}
	}()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, errors.New("git is not installed (it is needed for git sources)")
	}
	if err := os.MkdirAll(c.Staging, 0o700); err != nil {
		return nil, fmt.Errorf("git: staging directory: %w", err)
	}
	dir, err := os.MkdirTemp(c.Staging, "git-")
	if err != nil {
		return nil, fmt.Errorf("git: staging directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	r := &runner{git: gitPath, transport: s.URL.Scheme}
	if len(s.SSHKey) > 0 {
		keyFile, cleanup, err := writeKey(c.Staging, s.SSHKey)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		r.keyFile = keyFile
	}
	r.env = environment(dir, r.keyFile)
	repo := dir + "/repo"
	if _, err := r.run(ctx, dir, "init", "--quiet", "--template=", "repo"); err != nil {
		return nil, err
	}
	if err := r.fetch(ctx, repo, s); err != nil {
		return nil, err
	}
	out, err := r.run(ctx, repo, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(repo)
	if err != nil {
		return nil, fmt.Errorf("git: open checkout: %w", err)
	}
	max := c.MaxFileSize
	if max <= 0 {
		max = defaultMaxFileSize
	}
	return &Checkout{dir: dir, root: root, commit: strings.TrimSpace(string(out)), max: max}, nil
}

// fetch fetches the ref of s and checks it out, detached.
func (r *runner) fetch(ctx context.Context, repo string, s *source.Source) error {
	ref, depth := s.Ref, s.Depth
	if ref == "" {
		ref = "HEAD"
	}
	if depth <= 0 {
		depth = DefaultDepth
	}
	url := s.URL.String()
	_, err := r.run(ctx, repo, "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--depth="+strconv.Itoa(depth), "--", url, ref)
	if err == nil {
		_, err = r.run(ctx, repo, "checkout", "--quiet", "--detach", "FETCH_HEAD")
		return err
	}
	var ge *gitError
	if !errors.As(err, &ge) || !strings.Contains(ge.line, "couldn't find remote ref") || !abbrevCommit.MatchString(ref) {
		return err
	}
	if s.Depth > 0 {
		return fmt.Errorf("%w (with depth set, a commit id must be written in full)", err)
	}
	// An abbreviated commit id: fetch every branch and tag, then look it up.
	if _, err := r.run(ctx, repo, "fetch", "--quiet", "--no-recurse-submodules", "--", url,
		"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err != nil {
		return err
	}
	out, err := r.run(ctx, repo, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if err != nil {
		return fmt.Errorf("git: no commit %s in the repository", ref)
	}
	_, err = r.run(ctx, repo, "checkout", "--quiet", "--detach", strings.TrimSpace(string(out)))
	return err
}

// writeKey writes an ssh private key 0600 into a fresh directory under
// staging; cleanup removes it.
func writeKey(staging string, key []byte) (file string, cleanup func(), err error) {
	dir, err := os.MkdirTemp(staging, "key-")
	if err != nil {
		return "", nil, fmt.Errorf("git: key directory: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	file = dir + "/id"
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		if _, err = f.Write(key); err == nil && !bytes.HasSuffix(key, []byte("\n")) {
			_, err = f.Write([]byte("\n")) // ssh refuses a key without its final newline
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("git: write ssh key: %w", err)
	}
	return file, cleanup, nil
}

// passEnv are the variables git and ssh get from butler's environment:
// where programs and the user's configuration are, the ssh agent, proxies
// and certificates. Nothing else (no GIT_DIR, GIT_CONFIG_*, LD_*).
var passEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "SSH_AUTH_SOCK",
	"http_proxy", "https_proxy", "no_proxy", "all_proxy",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
}

// sshOptions make ssh never prompt, record a host seen for the first time
// and refuse a changed host key, and start no master connection that would
// outlive the call. They come after the user's own GIT_SSH_COMMAND, whose
// options win (ssh keeps the first value of each).
const sshOptions = "-o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ControlMaster=no -o ControlPath=none"

// environment is git's whole environment for one checkout.
func environment(tmp, keyFile string) []string {
	var env []string
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if os.Getenv("PATH") == "" {
		env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	ssh := os.Getenv("GIT_SSH_COMMAND")
	if ssh == "" {
		ssh = "ssh"
		if prog := os.Getenv("GIT_SSH"); prog != "" {
			ssh = shellQuote(prog)
		}
	}
	ssh += " " + sshOptions
	if keyFile != "" {
		ssh += " -i " + shellQuote(keyFile) + " -o IdentitiesOnly=yes"
	}
	return append(env,
		"GIT_SSH_COMMAND="+ssh,
		"GIT_TERMINAL_PROMPT=0",
		"GCM_INTERACTIVE=never",
		"SSH_ASKPASS_REQUIRE=never",
		"LC_ALL=C", // git's messages in English, for its "fatal:" line
		"TMPDIR="+tmp,
	)
}

// shellQuote quotes s for sh, which runs GIT_SSH_COMMAND.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// runner runs git for one checkout.
type runner struct {
	git       string
	transport string // the URL's scheme, the one protocol allowed
	keyFile   string
	env       []string
}

// config is set on every git command line, over any configuration file.
func (r *runner) config() []string {
	var args []string
	for _, kv := range []string{
		"protocol.allow=never",
		"protocol." + r.transport + ".allow=always",
		"core.hooksPath=/dev/null",
		"core.fsmonitor=false",
		"core.symlinks=true", // a symlink stays one, and is refused
		"submodule.recurse=false",
		"gc.auto=0",
		"maintenance.auto=false",
		"advice.detachedHead=false",
	} {
		args = append(args, "-c", kv)
	}
	return args
}

// gitError is a git command that failed: its first "fatal:" or "error:"
// line, else its last line.
type gitError struct {
	cmd  string
	line string
}

func (e *gitError) Error() string { return "git " + e.cmd + ": " + e.line }

// scrubbed is an error whose text was cleaned of the source's secrets; it
// unwraps to the original for errors.Is, never for its text.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// message picks the line of git's output that says what failed.
func message(stderr []byte, err error) string {
	lines := strings.Split(strings.TrimSpace(string(stderr)), "\n")
	for _, l := range lines {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "fatal:") || strings.HasPrefix(l, "error:") {
			return l
		}
	}
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// Commit is the id of the commit checked out.
func (co *Checkout) Commit() string { return co.commit }

// Close removes the checkout.
func (co *Checkout) Close() error {
	if co.root == nil {
		return nil
	}
	err := co.root.Close()
	co.root = nil
	if rerr := os.RemoveAll(co.dir); err == nil {
		err = rerr
	}
	return err
}

// clean checks a slash-separated path inside the checkout and returns it
// cleaned; "." for the top.
func clean(rel string) (string, error) {
	for _, el := range strings.Split(rel, "/") {
		if el == ".." {
			return "", fmt.Errorf("%s: a path in the repository may not contain \"..\"", rel)
		}
	}
	c := path.Clean("/" + rel)[1:]
	if c == "" {
		return ".", nil
	}
	if first, _, _ := strings.Cut(c, "/"); first == ".git" {
		return "", fmt.Errorf("%s is git's own metadata, not a file of the repository: %w", rel, fs.ErrPermission)
	}
	return c, nil
}

// walk checks every element of rel, which must exist, without following
// a symlink; it returns the last one's information.
func (co *Checkout) walk(rel string) (fs.FileInfo, error) {
	if co.root == nil {
		return nil, errors.New("checkout closed")
	}
	if rel == "." {
		return co.root.Lstat(".")
	}
	parts := strings.Split(rel, "/")
	var fi fs.FileInfo
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		var err error
		fi, err = co.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("%s not found: %w", rel, fs.ErrNotExist)
		case err != nil:
			return nil, fmt.Errorf("%s: %w", rel, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("%s is a symbolic link: butler does not follow symlinks: %w", p, fs.ErrPermission)
		case i < len(parts)-1 && !fi.IsDir():
			return nil, fmt.Errorf("%s not found: %w", rel, fs.ErrNotExist)
		}
	}
	return fi, nil
}

// File reads the regular file rel (slash-separated, relative to the top of
// the repository) without following any symlink: a symlink on the way is
// an error wrapping fs.ErrPermission, a missing file one wrapping
// fs.ErrNotExist, a file larger than MaxFileSize one wrapping ErrTooLarge.
func (co *Checkout) File(rel string) ([]byte, error) {
	c, err := clean(rel)
	if err != nil {
		return nil, err
	}
	if c == "." {
		return nil, errors.New("a git source must name a file in the repository: git::URL//PATH/TO/FILE")
	}
	fi, err := co.walk(c)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", rel, fs.ErrPermission)
	}
	if fi.Size() > co.max {
		return nil, fmt.Errorf("%s: %w", rel, ErrTooLarge)
	}
	f, err := co.root.OpenFile(c, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, co.max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	if int64(len(data)) > co.max {
		return nil, fmt.Errorf("%s: %w", rel, ErrTooLarge)
	}
	return data, nil
}

// Files lists the regular files below the directory dir of the checkout
// ("" or "." for the top, where git's own .git is left out), as
// slash-separated paths relative to dir, in lexical order. It skips
// nothing: a symlink anywhere below dir is an error wrapping
// fs.ErrPermission.
func (co *Checkout) Files(dir string) ([]string, error) {
	c, err := clean(dir)
	if err != nil {
		return nil, err
	}
	fi, err := co.walk(c)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	var files []string
	err = fs.WalkDir(co.root.FS(), c, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if c == "." && p == ".git" {
			return fs.SkipDir
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, c), "/")
		if c == "." {
			rel = p
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symbolic link: butler does not follow symlinks: %w", p, fs.ErrPermission)
		case d.IsDir():
		case d.Type().IsRegular():
			files = append(files, rel)
		default:
			return fmt.Errorf("%s is not a regular file: %w", p, fs.ErrPermission)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}
