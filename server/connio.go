package server

import (
	"io"
	"os"
	"syscall"
)

// rawIO lets a connection read and write its socket with raw system calls
// (readSocket, sendSocket) while the netpoller still does the waiting, and
// lets an idle connection wait for input holding no buffer. It is unused
// (raw nil) for TLS, which must go through its own buffers, and where
// rawSocketIO is false.
type rawIO struct {
	raw       syscall.RawConn
	onRead    func(uintptr) bool // c.readable, bound once: a method value would allocate per call
	onWrite   func(uintptr) bool // c.writable, bound once
	n         int                // bytes moved by the callback
	err       error              // the callback's error
	pending   []byte             // bytes the write callback still has to send
	fd        int32              // the socket descriptor, -1 if unknown
	inIdleSet bool               // the socket has an entry in the idle set (idle_linux.go)
}

func (r *rawIO) init(c *conn) {
	r.fd = -1
	if !rawSocketIO || c.nc == nil {
		return
	}
	if sc, ok := c.nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			r.raw = raw
			_ = raw.Control(func(fd uintptr) { r.fd = int32(fd) })
			r.onRead = c.readable
			r.onWrite = c.writable
		}
	}
}

// read reads what the socket has into rbuf[rend:]. A connection with
// nothing left to parse gives its buffers back to the pools before it
// waits, and takes them again when input arrives: an idle connection holds
// none. The first attempt is the read itself, so a connection whose input
// is already there makes one system call, not a peek and a read.
func (c *conn) read() (int, error) {
	if c.io.raw == nil {
		return c.nc.Read(c.rbuf[c.rend:])
	}
	c.io.n, c.io.err = 0, nil
	// RawConn.Read forgets readiness the poller saw before it: input that
	// arrives after the first attempt's EAGAIN wakes the wait, input that
	// came before it is what the attempt reads.
	if err := c.io.raw.Read(c.io.onRead); err != nil {
		return 0, err // a deadline (idle timeout, wake) or the connection closed
	}
	return c.io.n, c.io.err
}

// readable is read's RawConn.Read callback; false parks the goroutine
// until the poller sees input.
func (c *conn) readable(fd uintptr) bool {
	if c.rbuf == nil {
		c.acquireBuffers()
	}
	n, errno := readSocket(fd, c.rbuf[c.rend:])
	switch {
	case errno == syscall.EAGAIN:
		if c.rpos == c.rend {
			if c.parking.parkOnWait {
				c.parking.parkOnWait = false
				c.io.err = errParkNow
				return true
			}
			c.releaseBuffers()
		}
		return false
	case errno != 0:
		c.io.err = os.NewSyscallError("read", errno)
	case n == 0:
		c.io.err = io.EOF
	default:
		c.io.n = n
	}
	return true
}

// write writes all of p, waiting for the socket to drain when it is full.
func (c *conn) write(p []byte) (int, error) {
	if c.io.raw == nil {
		return c.nc.Write(p)
	}
	c.io.n, c.io.err, c.io.pending = 0, nil, p
	err := c.io.raw.Write(c.io.onWrite)
	c.io.pending = nil
	if err == nil {
		err = c.io.err
	}
	return c.io.n, err
}

// writable is write's RawConn.Write callback; false parks the goroutine
// until the socket can take more.
func (c *conn) writable(fd uintptr) bool {
	for c.io.n < len(c.io.pending) {
		n, errno := sendSocket(fd, c.io.pending[c.io.n:])
		switch {
		case errno == syscall.EAGAIN:
			return false
		case errno != 0:
			c.io.err = os.NewSyscallError("write", errno)
			return true
		}
		c.io.n += n
	}
	return true
}
