package lkg

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/butler-sre/butler/pipeline/internal/fstest"
	"github.com/butler-sre/butler/pipeline/write"
)

// The inode flags ioctls of linux/fs.h: _IOR('f', 1, long), _IOW('f', 2, long).
const (
	fsIocGetflags = 2<<30 | uintptr(unsafe.Sizeof(uintptr(0)))<<16 | 'f'<<8 | 1
	fsIocSetflags = 1<<30 | uintptr(unsafe.Sizeof(uintptr(0)))<<16 | 'f'<<8 | 2
	fsImmutableFl = 0x10
)

// makeUndeletable makes the file at path impossible to remove until undo is
// called or the test ends: without write permission on its directory for a
// user, with the immutable flag for root (whom permissions do not stop). The
// test is skipped where the file system has no immutable flag.
func makeUndeletable(t *testing.T, path string) (undo func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		dir := filepath.Dir(path)
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		undo = func() { _ = os.Chmod(dir, 0o700) }
		t.Cleanup(undo)
		return undo
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var flags int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocGetflags, uintptr(unsafe.Pointer(&flags))); errno != 0 {
		t.Skipf("cannot make a file undeletable for root here: get inode flags: %v", errno)
	}
	set := func(v int32) syscall.Errno {
		g, err := os.Open(path)
		if err != nil {
			return syscall.ENOENT
		}
		defer g.Close()
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, g.Fd(), fsIocSetflags, uintptr(unsafe.Pointer(&v)))
		return errno
	}
	if errno := set(flags | fsImmutableFl); errno != 0 {
		t.Skipf("cannot make a file undeletable for root here: set the immutable flag: %v", errno)
	}
	undo = func() {
		if errno := set(flags &^ fsImmutableFl); errno != 0 && errno != syscall.ENOENT {
			t.Errorf("clear the immutable flag of %s: %v", path, errno)
		}
	}
	t.Cleanup(undo)
	return undo
}

// TestLKGStoreReportsUndeletableOldVersion: when the old version cannot be
// removed after the switch, Store says so; the new copy is the one loaded,
// and the next Store removes the leftover.
func TestLKGStoreReportsUndeletableOldVersion(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "m")
	v1 := []write.File{{Path: "a.yml", Data: []byte("v1"), Mode: 0o644}}
	if err := Store(dir, v1); err != nil {
		t.Fatal(err)
	}
	oldVersion, err := os.Readlink(dir)
	if err != nil {
		t.Fatal(err)
	}
	undo := makeUndeletable(t, filepath.Join(parent, oldVersion, "a.yml"))

	v2 := []write.File{{Path: "a.yml", Data: []byte("v2"), Mode: 0o644}}
	err = Store(dir, v2)
	if err == nil || !strings.Contains(err.Error(), "remove old copy") {
		t.Fatalf("Store = %v, want an error saying the old copy was not removed", err)
	}
	lkgTestLoad(t, dir, v2)
	if names := fstest.Names(t, parent); !slices.Contains(names, oldVersion) {
		t.Fatalf("parent holds %q: the old version went after all", names)
	}

	undo()
	v3 := []write.File{{Path: "a.yml", Data: []byte("v3"), Mode: 0o644}}
	if err := Store(dir, v3); err != nil {
		t.Fatal(err)
	}
	lkgTestLoad(t, dir, v3)
	if names := fstest.Names(t, parent); len(names) != 2 {
		t.Errorf("parent holds %q, want the link and one version", names)
	}
}
