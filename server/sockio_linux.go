package server

import (
	"syscall"
	"unsafe"
)

// rawSocketIO says readSocket and sendSocket work here, so a connection
// reads and writes its socket itself (conn.read, conn.write).
const rawSocketIO = true

// readSocket is one read(2) from the non-blocking socket fd. It is a raw
// system call: the scheduler does not see it, so it neither hands the P
// to another thread nor wakes the sysmon thread, which a blocking-style
// syscall does on every request of a server that keeps going idle (a
// futex wake and a context switch per request, 10-15% of the CPU of
// one-at-a-time gets when measured). A non-blocking socket never
// sleeps in the kernel, so nothing waits on it.
func readSocket(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if errno != syscall.EINTR {
			return int(n), errno
		}
	}
}

// readSocketV is readSocket into several buffers at once: one readv(2).
func readSocketV(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		if errno != syscall.EINTR {
			return int(n), errno
		}
	}
}

// sendSocket is readSocket's counterpart for writes: one send(2) with
// MSG_NOSIGNAL, so a peer that is gone gives EPIPE, not SIGPIPE.
func sendSocket(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			syscall.MSG_NOSIGNAL, 0, 0)
		if errno != syscall.EINTR {
			return int(n), errno
		}
	}
}

// sendBuffers is sendSocket for several buffers at once: one writev(2).
// writev has no MSG_NOSIGNAL, but a SIGPIPE on a descriptor other than
// standard output and error is ignored by the Go runtime (os/signal), so
// a peer that is gone gives EPIPE here too.
func sendBuffers(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		if errno != syscall.EINTR {
			return int(n), errno
		}
	}
}
