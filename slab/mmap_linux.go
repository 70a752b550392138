package slab

import (
	"os"
	"syscall"
	"unsafe"
)

// mmapFile maps size bytes of f shared, read-write.
func mmapFile(f *os.File, size int) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
}

// msync writes the mapped pages of b back to their file.
func msync(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, _, e := syscall.Syscall(syscall.SYS_MSYNC, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), syscall.MS_SYNC)
	if e != 0 {
		return e
	}
	return nil
}

// lockFile takes an exclusive lock on f, failing at once if another open
// file (another store or process) holds it.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

func munmap(b []byte) error { return syscall.Munmap(b) }

func unlockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

const mmapAnonSupported = true

// mmapAnon maps size bytes of private anonymous memory (zeroed).
func mmapAnon(size int) ([]byte, error) {
	return syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
}

// madvHugepage is MADV_HUGEPAGE (linux/mman.h), which package syscall lacks.
const madvHugepage = 14

// adviseHuge asks for transparent huge pages for b (memcached's -L).
func adviseHuge(b []byte) {
	syscall.Madvise(b, madvHugepage) //nolint:errcheck // advice only
}

// discardPage gives the memory of an arena page back to the kernel; the
// page reads as zeros when it is next used.
func discardPage(b []byte) {
	syscall.Madvise(b, syscall.MADV_DONTNEED) //nolint:errcheck // the memory stays, nothing worse
}
