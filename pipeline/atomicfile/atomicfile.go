// Package atomicfile is butler's one careful write sequence. Every file butler
// writes (a manager's files, the last-known-good copies, the state, the
// textfile) goes through WriteFile, or WriteFileFunc for content written as
// it is encoded, through a buffer, so that it is never whole in memory.
// Replace is the same sequence without the fsyncs, for a file that only
// matters while a run lasts (the running-sync marker). StagePathFunc stops
// before the rename, so that a file can be written while the caller does
// something else, and put in place (Staged.Commit) or not after.
//
// Guarantees:
//   - A reader, or (except after Replace) the disk after a crash or power
//     loss, sees the complete old file or the complete new one, never a mix: the content goes to a
//     temporary file beside the target (created with O_EXCL), is fsynced,
//     closed and renamed over the target, and the directory is fsynced.
//   - The new file gets the requested mode whatever the umask, and the owner
//     and group of the file it replaces.
//   - Every name is resolved inside an os.Root: no symlink, present before the
//     write or swapped in during it, makes WriteFile, MkdirAll or RemoveStale
//     create, rename or delete anything outside the root. Below the root no
//     component may be a symlink at all: content is never written through one.
//   - Temporary names start with "." and end in digits ("." + base + ".tmp" +
//     digits), so they never match "*.yml" or "*.prom", and RemoveStale finds
//     the ones a killed writer left, in one listing per directory.
//
// What is atomic here holds on local file systems; NFS and the like may not
// keep it.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ModeMask keeps the permission bits and the setuid, setgid and sticky bits
// of a mode: the bits butler sets on a file and compares with the disk.
const ModeMask = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky

// tempInfix follows "." + base in a temporary name; random digits end it.
const tempInfix = ".tmp"

// maxTempBase keeps temporary names well under the 255-byte name limit.
const maxTempBase = 100

// CleanRel checks a slash-separated path relative to a root and returns it
// cleaned. It refuses an empty path, a NUL byte, an absolute path, any ".."
// component (even one that would stay inside once cleaned), and a path naming
// the root itself.
func CleanRel(rel string) (string, error) {
	switch {
	case rel == "":
		return "", errors.New("empty path")
	case strings.IndexByte(rel, 0) >= 0:
		return "", fmt.Errorf("path %q: contains a NUL byte", rel)
	case filepath.IsAbs(rel) || strings.HasPrefix(rel, "/"):
		return "", fmt.Errorf("path %q: must be relative", rel)
	}
	if slices.Contains(strings.Split(rel, "/"), "..") {
		return "", fmt.Errorf("path %q: must not contain \"..\"", rel)
	}
	clean := path.Clean(rel)
	if clean == "." {
		return "", fmt.Errorf("path %q: names the directory itself, not a file under it", rel)
	}
	return clean, nil
}

// CheckNoSymlink refuses rel when any existing component of it below root is
// a symlink, whether it points inside or outside root. Components that do not
// exist yet are fine: they will be made as plain directories.
func CheckNoSymlink(root *os.Root, rel string) error {
	_, err := LstatNoSymlink(root, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// LstatNoSymlink is CheckNoSymlink that also returns what is at rel, with
// one Lstat a component: the FileInfo of rel itself (not followed), or an
// error wrapping fs.ErrNotExist when rel or one of its parents is missing.
func LstatNoSymlink(root *os.Root, rel string) (fs.FileInfo, error) {
	clean, err := CleanRel(rel)
	if err != nil {
		return nil, err
	}
	var fi fs.FileInfo
	for i := 0; ; {
		j := strings.IndexByte(clean[i:], '/')
		p := clean
		if j >= 0 {
			p = clean[:i+j]
		}
		fi, err = root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("path %q: %w", rel, fs.ErrNotExist) // nothing further down exists, so no symlink either
		}
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", rel, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("path %q: %s is a symlink; butler does not write through symlinks", rel, p)
		}
		if j < 0 {
			return fi, nil
		}
		i += j + 1
	}
}

// WriteFile replaces name (relative to root) with data and mode. Missing
// parent directories are created with dirMode (see MkdirAll). On any failure
// the temporary file is removed and name is left as it was.
func WriteFile(root *os.Root, name string, data []byte, mode, dirMode os.FileMode) error {
	return write(root, name, bytesFill(data), mode, dirMode, true)
}

// WriteFileFunc is WriteFile for content that fill writes, through a
// buffer, so that a large file never has to be in memory whole. An error
// from fill leaves name as it was, whatever fill wrote before it.
func WriteFileFunc(root *os.Root, name string, fill func(*bufio.Writer) error, mode, dirMode os.FileMode) error {
	return write(root, name, bufferedFill(fill), mode, dirMode, true)
}

// bufferedFill runs fill on a buffer over the file, for write.
func bufferedFill(fill func(*bufio.Writer) error) func(*os.File) error {
	return func(f *os.File) error {
		w := bufio.NewWriterSize(f, 64<<10)
		if err := fill(w); err != nil {
			return err
		}
		return w.Flush()
	}
}

// bytesFill writes data, for write.
func bytesFill(data []byte) func(*os.File) error {
	return func(f *os.File) error {
		_, err := f.Write(data)
		return err
	}
}

// Replace is WriteFile without the fsyncs: readers still see the old
// content or the new, never a mix, but after a crash the file may hold
// either, or be missing if it was new. It is for files that matter only
// while a run lasts, such as the marker of a running sync, which a crash
// makes stale anyway.
func Replace(root *os.Root, name string, data []byte, mode, dirMode os.FileMode) error {
	return write(root, name, bytesFill(data), mode, dirMode, false)
}

// write is WriteFile, durable or not, of what fill writes to the temporary
// file.
func write(root *os.Root, name string, fill func(*os.File) error, mode, dirMode os.FileMode, durable bool) error {
	st, err := stage(root, name, fill, mode, dirMode, durable)
	if err != nil {
		return err
	}
	return st.commit()
}

// Staged is a write up to its rename: the content is in a temporary file
// beside the target, complete, with its mode and owner, and fsynced; the
// target is as it was. Commit puts it in place, Discard removes it. It lets
// a caller prepare a file while it does something else, and decide after
// whether the file replaces the old one.
type Staged struct {
	root     *os.Root
	ownRoot  bool // the root was opened for this write, and is closed after
	name     string
	tmp, rel string
	syncs    []string // directories to fsync after the rename; nil if not durable
	done     bool
}

// stage is write up to the rename.
func stage(root *os.Root, name string, fill func(*os.File) error, mode, dirMode os.FileMode, durable bool) (_ *Staged, err error) {
	rel, err := CleanRel(name)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	if err := CheckNoSymlink(root, rel); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	created, err := MkdirAll(root, dir, dirMode)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	f, tmp, err := createTemp(root, dir, base)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				_ = f.Close()
			}
			_ = root.Remove(tmp)
		}
	}()
	if err = fill(f); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	// Owner first: chown clears the setuid and setgid bits that chmod sets.
	if err = keepOwner(root, f, rel); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Chmod(mode & ModeMask); err != nil {
		return nil, fmt.Errorf("write %s: set mode: %w", name, err)
	}
	// Without this fsync the rename can reach the disk before the data does,
	// and a crash leaves an empty or partial file under the target's name.
	if durable {
		if err = f.Sync(); err != nil {
			return nil, fmt.Errorf("write %s: sync: %w", name, err)
		}
	}
	closed = true
	if err = f.Close(); err != nil {
		return nil, fmt.Errorf("write %s: close: %w", name, err)
	}
	st := &Staged{root: root, name: name, tmp: tmp, rel: rel}
	if durable {
		// The rename is durable only once the directory entry is on disk,
		// and so is each directory created above.
		st.syncs = []string{dir}
		for _, d := range created {
			st.syncs = append(st.syncs, parent(d))
		}
	}
	return st, nil
}

// commit is Commit, its errors naming the file as write's do.
func (st *Staged) commit() (err error) {
	if st.done {
		return fmt.Errorf("write %s: committed or discarded already", st.name)
	}
	st.done = true
	defer st.closeRoot()
	if err = st.root.Rename(st.tmp, st.rel); err != nil {
		_ = st.root.Remove(st.tmp)
		return fmt.Errorf("write %s: %w", st.name, err)
	}
	for _, d := range st.syncs {
		if err = SyncDir(st.root, d); err != nil {
			return fmt.Errorf("write %s: %w", st.name, err)
		}
	}
	return nil
}

// Commit renames the staged file over its target and fsyncs the
// directories, as WriteFile would have; on failure the target is as it was
// (or, when only a directory fsync failed, already replaced). A Staged
// commits or discards once.
func (st *Staged) Commit() error {
	if err := st.commit(); err != nil {
		return st.pathError(err)
	}
	return nil
}

// Discard removes the staged file and leaves the target as it was. It is
// a no-op once the file is committed or discarded.
func (st *Staged) Discard() {
	if st == nil || st.done {
		return
	}
	st.done = true
	_ = st.root.Remove(st.tmp)
	st.closeRoot()
}

func (st *Staged) closeRoot() {
	if st.ownRoot {
		_ = st.root.Close()
	}
}

// pathError adds the directory of a StagePathFunc write to err, as
// WritePath's errors give it.
func (st *Staged) pathError(err error) error {
	if st.ownRoot {
		return fmt.Errorf("%s: %w", st.root.Name(), err)
	}
	return err
}

// WritePath is WriteFile for a file outside any managed directory: its
// directory is created with dirMode when missing and becomes the root.
func WritePath(p string, data []byte, mode, dirMode os.FileMode) error {
	st, err := stagePath(p, bytesFill(data), mode, dirMode)
	if err != nil {
		return err
	}
	return st.Commit()
}

// StagePathFunc is WritePath for content that fill writes, through a
// buffer (see WriteFileFunc), up to the rename (see Staged): the caller then
// commits or discards the file. The textfile is written so.
func StagePathFunc(p string, fill func(*bufio.Writer) error, mode, dirMode os.FileMode) (*Staged, error) {
	return stagePath(p, bufferedFill(fill), mode, dirMode)
}

// stagePath is WritePath up to the rename.
func stagePath(p string, fill func(*os.File) error, mode, dirMode os.FileMode) (*Staged, error) {
	dir := filepath.Dir(p)
	if err := MkdirAllPath(dir, dirMode); err != nil {
		return nil, fmt.Errorf("write %s: %w", p, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", p, err)
	}
	base := filepath.Base(p)
	// A temporary file already there was left by a writer that was killed:
	// butler is the only writer, under its lock. Best effort: a leftover is
	// harmless, and the next write tries again.
	_ = RemoveStale(root, []string{base})
	st, err := stage(root, base, fill, mode, dirMode, true)
	if err != nil {
		_ = root.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	st.ownRoot = true
	return st, nil
}

// MkdirAllPath creates the directory dir (a path, not under a root: the
// directory that becomes one) and its missing parents with mode, set
// explicitly so that the umask does not apply, and fsyncs the parent of each
// directory it creates. Existing directories are left as they are; symlinks
// among them are followed.
func MkdirAllPath(dir string, mode os.FileMode) error {
	dir = filepath.Clean(dir)
	var missing []string // deepest first
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("create directory %s: %s is not a directory", dir, p)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("create directory %s: %w", dir, err)
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		if err := os.Mkdir(p, mode); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue // made by someone else meanwhile
			}
			return fmt.Errorf("create directory %s: %w", dir, err)
		}
		if err := os.Chmod(p, mode); err != nil {
			return fmt.Errorf("create directory %s: %w", dir, err)
		}
		if err := syncPath(filepath.Dir(p)); err != nil {
			return fmt.Errorf("create directory %s: %w", dir, err)
		}
	}
	return nil
}

// syncPath fsyncs the directory at the path dir.
func syncPath(dir string) error {
	d, err := os.Open(dir)
	return syncOpened(d, err, dir)
}

// syncOpened fsyncs and closes the directory d that opening dir gave (or the
// error opening gave).
func syncOpened(d *os.File, err error, dir string) error {
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// createTemp makes a new, empty temporary file for base in dir.
func createTemp(root *os.Root, dir, base string) (*os.File, string, error) {
	prefix := "." + base
	if len(prefix) > maxTempBase {
		prefix = prefix[:maxTempBase]
	}
	var f *os.File
	name, err := UniqueName(path.Join(dir, prefix+tempInfix), "create a temporary file for "+base, func(name string) (err error) {
		f, err = root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		return err
	})
	return f, name, err
}

// UniqueName calls create with prefix followed by random digits, again with
// other digits while create fails with fs.ErrExist (at most 100 times). It
// returns the name of the last call and create's error; when every name was
// taken, an error that says "what: too many attempts".
func UniqueName(prefix, what string, create func(name string) error) (string, error) {
	for range 100 {
		name := prefix + strconv.FormatUint(uint64(rand.Uint32()), 10)
		if err := create(name); !errors.Is(err, fs.ErrExist) {
			return name, err
		}
	}
	return "", fmt.Errorf("%s: too many attempts", what)
}

// keepOwner gives the temporary file f the owner and group of the file at
// rel, when there is one and they differ, so that a manager running as
// another user can still read its configuration after the replace.
func keepOwner(root *os.Root, f *os.File, rel string) error {
	old, err := root.Lstat(rel)
	if err != nil || !old.Mode().IsRegular() {
		return nil // nothing to keep; the rename fails later on a directory
	}
	oldSys, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	cur, err := f.Stat()
	if err != nil {
		return err
	}
	curSys, ok := cur.Sys().(*syscall.Stat_t)
	if !ok || (curSys.Uid == oldSys.Uid && curSys.Gid == oldSys.Gid) {
		return nil
	}
	if err := f.Chown(int(oldSys.Uid), int(oldSys.Gid)); err != nil {
		return fmt.Errorf("keep owner %d:%d: %w", oldSys.Uid, oldSys.Gid, err)
	}
	return nil
}

// MkdirAll creates dir (relative to root, "." for the root) and its missing
// parents with mode (set explicitly, so the umask does not apply) and returns
// the directories it created, outermost first. An existing component that is
// a symlink or not a directory is an error.
func MkdirAll(root *os.Root, dir string, mode os.FileMode) ([]string, error) {
	if dir == "." || dir == "" {
		return nil, nil
	}
	parts := strings.Split(dir, "/")
	var created []string
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := root.Lstat(p)
		switch {
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			return created, fmt.Errorf("create directory %s: %s is a symlink; butler does not write through symlinks", dir, p)
		case err == nil && !fi.IsDir():
			return created, fmt.Errorf("create directory %s: %s is a file", dir, p)
		case err == nil:
			continue
		case !errors.Is(err, fs.ErrNotExist):
			return created, fmt.Errorf("create directory %s: %w", dir, err)
		}
		if err := root.Mkdir(p, mode); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue // made by someone else meanwhile; the next Lstat judges it
			}
			return created, fmt.Errorf("create directory %s: %w", p, err)
		}
		created = append(created, p)
		if err := root.Chmod(p, mode); err != nil {
			return created, fmt.Errorf("create directory %s: %w", p, err)
		}
	}
	return created, nil
}

// SyncDir fsyncs the directory dir (relative to root) so that the entries
// created, renamed or removed in it survive a power loss.
func SyncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	return syncOpened(d, err, dir)
}

// IsTemp reports whether the entry name is one of WriteFile's temporary
// files, and for which base name (possibly cut, see maxTempBase).
func IsTemp(name string) (base string, ok bool) {
	if !strings.HasPrefix(name, ".") {
		return "", false
	}
	i := strings.LastIndex(name, tempInfix)
	if i <= 1 || !Digits(name[i+len(tempInfix):]) {
		return "", false
	}
	return name[1:i], true
}

// RemoveStale removes the temporary files that WriteFile left beside the
// files names (relative to root) when the process was killed between creating
// and renaming them. Each directory is listed once, whatever the number of
// names in it, so the cost is linear in the entries. Nothing but those
// temporary files is touched; directories that do not exist are skipped. It
// returns the joined errors of what it could not remove.
//
// Call it only as the only writer of those files (butler holds its lock): a
// matching file cannot then belong to a write in progress.
func RemoveStale(root *os.Root, names []string) error {
	bases := map[string]map[string]bool{} // directory -> base names (cut as temp names cut them)
	for _, n := range names {
		rel, err := CleanRel(n)
		if err != nil {
			continue
		}
		dir, base := path.Split(rel)
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" {
			dir = "."
		}
		if bases[dir] == nil {
			bases[dir] = map[string]bool{}
		}
		bases[dir][cutBase(base)] = true
	}
	var errs []error
	for dir, want := range bases {
		if dir != "." && CheckNoSymlink(root, dir) != nil {
			continue // written through no symlink, so nothing of ours is there
		}
		d, err := root.Open(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				errs = append(errs, fmt.Errorf("remove stale temporary files in %s: %w", dir, err))
			}
			continue
		}
		// Names only: where the file system gives no entry types, ReadDir
		// would stat every entry, and a dest may hold thousands.
		names, err := d.Readdirnames(-1)
		_ = d.Close()
		if errors.Is(err, syscall.ENOTDIR) {
			continue // a file where the directory should be: the write reports it
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove stale temporary files in %s: %w", dir, err))
			continue
		}
		for _, name := range names {
			base, ok := IsTemp(name)
			if !ok || !want[base] {
				continue
			}
			p := path.Join(dir, name)
			if fi, err := root.Lstat(p); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove stale temporary file: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// cutBase cuts base as createTemp cuts it in a temporary name.
func cutBase(base string) string {
	if len(base)+1 > maxTempBase {
		return base[:maxTempBase-1]
	}
	return base
}

// Digits reports whether s is a non-empty string of ASCII digits.
func Digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parent is the directory of a slash-separated relative path, "." at the top.
func parent(p string) string {
	d := path.Dir(p)
	if d == "" {
		return "."
	}
	return d
}
