package server

import (
	"os"
	"sync"
	"syscall"
)

// idleSet holds the connections that gave their goroutines back while idle
// (conn.park): an epoll set of their sockets, one-shot and level-triggered,
// which the netpoller watches as one descriptor. The goroutine that waits
// on it starts a connection's goroutine again when its socket has input,
// hangs up or fails. A parked connection costs its conn struct, its
// net.Conn and an epoll entry: no goroutine stack and no buffers.
type idleSet struct {
	once  sync.Once
	epoll *os.File // nil if the set could not be made: connections keep their goroutines
	epfd  int      // epoll's descriptor (File.Fd would make it blocking)
	mu    sync.Mutex
	conns map[int32]*conn // by socket descriptor: every connection ever parked and still open
}

// canParkIdle says idle connections can give their goroutines back here.
const canParkIdle = true

func (s *idleSet) init(srv *Server) bool {
	s.once.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			srv.log.Warn("idle connections keep their goroutines: epoll_create1: " + err.Error())
			return
		}
		if err := syscall.SetNonblock(fd, true); err != nil {
			syscall.Close(fd)
			return
		}
		s.epfd = fd
		s.epoll = os.NewFile(uintptr(fd), "idle-connections") // non-blocking, so the netpoller watches it
		s.conns = map[int32]*conn{}
		rc, err := s.epoll.SyscallConn()
		if err != nil {
			s.epoll.Close()
			s.epoll = nil
			return
		}
		go s.run(srv, rc)
	})
	return s.epoll != nil
}

// run resumes the connections whose sockets become ready, until the set is
// closed.
func (s *idleSet) run(srv *Server, rc syscall.RawConn) {
	events := make([]syscall.EpollEvent, 256)
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(fd), events, 0)
			if err == syscall.EINTR {
				continue
			}
			for _, ev := range events[:max(n, 0)] {
				s.mu.Lock()
				c := s.conns[ev.Fd]
				s.mu.Unlock()
				if c != nil {
					srv.resumeReady(c, ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0)
				}
			}
			if n < len(events) {
				return false // drained: wait for the netpoller
			}
		}
	})
}

// add arms c's socket in the set; false if it cannot be watched.
func (s *idleSet) add(c *conn) bool {
	if c.io.fd < 0 || !s.init(c.srv) {
		return false
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: c.io.fd}
	s.mu.Lock()
	s.conns[c.io.fd] = c
	s.mu.Unlock()
	op := syscall.EPOLL_CTL_MOD // one-shot: the entry stays, disarmed, after it fires
	if !c.io.inIdleSet {
		op = syscall.EPOLL_CTL_ADD
	}
	if err := syscall.EpollCtl(s.epfd, op, int(c.io.fd), &ev); err != nil {
		return false
	}
	c.io.inIdleSet = true
	return true
}

// remove takes c's socket out of the set before it is closed (and its
// descriptor reused).
func (s *idleSet) remove(c *conn) {
	if !c.io.inIdleSet {
		return
	}
	_ = syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_DEL, int(c.io.fd), nil)
	c.io.inIdleSet = false
	s.mu.Lock()
	if s.conns[c.io.fd] == c {
		delete(s.conns, c.io.fd)
	}
	s.mu.Unlock()
}

// peerGone reports whether the socket fd has nothing to read but its end:
// the peer closed it, or it failed.
func peerGone(fd int32) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return (n == 0 && err == nil) || (err != nil && err != syscall.EAGAIN && err != syscall.EINTR)
}

func (s *idleSet) close() {
	if s.epoll != nil {
		s.epoll.Close()
	}
}
