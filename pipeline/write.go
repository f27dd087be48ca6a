package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// FileContent is one file of a manager: Path relative to the manager's dest
// (slash-separated), its content and its mode.
type FileContent struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// writeModeMask keeps the permission bits and the setuid, setgid and sticky
// bits of a mode: the bits butler sets on a file and compares with the disk.
const writeModeMask = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky

// writeDirMode is the mode of the directories created under a dest.
const writeDirMode os.FileMode = 0o755

// SafeJoin joins dest and the relative path rel. It refuses an empty path, a
// path naming dest itself ("."), an absolute path, any ".." component (even one
// that would stay under dest once cleaned), a NUL byte, and any component below
// dest that exists on disk as a symlink, whether it points inside or outside
// dest: content is never written through a symlink. dest itself may be a
// symlink (/etc/prometheus -> /srv/prometheus/etc). Components that do not
// exist yet are accepted; they will be created as plain directories.
//
// The check is made when SafeJoin is called: it protects against hostile
// paths in the configuration, not against a concurrent local user who can
// already replace directories under dest.
func SafeJoin(dest, rel string) (string, error) {
	if dest == "" {
		return "", errors.New("empty destination directory")
	}
	clean, err := writeCleanRel(rel)
	if err != nil {
		return "", err
	}
	cur := filepath.Clean(dest)
	for part := range strings.SplitSeq(clean, "/") {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			break // nothing further down exists, so no symlink either
		}
		if err != nil {
			return "", fmt.Errorf("path %q: %w", rel, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("path %q: %s is a symlink; butler does not write through symlinks", rel, cur)
		}
	}
	return filepath.Join(filepath.Clean(dest), clean), nil
}

// writeCleanRel checks a path relative to a dest and returns it cleaned.
func writeCleanRel(rel string) (string, error) {
	switch {
	case rel == "":
		return "", errors.New("empty path")
	case strings.IndexByte(rel, 0) >= 0:
		return "", fmt.Errorf("path %q: contains a NUL byte", rel)
	case filepath.IsAbs(rel):
		return "", fmt.Errorf("path %q: must be relative to dest", rel)
	}
	if slices.Contains(strings.Split(rel, "/"), "..") {
		return "", fmt.Errorf("path %q: must not contain \"..\"", rel)
	}
	clean := filepath.Clean(rel)
	if clean == "." {
		return "", fmt.Errorf("path %q: names dest itself, not a file under it", rel)
	}
	return clean, nil
}

// WriteFileAtomic replaces path with data so that a reader, or the disk after
// a crash, sees either the complete old file or the complete new one. The
// content goes to a temporary file in the same directory (created with
// O_EXCL; its name starts with "." and ends in random digits, so it never
// looks like the target to a program that reads "*.yml" or "*.prom"), which is
// given mode (set explicitly, so the umask does not apply) and, when path
// already exists, the owner and group of the file it replaces; it is fsynced,
// closed and renamed over path, then the directory is fsynced. Missing parent
// directories are created with mode 0755. On any failure the temporary file is
// removed and path is left as it was.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	if base == "." || base == string(filepath.Separator) {
		return fmt.Errorf("write %s: not a file path", path)
	}
	created, err := writeMkdirAll(dir)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, crashTempPrefix(base))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				_ = f.Close()
			}
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Owner first: chown clears the setuid and setgid bits that chmod sets.
	if err = writeKeepOwner(f, path); err != nil {
		return err
	}
	if err = f.Chmod(mode & writeModeMask); err != nil {
		return fmt.Errorf("write %s: set mode: %w", path, err)
	}
	// Without this fsync the rename can reach the disk before the data does,
	// and a crash leaves an empty or partial file under the target's name.
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	closed = true
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The rename is durable only once the directory entry is on disk, and so
	// is each directory created above.
	syncs := []string{dir}
	for _, d := range created {
		syncs = append(syncs, filepath.Dir(d))
	}
	for _, d := range syncs {
		if err = writeSyncDir(d); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// crashTempPrefix is the start of the names of WriteFileAtomic's temporary
// files for base; os.CreateTemp appends random digits to it.
func crashTempPrefix(base string) string {
	// Keep the temporary name well under the 255-byte name limit.
	prefix := "." + base
	if len(prefix) > 100 {
		prefix = prefix[:100]
	}
	return prefix + ".tmp"
}

// RemoveStaleTemps removes the temporary files that WriteFileAtomic left
// beside files under dest when the process was killed between creating and
// renaming them: in each file's directory, the regular files named exactly as
// that file's temporaries are (".BASE.tmp" followed by digits). Nothing else
// is touched, and a Path that SafeJoin refuses is skipped (the write reports
// it). It returns the joined errors of what it could not remove.
//
// Call it only while holding the state directory's lock, before writing: one
// butler run at a time writes a dest, so a matching file cannot belong to a
// write still in progress, only to a run that was killed.
func RemoveStaleTemps(dest string, files []FileContent) error {
	prefixes := map[string][]string{} // directory -> temporary name prefixes
	for _, f := range files {
		full, err := SafeJoin(dest, f.Path)
		if err != nil {
			continue
		}
		dir := filepath.Dir(full)
		prefixes[dir] = append(prefixes[dir], crashTempPrefix(filepath.Base(full)))
	}
	var errs []error
	for dir, pres := range prefixes {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				errs = append(errs, fmt.Errorf("remove stale temporary files: %w", err))
			}
			continue
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || !crashIsTemp(e.Name(), pres) {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove stale temporary file: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// crashIsTemp reports whether name is one of prefixes followed by digits only.
func crashIsTemp(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(name, p); ok && lkgDigits(rest) {
			return true
		}
	}
	return false
}

// writeKeepOwner gives the temporary file f the owner and group of the file at
// path, when there is one and they differ, so that a manager running as
// another user can still read its configuration after the replace.
func writeKeepOwner(f *os.File, path string) error {
	old, err := os.Lstat(path)
	if err != nil || !old.Mode().IsRegular() {
		return nil // nothing to keep; the rename fails later on a directory
	}
	oldSys, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	cur, err := f.Stat()
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	curSys, ok := cur.Sys().(*syscall.Stat_t)
	if !ok || (curSys.Uid == oldSys.Uid && curSys.Gid == oldSys.Gid) {
		return nil
	}
	if err := f.Chown(int(oldSys.Uid), int(oldSys.Gid)); err != nil {
		return fmt.Errorf("write %s: keep owner %d:%d: %w", path, oldSys.Uid, oldSys.Gid, err)
	}
	return nil
}

// writeMkdirAll creates dir and its missing parents with mode 0755 and
// returns the directories it created, outermost first.
func writeMkdirAll(dir string) ([]string, error) {
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() && p == dir {
				return nil, fmt.Errorf("create directory %s: a file is in the way", dir)
			}
			if !fi.IsDir() {
				return nil, fmt.Errorf("create directory %s: %s is a file", dir, p)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("create directory %s: %w", dir, err)
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	slices.Reverse(missing)
	var created []string
	for _, p := range missing {
		if err := os.Mkdir(p, writeDirMode); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue // made by someone else meanwhile; Stat in the next step judges it
			}
			return created, fmt.Errorf("create directory %s: %w", p, err)
		}
		created = append(created, p)
		if err := os.Chmod(p, writeDirMode); err != nil { // the umask may have removed bits
			return created, fmt.Errorf("create directory %s: %w", p, err)
		}
	}
	return created, nil
}

// writeSyncDir fsyncs a directory so that the entries created or renamed in
// it survive a power loss.
func writeSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
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

// Snapshot records what was on disk at some paths under a dest before a run
// changed them: the content and mode of each file, or that it did not exist
// (and which of its parent directories did not exist either).
type Snapshot struct {
	dest    string
	entries []writeEntry
}

// writeEntry is the recorded state of one path of a Snapshot.
type writeEntry struct {
	rel    string
	exists bool
	data   []byte
	mode   os.FileMode
	// dirs are the parent directories below dest that were missing, deepest
	// first; the run creates them when it writes the file.
	dirs []string
}

// TakeSnapshot records the current state of paths (relative to dest, checked
// with SafeJoin). A path may be a regular file or absent; anything else there
// (a directory, a device) is an error, since a file cannot be written there.
// A path given twice is recorded once.
func TakeSnapshot(dest string, paths []string) (*Snapshot, error) {
	s := &Snapshot{dest: dest}
	seen := make(map[string]bool, len(paths))
	for _, rel := range paths {
		if seen[rel] {
			continue
		}
		seen[rel] = true
		e, err := writeRecord(dest, rel)
		if err != nil {
			return nil, err
		}
		s.entries = append(s.entries, e)
	}
	return s, nil
}

// writeRecord reads the state of one path for a Snapshot.
func writeRecord(dest, rel string) (writeEntry, error) {
	e := writeEntry{rel: rel}
	full, err := SafeJoin(dest, rel)
	if err != nil {
		return e, err
	}
	fi, err := os.Lstat(full)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		root := filepath.Clean(dest)
		for p := filepath.Dir(full); p != root && len(p) > len(root); p = filepath.Dir(p) {
			if _, err := os.Lstat(p); err == nil {
				break
			}
			e.dirs = append(e.dirs, p)
		}
		return e, nil
	case err != nil:
		return e, fmt.Errorf("snapshot %s: %w", rel, err)
	case !fi.Mode().IsRegular():
		return e, fmt.Errorf("snapshot %s: %s is not a regular file", rel, full)
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return e, fmt.Errorf("snapshot %s: %w", rel, err)
	}
	e.exists, e.data, e.mode = true, data, fi.Mode()&writeModeMask
	return e, nil
}

// Restore puts every recorded path back as it was: a file that existed is
// rewritten atomically with its old content and mode; a file that did not
// exist is removed, and so are the directories created for it when they are
// empty. It returns the joined errors of the paths it could not restore, each
// naming its path. Restore on a nil Snapshot does nothing.
func (s *Snapshot) Restore() error {
	if s == nil {
		return nil
	}
	return s.restore(len(s.entries))
}

// restore puts back the first n entries, the last one first.
func (s *Snapshot) restore(n int) error {
	var errs []error
	for i := n - 1; i >= 0; i-- {
		if err := s.restoreOne(s.entries[i]); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", s.entries[i].rel, err))
		}
	}
	return errors.Join(errs...)
}

// restoreOne puts back one recorded path.
func (s *Snapshot) restoreOne(e writeEntry) error {
	full, err := SafeJoin(s.dest, e.rel)
	if err != nil {
		return err
	}
	if e.exists {
		return WriteFileAtomic(full, e.data, e.mode)
	}
	fi, err := os.Lstat(full)
	switch {
	case err == nil && !fi.IsDir():
		if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		return err
	}
	sync := filepath.Dir(full)
	for _, d := range e.dirs {
		// Remove only succeeds on an empty directory: anything put there
		// since, by another file of the run or by someone else, stays.
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			break
		}
		sync = filepath.Dir(d)
	}
	if fi, err := os.Stat(sync); err != nil || !fi.IsDir() {
		return nil // the parent never came to be: no entry to make durable
	}
	return writeSyncDir(sync)
}

// Changed reports which of files differ from what is under dest: content or
// mode, or missing there (or something other than a regular file is there).
// The returned paths are the Path of each such file, in the order given.
func Changed(dest string, files []FileContent) ([]string, error) {
	var changed []string
	for _, f := range files {
		full, err := SafeJoin(dest, f.Path)
		if err != nil {
			return nil, err
		}
		same, err := writeSame(full, f)
		if err != nil {
			return nil, fmt.Errorf("compare %s: %w", f.Path, err)
		}
		if !same {
			changed = append(changed, f.Path)
		}
	}
	return changed, nil
}

// writeSame reports whether the file at full has f's content and mode.
func writeSame(full string, f FileContent) (bool, error) {
	fi, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() || fi.Mode()&writeModeMask != f.Mode&writeModeMask || fi.Size() != int64(len(f.Data)) {
		return false, nil
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return false, err
	}
	return bytes.Equal(data, f.Data), nil
}

// Apply writes files under dest, each with WriteFileAtomic, in order. Every
// path is checked and a Snapshot of them taken before the first write, so a
// hostile path or a directory in the way of a file writes nothing. If a write
// fails, the files already replaced are put back and the error names the
// failed path (and any path that could not be put back). On success the
// Snapshot is returned so the caller can put the files of before the run back
// later, when the reload is refused and there is no last-known-good copy.
func Apply(dest string, files []FileContent) (*Snapshot, error) {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	snap, err := TakeSnapshot(dest, paths)
	if err != nil {
		return nil, err
	}
	// The snapshot's entries follow the order of files, duplicates dropped:
	// after a failure, the first len(seen) of them cover every path touched.
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		seen[f.Path] = true
		full, err := SafeJoin(dest, f.Path)
		if err == nil {
			err = WriteFileAtomic(full, f.Data, f.Mode)
		}
		if err != nil {
			werr := fmt.Errorf("write %s: %w", f.Path, err)
			if rerr := snap.restore(len(seen)); rerr != nil {
				return nil, errors.Join(werr, fmt.Errorf("put back files written before: %w", rerr))
			}
			return nil, werr
		}
	}
	return snap, nil
}
