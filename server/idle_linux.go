package server

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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

// shrink rebuilds the map of parked connections at its present size
// (Server.shrinkConnMaps).
func (s *idleSet) shrink() {
	s.mu.Lock()
	s.conns = shrunk(s.conns)
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

// A parked connection also gives back its place in the netpoller. Go keeps
// the poll state of every descriptor it has watched (about 530 bytes each)
// for reuse and never returns it to the operating system, so 10K clients
// that connect and wait would leave 5 MB behind when they go. detach keeps
// a duplicate of the socket, which the idle set watches, and closes the
// net.Conn; attach makes a net.Conn of the socket again when the
// connection resumes. A connection parks after seconds without a command,
// so the few system calls each costs are not on any request's path.

// parkedSocket stands in for a detached connection's net.Conn: others may
// still ask for its addresses, set deadlines (a no-op: the sweeper enforces
// a parked connection's idle timeout) or close it.
type parkedSocket struct {
	fd            atomic.Int32 // the duplicate; -1 once closed or attached
	local, remote net.Addr
}

func (p *parkedSocket) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (p *parkedSocket) Write([]byte) (int, error)        { return 0, net.ErrClosed }
func (p *parkedSocket) LocalAddr() net.Addr              { return p.local }
func (p *parkedSocket) RemoteAddr() net.Addr             { return p.remote }
func (p *parkedSocket) SetDeadline(time.Time) error      { return nil }
func (p *parkedSocket) SetReadDeadline(time.Time) error  { return nil }
func (p *parkedSocket) SetWriteDeadline(time.Time) error { return nil }

// Close closes the socket unless attach took it first.
func (p *parkedSocket) Close() error {
	if fd := p.fd.Swap(-1); fd >= 0 {
		return syscall.Close(int(fd))
	}
	return nil
}

// detach swaps c's net.Conn for a parkedSocket holding a duplicate of its
// descriptor; false (nothing changed) if it cannot.
func (c *conn) detach() bool {
	switch c.nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return false
	}
	if c.io.fd < 0 {
		return false
	}
	dup, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(c.io.fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return false
	}
	ps := &parkedSocket{local: c.nc.LocalAddr(), remote: c.nc.RemoteAddr()}
	ps.fd.Store(int32(dup))
	// The idle set's entry is keyed by the old descriptor: epoll would keep
	// it, firing, after close while the duplicate holds the socket open.
	c.srv.idle.remove(c)
	c.srv.mu.Lock() // others read c.nc under it (wake, the sweeper, stats conns)
	old := c.nc
	c.nc = ps
	c.srv.mu.Unlock()
	_ = old.Close()
	// The RawConn would keep the closed net.Conn's netFD and addresses
	// alive (about 300 bytes); attach makes a new one.
	c.io.fd, c.io.raw = int32(dup), nil
	return true
}

// attach gives a detached connection a net.Conn again; false if the
// socket is gone (closed by shutdown, or the net.Conn cannot be made), and
// the connection must close. A connection that is not detached is left as
// it is.
func (c *conn) attach() bool {
	ps, ok := c.nc.(*parkedSocket)
	if !ok {
		return true
	}
	c.srv.idle.remove(c)
	fd := ps.fd.Swap(-1)
	if fd < 0 {
		return false
	}
	// Blocking first, so os.NewFile does not register the descriptor with
	// the netpoller only for FileConn's duplicate to be registered again;
	// FileConn makes its duplicate non-blocking.
	_ = syscall.SetNonblock(int(fd), false)
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return false
	}
	c.srv.mu.Lock()
	c.nc = nc
	c.srv.mu.Unlock()
	c.io.init(c)
	return true
}

// detachedFD is the descriptor of a detached connection's socket, -1 if
// nc is not one.
func detachedFD(nc net.Conn) int {
	if ps, ok := nc.(*parkedSocket); ok {
		return int(ps.fd.Load())
	}
	return -1
}
