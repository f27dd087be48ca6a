// Package write is the write phase: it compares a manager's rendered files
// with its dest directory and applies the changed ones.
//
// Guarantees:
//   - Every name under dest is resolved through an os.Root and refused when a
//     component below dest is a symlink: nothing is created, replaced or
//     deleted outside dest, even when a directory is swapped for a symlink
//     while butler runs. dest itself may be a symlink
//     (/etc/prometheus -> /srv/prometheus/etc).
//   - Each file is replaced atomically (package atomicfile).
//   - Apply checks every path and records what was there before writing the
//     first file. When a write fails, the files already replaced are put back;
//     the Snapshot it returns puts the files of before the run back later,
//     when the reload is refused.
//   - Remove deletes only regular files, never through a symlink, and
//     records each (content and mode) and the directories it left empty
//     before deleting the first: its Snapshot brings them all back.
//   - Changed, Read and Removable never create or delete anything: a dry
//     run leaves dest alone.
package write

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/butler-sre/butler/pipeline/atomicfile"
)

// DirMode is the mode of the directories created under a dest.
const DirMode os.FileMode = 0o755

// File is one file of a manager: Path relative to the manager's dest
// (slash-separated), its content and its mode.
type File struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// Dest is a manager's destination directory.
type Dest struct {
	dir  string
	root *os.Root // nil while dir does not exist
}

// Open returns the destination directory dir, which need not exist yet: Apply
// creates it. Close releases it.
func Open(dir string) (*Dest, error) {
	if dir == "" {
		return nil, errors.New("empty destination directory")
	}
	d := &Dest{dir: filepath.Clean(dir)}
	if err := d.open(false); err != nil {
		return nil, err
	}
	return d, nil
}

// Dir is the destination directory's path.
func (d *Dest) Dir() string { return d.dir }

// Close releases the directory.
func (d *Dest) Close() error {
	if d == nil || d.root == nil {
		return nil
	}
	return d.root.Close()
}

// open opens the root, creating dir first when create is set.
func (d *Dest) open(create bool) error {
	if d.root != nil {
		return nil
	}
	if create {
		// DirMode whatever the umask: a manager running as another user
		// must be able to read its dest.
		if err := atomicfile.MkdirAllPath(d.dir, DirMode); err != nil {
			return err
		}
	}
	root, err := os.OpenRoot(d.dir)
	switch {
	case err == nil:
		d.root = root
		return nil
	case !create && errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("open %s: %w", d.dir, err)
	}
}

// Check refuses a path that could not be written: hostile (see
// atomicfile.CleanRel) or leading through a symlink.
func (d *Dest) Check(rel string) error {
	if _, err := atomicfile.CleanRel(rel); err != nil {
		return err
	}
	if d.root == nil {
		return nil
	}
	return atomicfile.CheckNoSymlink(d.root, rel)
}

// Read returns the content of the file at rel; ok is false when there is no
// file there.
func (d *Dest) Read(rel string) (data []byte, ok bool, err error) {
	if err := d.Check(rel); err != nil {
		return nil, false, err
	}
	if d.root == nil {
		return nil, false, nil
	}
	data, err = d.root.ReadFile(rel)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", rel, err)
	}
	return data, true, nil
}

// Changed reports which of files differ from what is under dest: content or
// mode, or missing there (or something other than a regular file is there).
// The returned paths are the Path of each such file, in the order given.
func (d *Dest) Changed(files []File) ([]string, error) {
	var changed []string
	for _, f := range files {
		same, err := d.same(f)
		if err != nil {
			return nil, fmt.Errorf("compare %s: %w", f.Path, err)
		}
		if !same {
			changed = append(changed, f.Path)
		}
	}
	return changed, nil
}

// same reports whether the file at f.Path has f's content and mode.
func (d *Dest) same(f File) (bool, error) {
	if err := d.Check(f.Path); err != nil {
		return false, err
	}
	if d.root == nil {
		return false, nil
	}
	fi, err := d.root.Lstat(f.Path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() || fi.Mode()&atomicfile.ModeMask != f.Mode&atomicfile.ModeMask || fi.Size() != int64(len(f.Data)) {
		return false, nil
	}
	fh, err := d.root.Open(f.Path)
	if err != nil {
		return false, err
	}
	defer fh.Close()
	return sameContent(fh, f.Data)
}

// sameContent reports whether r holds exactly data, reading it a block at a
// time: a large file is compared without a second copy of it in memory.
func sameContent(r io.Reader, data []byte) (bool, error) {
	buf := make([]byte, min(len(data)+1, 64<<10))
	for {
		n, err := io.ReadFull(r, buf)
		if n > len(data) || !bytes.Equal(buf[:n], data[:n]) {
			return false, nil
		}
		data = data[n:]
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return len(data) == 0, nil
		case err != nil:
			return false, err
		}
	}
}

// RemoveStale removes the temporary files a killed run left beside paths (see
// atomicfile.RemoveStale).
func (d *Dest) RemoveStale(paths []string) error {
	if d.root == nil {
		return nil
	}
	return atomicfile.RemoveStale(d.root, paths)
}

// Snapshot records what was on disk at some paths under a dest before a run
// changed them: the content and mode of each file, or that it did not exist
// (and which of its parent directories did not exist either).
type Snapshot struct {
	dest    *Dest
	entries []entry
}

// entry is the recorded state of one path of a Snapshot.
type entry struct {
	rel    string
	exists bool
	data   []byte
	mode   os.FileMode
	// dirs are the parent directories below dest that were missing, deepest
	// first; the run creates them when it writes the file.
	dirs []string
	// removed is set when the run removed the file (see Remove); gone are
	// the directories the removal left empty and removed, deepest first.
	removed bool
	gone    []goneDir
}

// snapshot records the current state of paths. A path may be a regular file
// or absent; anything else there (a directory, a device) is an error, since a
// file cannot be written there. A path given twice is recorded once.
func (d *Dest) snapshot(paths []string) (*Snapshot, error) {
	s := &Snapshot{dest: d}
	seen := make(map[string]bool, len(paths))
	for _, rel := range paths {
		if seen[rel] {
			continue
		}
		seen[rel] = true
		e, err := d.record(rel)
		if err != nil {
			return nil, err
		}
		s.entries = append(s.entries, e)
	}
	return s, nil
}

// record reads the state of one path for a Snapshot.
func (d *Dest) record(rel string) (entry, error) {
	e := entry{rel: rel}
	clean, err := atomicfile.CleanRel(rel)
	if err != nil {
		return e, err
	}
	if err := d.Check(clean); err != nil {
		return e, err
	}
	fi, err := d.root.Lstat(clean)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		for p := path.Dir(clean); p != "."; p = path.Dir(p) {
			if _, err := d.root.Lstat(p); err == nil {
				break
			}
			e.dirs = append(e.dirs, p)
		}
		return e, nil
	case err != nil:
		return e, fmt.Errorf("snapshot %s: %w", rel, err)
	case !fi.Mode().IsRegular():
		return e, fmt.Errorf("snapshot %s: %s is not a regular file", rel, filepath.Join(d.dir, clean))
	}
	data, err := d.root.ReadFile(clean)
	if err != nil {
		return e, fmt.Errorf("snapshot %s: %w", rel, err)
	}
	e.exists, e.data, e.mode = true, data, fi.Mode()&atomicfile.ModeMask
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
func (s *Snapshot) restoreOne(e entry) error {
	root := s.dest.root
	if e.removed {
		return s.restoreRemoved(e)
	}
	if e.exists {
		return atomicfile.WriteFile(root, e.rel, e.data, e.mode, DirMode)
	}
	if err := s.dest.Check(e.rel); err != nil {
		return err
	}
	fi, err := root.Lstat(e.rel)
	switch {
	case err == nil && !fi.IsDir():
		if err := root.Remove(e.rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		return err
	}
	sync := path.Dir(path.Clean(e.rel))
	for _, d := range e.dirs {
		// Remove only succeeds on an empty directory: anything put there
		// since, by another file of the run or by someone else, stays.
		if err := root.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			break
		}
		sync = path.Dir(d)
	}
	if fi, err := root.Lstat(sync); err != nil || !fi.IsDir() {
		return nil // the parent never came to be: no entry to make durable
	}
	return atomicfile.SyncDir(root, sync)
}

// Apply writes files under dest, each atomically, in order, creating dest
// when missing. Every path is checked and a Snapshot of them taken before the
// first write, so a hostile path or a directory in the way of a file writes
// nothing. If a write fails, the files already replaced are put back and the
// error names the failed path (and any path that could not be put back).
func (d *Dest) Apply(files []File) (*Snapshot, error) {
	if err := d.open(true); err != nil {
		return nil, err
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	snap, err := d.snapshot(paths)
	if err != nil {
		return nil, err
	}
	// The snapshot's entries follow the order of files, duplicates dropped:
	// after a failure, the first len(seen) of them cover every path replaced.
	// A file whose write failed is as it was (WriteFile leaves it so), and
	// rewriting it could only fail again, on a full disk say; when it did
	// not exist, its entry is put back too, to remove the directories made
	// for it.
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if err := atomicfile.WriteFile(d.root, f.Path, f.Data, f.Mode, DirMode); err != nil {
			werr := err
			n := len(seen)
			if !seen[f.Path] && !snap.entries[n].exists {
				n++
			}
			if rerr := snap.restore(n); rerr != nil {
				return nil, errors.Join(werr, fmt.Errorf("put back files written before: %w", rerr))
			}
			return nil, werr
		}
		seen[f.Path] = true
	}
	return snap, nil
}

// Select returns the files whose Path is in paths, in the order of files.
func Select(files []File, paths []string) []File {
	want := make(map[string]bool, len(paths))
	for _, p := range paths {
		want[p] = true
	}
	var out []File
	for _, f := range files {
		if want[f.Path] {
			out = append(out, f)
		}
	}
	return out
}

// Stat is what the file system says of a file that tells butler, without
// reading it, that nobody changed it since butler wrote or compared it: a
// change of content, even of the same size within the same second, moves the
// mtime or the ctime (nanoseconds), and a replaced file has a new inode.
type Stat struct {
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
	Ino     uint64 `json:"ino"`
	Mode    uint32 `json:"mode"`
}

// Stat returns the Stat of the regular file at rel; ok is false when there is
// no regular file there (or the file system gives no such details).
func (d *Dest) Stat(rel string) (st Stat, ok bool, err error) {
	if d.root == nil {
		return Stat{}, false, d.Check(rel)
	}
	// What Check checks, and the stat of rel, in one Lstat a component.
	fi, err := atomicfile.LstatNoSymlink(d.root, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return Stat{}, false, nil
	}
	if err != nil {
		return Stat{}, false, err
	}
	sys, isStat := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || !isStat {
		return Stat{}, false, nil
	}
	return Stat{
		Size:    fi.Size(),
		MtimeNs: sys.Mtim.Nano(),
		CtimeNs: sys.Ctim.Nano(),
		Ino:     sys.Ino,
		Mode:    uint32(fi.Mode() & atomicfile.ModeMask),
	}, true, nil
}

// goneDir is a directory a removal left empty and removed, with its mode.
type goneDir struct {
	rel  string
	mode os.FileMode
}

// Removable returns those of paths where a regular file is now: what Remove
// would delete, in the order given (for a dry run, and to tell whether a
// removal changes anything). A path that could not be removed (hostile,
// through a symlink, not a regular file) is an error naming it.
func (d *Dest) Removable(paths []string) ([]string, error) {
	var out []string
	for _, rel := range paths {
		clean, fi, err := d.statRemoval(rel)
		if err != nil {
			return nil, err
		}
		if fi != nil {
			out = append(out, clean)
		}
	}
	return out, nil
}

// Remove deletes the files at paths under dest, in order, and the
// directories below dest that this leaves empty. A path where nothing is
// (any more) is not an error. Every path is checked and every file read
// before the first is deleted, so a hostile path, a symlink or something
// other than a regular file at a path deletes nothing. If a removal fails,
// the files already removed are put back, and the error names the failed
// path (and any path that could not be put back).
//
// The Snapshot returned puts every removed file back with its content and
// mode, and the directories removed with it with theirs (their owner is
// butler's then).
//
// Call it after the new files are written (see Update): a manager that
// reads its directory in between never misses a file that is still wanted.
func (d *Dest) Remove(paths []string) (*Snapshot, error) {
	s := &Snapshot{dest: d}
	seen := make(map[string]bool, len(paths))
	for _, rel := range paths {
		e, ok, err := d.recordRemoval(rel)
		if err != nil {
			return nil, err
		}
		if ok && !seen[e.rel] {
			seen[e.rel] = true
			s.entries = append(s.entries, e)
		}
	}
	for i := range s.entries {
		if gone, err := d.removeOne(&s.entries[i]); err != nil {
			done := i
			if gone {
				done++ // removed, then a later step failed: put it back too
			}
			rerr := s.restore(done)
			err = fmt.Errorf("remove %s: %w", s.entries[i].rel, err)
			if rerr != nil {
				return nil, errors.Join(err, fmt.Errorf("put back files removed before: %w", rerr))
			}
			return nil, err
		}
	}
	return s, nil
}

// statRemoval checks rel for a removal and returns it cleaned, with the
// file there; fi is nil when there is no file.
func (d *Dest) statRemoval(rel string) (clean string, fi fs.FileInfo, err error) {
	clean, err = atomicfile.CleanRel(rel)
	if err != nil {
		return "", nil, fmt.Errorf("remove %s: %w", rel, err)
	}
	if d.root == nil {
		return clean, nil, nil // no dest, no file
	}
	if err := atomicfile.CheckNoSymlink(d.root, clean); err != nil {
		return "", nil, fmt.Errorf("remove %s: %w", rel, err)
	}
	fi, err = d.root.Lstat(clean)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return clean, nil, nil
	case err != nil:
		return "", nil, fmt.Errorf("remove %s: %w", rel, err)
	case !fi.Mode().IsRegular():
		return "", nil, fmt.Errorf("remove %s: %s is not a regular file; butler removes only the files it wrote", rel, filepath.Join(d.dir, clean))
	}
	return clean, fi, nil
}

// recordRemoval reads the file at rel for a Snapshot of its removal; ok is
// false when there is no file there.
func (d *Dest) recordRemoval(rel string) (e entry, ok bool, err error) {
	clean, fi, err := d.statRemoval(rel)
	if err != nil || fi == nil {
		return e, false, err
	}
	data, err := d.root.ReadFile(clean)
	if err != nil {
		return e, false, fmt.Errorf("remove %s: %w", rel, err)
	}
	return entry{rel: clean, removed: true, exists: true, data: data, mode: fi.Mode() & atomicfile.ModeMask}, true, nil
}

// removeOne deletes the file of e, then each parent directory it leaves
// empty, recording them in e, and makes the removals durable. gone says
// whether the file was removed, also when a later step failed.
func (d *Dest) removeOne(e *entry) (gone bool, err error) {
	// Checked again: a directory may have been swapped for a symlink since
	// the snapshot. The os.Root keeps even a swap after this check inside dest.
	if err := atomicfile.CheckNoSymlink(d.root, e.rel); err != nil {
		return false, err
	}
	if err := d.root.Remove(e.rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	dir := path.Dir(e.rel)
	for dir != "." {
		fi, err := d.root.Lstat(dir)
		if err != nil || !fi.IsDir() {
			break
		}
		// Remove only succeeds on an empty directory: a directory that still
		// holds anything, butler's or not, stays.
		if err := d.root.Remove(dir); err != nil {
			break
		}
		e.gone = append(e.gone, goneDir{rel: dir, mode: fi.Mode() & atomicfile.ModeMask})
		dir = path.Dir(dir)
	}
	// The removals are durable once the entry of the outermost one is gone
	// from its directory on disk; the inner ones went with it.
	if err := atomicfile.SyncDir(d.root, dir); err != nil {
		return true, err
	}
	return true, nil
}

// restoreRemoved puts back a removed file: the directories removed with it
// first, with their modes, then the file with its content and mode.
func (s *Snapshot) restoreRemoved(e entry) error {
	root := s.dest.root
	if err := atomicfile.CheckNoSymlink(root, e.rel); err != nil {
		return err
	}
	for i := len(e.gone) - 1; i >= 0; i-- {
		g := e.gone[i]
		if err := root.Mkdir(g.rel, g.mode); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue // made again since; WriteFile refuses it if it is no directory
			}
			return err
		}
		if err := root.Chmod(g.rel, g.mode); err != nil { // the umask applied to Mkdir
			return err
		}
		if err := atomicfile.SyncDir(root, path.Dir(g.rel)); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(root, e.rel, e.data, e.mode, DirMode)
}

// Update is a manager's whole change: Apply files, then Remove the paths in
// remove. The Snapshot puts back both, the removed files first. If a write
// or a removal fails, all that was done is put back, and the error names the
// failed path. A path both written and removed is an error, before anything
// is done.
func (d *Dest) Update(files []File, remove []string) (*Snapshot, error) {
	written := make(map[string]bool, len(files))
	for _, f := range files {
		if clean, err := atomicfile.CleanRel(f.Path); err == nil {
			written[clean] = true
		}
	}
	for _, rel := range remove {
		clean, err := atomicfile.CleanRel(rel)
		if err != nil {
			return nil, fmt.Errorf("remove %s: %w", rel, err)
		}
		if written[clean] {
			return nil, fmt.Errorf("remove %s: the path is also written by this change", rel)
		}
		if err := d.Check(clean); err != nil {
			return nil, fmt.Errorf("remove %s: %w", rel, err)
		}
	}
	snap, err := d.Apply(files)
	if err != nil {
		return nil, err
	}
	removed, err := d.Remove(remove)
	if err != nil {
		if rerr := snap.Restore(); rerr != nil {
			return nil, errors.Join(err, fmt.Errorf("put back files written before: %w", rerr))
		}
		return nil, err
	}
	snap.entries = append(snap.entries, removed.entries...)
	return snap, nil
}
