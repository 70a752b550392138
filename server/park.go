package server

import (
	"errors"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// An idle connection gives its goroutine back. A goroutine parked in the
// netpoller costs its stack (2 KB at least, 8 KB once a request has
// grown it), so 10K idle clients cost tens of MB; memcached's cost
// about 0.7 KB each. A connection that has not sent a command for
// idleParkAfter seconds is asked by the sweeper (sweepIdle) to park: its
// goroutine puts the socket in the idle set (idle_linux.go) and exits, and
// the idle set starts a new goroutine for it when input arrives. A new
// connection parks at once until its first input. Busy connections never
// park, so the request path is unchanged; TLS connections, watchers and
// connections in the middle of a request (a partial line, a value being
// read into its item, pinned or unwritten replies) keep their goroutines.
const (
	// idleParkAfter is how many seconds (of the server's coarse clock)
	// without a command make a connection park: 2 means between 1 and 3 s.
	idleParkAfter = 2
	// idleSweepEvery is the sweeper's period.
	idleSweepEvery = time.Second
	// freeOSAfter parks, or closed connections (a quarter of them at
	// least), in one sweep period make the sweeper return freed memory to
	// the operating system at once instead of leaving it to the
	// scavenger, which takes minutes.
	freeOSAfter = 1000
	// detachFreshAbove is how many open connections make a new one leave
	// the netpoller as soon as it parks (detach). Below it a new
	// connection keeps its net.Conn until it has been idle a while: a
	// client that connects for one request (PHP without persistent
	// connections) then pays no extra system calls, about a dozen, while
	// the netpoller state kept for reuse stays small.
	detachFreshAbove = 512
)

// Park states of a connection (connPark.state).
const (
	connActive      int32 = iota // a goroutine serves it
	connParking                  // its goroutine is putting it in the idle set
	connParked                   // no goroutine: the idle set holds it
	connResumeAsked              // woken while parking: the goroutine carries on
)

// connPark is a connection's idle-parking state; the sweeper and the idle
// set read it without the connection's goroutine.
type connPark struct {
	state   atomic.Int32
	askPark atomic.Bool // set by the sweeper: park at the next wait
	noPark  atomic.Bool // a watcher keeps its goroutine
	started bool        // connNew and the TLS handshake are done
	// parkedAt is when the connection last parked (the coarse clock's
	// seconds). One resumed after a long park (or
	// new) parks again as soon as it waits for input (parkOnWait): a
	// client that sends a request every few seconds, or a burst of new
	// clients, never holds a goroutine for long. One resumed soon after
	// it parked is busy and keeps its goroutine until the sweeper asks.
	parkedAt   int64
	parkOnWait bool
	fresh      bool // parked since it was accepted
}

// errParkNow is conn.read's answer when a connection with parkOnWait set
// has no input: serve parks it.
var errParkNow = errors.New("park")

// resumed sets parkOnWait for a connection that starts serving again.
func (c *conn) resumed() {
	c.parking.parkOnWait = c.parking.fresh || c.srv.now()-c.parking.parkedAt > 1
	c.parking.fresh = false
}

// park gives the goroutine back if the connection has nothing in progress:
// true means the caller must return at once without touching c (another
// goroutine may already serve it).
func (c *conn) park() bool {
	if !c.srv.parksIdle() || c.io.raw == nil || c.rpos != c.rend || c.holdsValues() ||
		c.closing || c.shutdown.Load() || c.parking.noPark.Load() {
		return false
	}
	c.releaseBuffers()
	c.parking.parkedAt = c.srv.now()
	c.parking.parkOnWait = false
	if !c.parking.fresh || c.srv.currConns.Load() > detachFreshAbove {
		c.detach() // idle_linux.go: the netpoller's state goes too
	}
	c.srv.retireStats(c)
	c.parking.state.Store(connParking)
	if !c.srv.idle.add(c) {
		c.parking.state.Store(connActive)
		c.unpark()
		return false
	}
	c.srv.parks.Add(1)
	if c.parking.state.CompareAndSwap(connParking, connParked) {
		// wake sets shutdown before it looks at the state: if it looked
		// before the connection was parked, the goroutine takes it back
		// here (unless the idle set or the sweeper already has).
		if !c.shutdown.Load() || !c.parking.state.CompareAndSwap(connParked, connActive) {
			return true
		}
	} else {
		c.parking.state.Store(connActive) // input or shutdown came first
	}
	c.unpark()
	return false
}

// unpark gives a connection that did not park after all its counters and
// its net.Conn back, or has it close if the socket is gone.
func (c *conn) unpark() {
	c.srv.takeStats(c)
	if !c.attach() {
		c.closing = true
	}
}

// parksIdle says whether idle connections park: not where there is no
// idle set, nor under an idle timeout shorter than the sweeper can keep
// (a parked connection's timeout is the sweeper's to enforce, to the
// second).
func (s *Server) parksIdle() bool {
	t := s.cfg.IdleTimeout
	return canParkIdle && rawSocketIO && (t == 0 || t >= (idleParkAfter+1)*time.Second)
}

// answerPark handles the sweeper's wake-up of a connection waiting for
// input: parked reports that the goroutine was given back, retry that the
// connection carries on waiting; neither leaves err to the caller (not
// the sweeper's timeout, or the idle timeout's after all).
func (c *conn) answerPark(err error, idle time.Duration) (parked, retry bool) {
	c.parking.askPark.Store(false)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || c.shutdown.Load() {
		return false, false
	}
	if c.holdsValues() {
		// In the middle of a value (a slow uploader): it keeps its
		// goroutine, and, as in memcached, the idle timeout does not cut
		// a value being read.
		if idle == 0 {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		return false, true
	}
	if idle > 0 && c.srv.now()-c.lastCmd.Load() >= int64(idle/time.Second) {
		return false, false
	}
	if idle == 0 {
		_ = c.nc.SetReadDeadline(time.Time{}) // the sweeper's, not ours
	}
	return c.park(), true
}

// resume starts a goroutine for a parked connection; a connection still
// parking is told to carry on instead.
func (s *Server) resume(c *conn) {
	for {
		switch st := c.parking.state.Load(); st {
		case connParked:
			if c.parking.state.CompareAndSwap(st, connActive) {
				go s.runConn(c)
				return
			}
		case connParking:
			if c.parking.state.CompareAndSwap(st, connResumeAsked) {
				return
			}
		default:
			return
		}
	}
}

// resumeReady resumes a parked connection whose socket the idle set saw
// ready. One whose peer hung up with nothing left to read is closed on the
// calling goroutine instead: when thousands of idle clients disconnect at
// once, no goroutine starts, and none takes a stack and buffers only to
// read the end of its input.
func (s *Server) resumeReady(c *conn, hangup bool) {
	if hangup && c.parking.state.CompareAndSwap(connParked, connActive) {
		if peerGone(c.io.fd) {
			c.closing = true
			s.runConn(c)
			return
		}
		go s.runConn(c)
		return
	}
	s.resume(c)
}

// shrinkConnMaps rebuilds the maps of connections at their present size
// after a mass disconnect: Go's maps never shrink, and those of 10K
// connections keep about 450 KB live after they have gone.
func (s *Server) shrinkConnMaps() {
	s.mu.Lock()
	s.conns = shrunk(s.conns)
	s.mu.Unlock()
	s.idle.shrink()
}

// shrunk copies m into a map sized for its present length (maps.Clone
// would keep m's capacity).
func shrunk[K comparable, V any](m map[K]V) map[K]V {
	n := make(map[K]V, len(m))
	for k, v := range m {
		n[k] = v
	}
	return n
}

// sweepIdle asks connections idle for idleParkAfter seconds to park,
// closes parked ones past the idle timeout, and returns memory to the
// operating system after many parks or a mass disconnect.
func (s *Server) sweepIdle() {
	defer s.wg.Done()
	t := time.NewTicker(idleSweepEvery)
	defer t.Stop()
	prevConns := s.currConns.Load()
	freeOS := 0
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		now := s.now()
		timeout := int64(s.cfg.IdleTimeout / time.Second)
		s.mu.Lock()
		for c := range s.conns {
			if c.io.onRead == nil { // no raw socket I/O (TLS): never parks; set once, unlike raw
				continue
			}
			last := c.lastCmd.Load()
			switch c.parking.state.Load() {
			case connActive:
				// Asked again each sweep until it parks: its own deadline
				// (idle timeout) may have replaced the sweeper's.
				if now-last >= idleParkAfter && !c.parking.noPark.Load() {
					c.parking.askPark.Store(true)
					_ = c.nc.SetReadDeadline(time.Now())
				}
			case connParked:
				if timeout > 0 && now-last >= timeout && c.parking.state.CompareAndSwap(connParked, connActive) {
					s.retired.idleKicks++ // a parked connection's counters are retired
					c.closing = true
					go s.runConn(c)
				}
			}
		}
		s.mu.Unlock()
		cur := s.currConns.Load()
		massClose := prevConns-cur >= freeOSAfter && cur < prevConns*3/4
		if massClose {
			s.shrinkConnMaps()
		}
		if parks := s.parks.Swap(0); parks >= freeOSAfter || massClose {
			// Twice: pooled buffers survive one collection in sync.Pool's
			// victim cache, and stacks of exited goroutines are freed by
			// the collection after they exit.
			freeOS = 2
		}
		prevConns = cur
		if freeOS > 0 {
			freeOS--
			debug.FreeOSMemory()
		}
	}
}
