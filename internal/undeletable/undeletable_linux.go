// Package undeletable makes a file that cannot be removed, so that tests can
// make a removal or a rename fail at a chosen file. Tests only.
package undeletable

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// The inode flag ioctls of linux/fs.h (FS_IOC_GETFLAGS, FS_IOC_SETFLAGS) and
// the immutable flag.
const (
	iocGetFlags = 2<<30 | uintptr(unsafe.Sizeof(uintptr(0)))<<16 | 'f'<<8 | 1
	iocSetFlags = 1<<30 | uintptr(unsafe.Sizeof(uintptr(0)))<<16 | 'f'<<8 | 2
	immutable   = 0x10
)

// Make keeps the file at path from being removed, renamed or replaced until
// undo is called or the test ends. A user loses the write permission on the
// file's directory; root, whom permissions do not stop, gets the immutable
// flag on the file. Where the file system has no such flag, the test skips.
func Make(t testing.TB, path string) (undo func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		dir := filepath.Dir(path)
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		undo = func() { _ = os.Chmod(dir, fi.Mode().Perm()) }
		t.Cleanup(undo)
		return undo
	}
	flags, errno := ioctlFlags(path, iocGetFlags, 0)
	if errno != 0 {
		t.Skipf("cannot make %s undeletable for root here: read its inode flags: %v", path, errno)
	}
	if _, errno := ioctlFlags(path, iocSetFlags, flags|immutable); errno != 0 {
		t.Skipf("cannot make %s undeletable for root here: set the immutable flag: %v", path, errno)
	}
	undo = func() {
		if _, errno := ioctlFlags(path, iocSetFlags, flags&^immutable); errno != 0 && errno != syscall.ENOENT {
			t.Errorf("clear the immutable flag of %s: %v", path, errno)
		}
	}
	t.Cleanup(undo)
	return undo
}

// ioctlFlags reads (iocGetFlags) or sets (iocSetFlags, to v) the inode
// flags of the file at path.
func ioctlFlags(path string, req uintptr, v int32) (int32, syscall.Errno) {
	f, err := os.Open(path)
	if err != nil {
		return 0, syscall.ENOENT
	}
	defer f.Close()
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(&v)))
	return v, errno
}
