package write

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/butler-sre/butler/pipeline/atomicfile"
)

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
