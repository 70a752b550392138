package server

import (
	"io"
	"os"
	"sync/atomic"
	"syscall"
)

// rawIO lets a connection read and write its socket with raw system calls
// (readSocket, sendSocket) while the netpoller still does the waiting, and
// lets an idle connection wait for input holding no buffer. It is unused
// (raw nil) for TLS, which must go through its own buffers, and where
// rawSocketIO is false.
type rawIO struct {
	raw       syscall.RawConn
	onRead    func(uintptr) bool                                  // c.readable, bound once: a method value would allocate per call
	onWrite   func(uintptr) bool                                  // c.writable, bound once
	n         int                                                 // bytes moved by the callback
	turn      int                                                 // bytes written since the connection last waited or yielded (turnMax)
	contends  bool                                                // counted in the gate's contending writers (yieldWrite)
	err       error                                               // the callback's error
	pending   []byte                                              // bytes the write callback still has to send
	onWriteV  func(uintptr) bool                                  // c.writableV, bound once
	pendingV  [][]byte                                            // buffers the vectored write callback still has to send
	iov       []syscall.Iovec                                     // the vectored write's descriptors, reused
	send      func(uintptr, []byte) (int, syscall.Errno)          // sendSocket; tests watch the writes through it
	sendV     func(uintptr, []syscall.Iovec) (int, syscall.Errno) // sendBuffers, likewise
	dst       []byte                                              // where read's callback reads (readTo); nil: rbuf[rend:]
	dstTail   bool                                                // bytes past dst go on into rbuf[rend:] (readTail)
	nTail     int                                                 // bytes of the read that went into rbuf (dstTail)
	tailIOV   [2]syscall.Iovec                                    // dst and rbuf[rend:] for readTail's readv
	fd        int32                                               // the socket descriptor, -1 if unknown
	inIdleSet bool                                                // the socket has an entry in the idle set (idle_linux.go)
	inline    bool                                                // read's callback may serve what it reads (serveInline)
	served    inlineEnd                                           // how an inline batch ended the serving, for serve
}

// inlineEnd says why requests served inside the read callback
// (serveInline) end the connection's serving loop.
type inlineEnd uint8

const (
	inlineGoOn  inlineEnd = iota // nothing: serve carries on
	inlineWatch                  // the batch made the connection a watcher
	inlineClose                  // its replies could not be written
)

// init takes c.nc's socket; a connection given a new net.Conn (attach)
// calls it again.
func (r *rawIO) init(c *conn) {
	r.fd, r.raw = -1, nil
	if !rawSocketIO || c.nc == nil {
		return
	}
	if sc, ok := c.nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			r.raw = raw
			_ = raw.Control(func(fd uintptr) { r.fd = int32(fd) })
			if r.onRead == nil {
				r.onRead = c.readable
				r.onWrite = c.writable
				r.onWriteV = c.writableV
				r.send, r.sendV = sendSocket, sendBuffers
			}
		}
	}
}

// read reads what the socket has into rbuf[rend:]. A connection with
// nothing left to parse and nothing in progress (values.go: holdsValues)
// gives its buffers back to the pools before it waits, and takes them
// again when input arrives: an idle connection holds none. The first
// attempt is the read itself, so a connection whose input is already
// there makes one system call, not a peek and a read.
func (c *conn) read() (int, error) {
	// Served inside the callback only without an idle timeout: serve
	// renews the read deadline between reads.
	c.io.inline = c.io.raw != nil && c.srv.cfg.IdleTimeout == 0
	n, err := c.readTo(nil)
	c.io.inline = false
	return n, err
}

// readTo is read into p instead of the read buffer (nil: the read
// buffer); values.go reads a value's bytes straight into item memory
// with it.
func (c *conn) readTo(p []byte) (int, error) {
	if c.io.raw == nil {
		if p == nil {
			p = c.rbuf[c.rend:]
		}
		return c.nc.Read(p)
	}
	c.io.n, c.io.err, c.io.dst, c.io.nTail = 0, nil, p, 0
	// RawConn.Read forgets readiness the poller saw before it: input that
	// arrives after the first attempt's EAGAIN wakes the wait, input that
	// came before it is what the attempt reads.
	err := c.io.raw.Read(c.io.onRead)
	c.io.dst = nil
	if err != nil {
		return 0, err // a deadline (idle timeout, wake) or the connection closed
	}
	return c.io.n, c.io.err
}

// readable is read's RawConn.Read callback; false parks the goroutine
// until the poller sees input.
//
// For read (not readTo) it also serves what it reads while the
// connection is in its steady state (serveInline), and when a read
// drained the socket it waits for the poller without the read that would
// only find it empty: RawConn.Read clears the poller's readiness when it
// is called, not between calls of its callback, so input that arrives
// after that read wakes the wait. A one-request-at-a-time client costs
// one read system call a request, not two.
func (c *conn) readable(fd uintptr) bool {
	drained := false
	for {
		if drained {
			return c.waitForInput()
		}
		p := c.io.dst
		value := false // reading a value straight into its item (values.go)
		if p == nil {
			if c.rbuf == nil {
				c.acquireBuffers()
			}
			if value = c.io.inline && c.valueNext(); value {
				p, c.io.dstTail = c.valueSpan()
			} else {
				p = c.rbuf[c.rend:]
			}
		}
		room := len(p) // what the read could take: drained if it took less
		var n int
		var errno syscall.Errno
		if c.io.dstTail {
			room += len(c.rbuf) - c.rend
			n, errno = c.readTail(fd, p)
		} else {
			n, errno = readSocket(fd, p)
		}
		tail := c.io.nTail
		if value {
			c.io.dstTail, c.io.nTail = false, 0
		}
		switch {
		case errno == syscall.EAGAIN:
			return c.waitForInput()
		case errno != 0:
			c.io.err = os.NewSyscallError("read", errno)
			return true
		case n == 0:
			c.io.err = io.EOF
			return true
		}
		if value {
			c.valueRead(n, tail)
			if (tail > 0 || c.valueDone()) && !c.serveBuffered() {
				return true
			}
			drained = n+tail < room
			continue
		}
		c.io.n = n
		if !c.io.inline {
			return true
		}
		if !c.serveInline(n) {
			return true
		}
		drained = n < len(p)
	}
}

// readTail is readable's read when c.io.dstTail is set: one readv into p, the
// end of a value in item memory, and on into the read buffer, which takes
// the value's "\r\n" and whatever the client sent after it. It returns
// the bytes that went into p and sets c.io.nTail to the rest.
func (c *conn) readTail(fd uintptr, p []byte) (int, syscall.Errno) {
	rest := c.rbuf[c.rend:]
	iov := c.io.tailIOV[:]
	iov[0] = syscall.Iovec{Base: &p[0]}
	iov[0].SetLen(len(p))
	iov[1] = syscall.Iovec{Base: &rest[0]}
	iov[1].SetLen(len(rest))
	n, errno := readSocketV(fd, iov)
	clear(iov) // no pointer into item memory outlives the read
	if n <= len(p) {
		return n, errno
	}
	c.io.nTail = n - len(p)
	return len(p), errno
}

// waitForInput is readable's answer when there is nothing to read: false
// (wait for the poller), having given back the buffers of a connection
// with nothing in progress, or true with errParkNow for one that parks.
func (c *conn) waitForInput() bool {
	c.io.turn = 0 // it waits: its write turn ends
	// A connection in the middle of a value (a reservation, pins,
	// unwritten replies) keeps its buffers and its goroutine.
	if c.rpos == c.rend && !c.holdsValues() {
		if c.parking.parkOnWait {
			c.parking.parkOnWait = false
			c.io.err = errParkNow
			return true
		}
		c.releaseBuffers()
	}
	return false
}

// serveInline serves the n bytes just read into rbuf as serve would, from
// inside read's callback, if the connection is in its steady state (all
// input parsed and answered, nothing in progress). goOn reports that
// reading may go on in the callback (serveBuffered); otherwise serve takes
// over, with c.io.n bytes still to process if they were not served, and
// c.io.served saying whether it must stop.
func (c *conn) serveInline(n int) (goOn bool) {
	if !c.steady() {
		return false
	}
	atomic.AddUint64(&c.stats.bytesRead, uint64(n))
	c.rend += n
	return c.serveBuffered()
}

// serveBuffered processes the read buffer and writes the replies from
// inside read's callback, and reports whether reading may go on there: the
// connection is back in its steady state, or reading a value straight into
// its item (valueNext), which the callback does too, so that a large set
// costs no read that finds the socket empty. It leaves c.io.n at 0: what
// was read is served (and the replies' writes used c.io.n).
func (c *conn) serveBuffered() bool {
	c.process()
	goOn := false
	switch {
	case c.watcher != nil:
		c.io.served = inlineWatch
	case !c.flush():
		c.io.served = inlineClose
	default:
		goOn = c.steady() || c.valueNext()
	}
	c.io.n = 0
	return goOn
}

// steady reports that the connection has parsed and answered all its
// input and has nothing in progress or pending.
func (c *conn) steady() bool {
	return c.rpos == c.rend && !c.closing && !c.shutdown.Load() && !c.parking.askPark.Load() &&
		c.watcher == nil && !c.holdsValues()
}

// write writes all of p, waiting for the socket to drain when it is full,
// in turns (turnMax).
func (c *conn) write(p []byte) (int, error) {
	if c.io.raw == nil {
		return c.nc.Write(p)
	}
	c.startWrite()
	c.io.n, c.io.err, c.io.pending = 0, nil, p
	var err error
	for {
		err = c.io.raw.Write(c.io.onWrite)
		if err != nil || c.io.err != nil || c.io.n == len(p) {
			break
		}
		c.yieldWrite()
	}
	c.io.pending = nil
	c.stopContending()
	if err == nil {
		err = c.io.err
	}
	return c.io.n, err
}

// writable is write's RawConn.Write callback; false parks the goroutine
// until the socket can take more, true with bytes left ends the turn.
func (c *conn) writable(fd uintptr) bool {
	for c.io.n < len(c.io.pending) {
		if c.io.turn >= c.srv.wgate.turnMax() {
			return true
		}
		p := c.io.pending[c.io.n:]
		n, errno := c.io.send(fd, p[:min(len(p), c.srv.wgate.callMax())])
		if sent, done := c.afterSend(n, errno, "write"); !sent {
			return done
		}
	}
	return true
}

// afterSend takes the result of a write callback's system call: sent says
// n bytes went out and the callback goes on; otherwise the callback
// returns done (false: wait for the socket to drain, the turn ending;
// true: the call failed, c.io.err says why).
func (c *conn) afterSend(n int, errno syscall.Errno, call string) (sent, done bool) {
	switch {
	case errno == syscall.EAGAIN:
		c.io.turn = 0 // the goroutine waits: the others run
		c.stopContending()
		return false, false
	case errno != 0:
		c.io.err = os.NewSyscallError(call, errno)
		return false, true
	}
	c.io.n += n
	c.io.turn += n
	return true, false
}

// Write turns. The daemon runs -t goroutines at once, and the kernel takes
// megabytes into a socket whose client does not read: without turns, each
// of a few hundred such connections copied its socket full (4 MB on
// Linux's defaults) in one go while a normal client's request, already
// read by the poller, waited behind all of them (hundreds of ms). So a
// connection that has written a turn's bytes since it last waited yields
// (yieldWrite), between system calls or before its next write, and no
// system call is given more than a call's bytes.
//
// A turn is writeTurnMax and a call writeCallMax while at most one writer
// takes turns; with two or more (writeGate.contending) both are
// contendedTurn, so that a request that has arrived waits behind short
// copies. Measured (1 MB gets one at a time from a client that reads, this
// 2-CPU VM): writes cut at 256 KB took 2.2x the server CPU of whole 1 MB
// writes, each extra write waking the reader once more; a 1 MB reply in one
// call and a yield after it cost 1.05x. Such a client never takes turns
// (waiting for its next request ends a turn). With 200 clients that
// pipeline 1 MB gets and never read, a normal client's p99 was 0.42 ms
// with 256 KB turns and calls cut to 64 KB, 0.33 ms with 64 KB turns and
// 0.26 ms with 32 KB turns (memcached 0.25-0.30 ms in the same runs).
const (
	writeTurnMax  = 256 << 10
	writeCallMax  = 1 << 20
	contendedTurn = 32 << 10
)

// yieldWrite ends a write turn: the goroutine goes to the back of the
// run queue, and now and then waits for the poller (writeGate), so that
// requests that have arrived meanwhile are served first. The connection
// counts as contending until its write completes or waits for the socket.
func (c *conn) yieldWrite() {
	if !c.io.contends {
		c.io.contends = true
		c.srv.wgate.contending.Add(1)
	}
	c.srv.wgate.yield(c.gateChan())
	c.io.turn = 0
}

// stopContending ends the connection's count in the gate's contending
// writers: its write is complete, or waits for the socket to drain (a
// client that does not read is no competition while it waits).
func (c *conn) stopContending() {
	if c.io.contends {
		c.io.contends = false
		c.srv.wgate.contending.Add(-1)
	}
}

// startWrite yields before a write if the connection's turn is used up.
// A write that uses up the turn does not yield after itself: a client
// that reads its reply and sends the next request makes the connection
// wait for input, which ends the turn, and the yield is saved.
func (c *conn) startWrite() {
	if c.io.turn >= c.srv.wgate.turnMax() {
		c.yieldWrite()
	}
}

// gateChan is the channel the write gate wakes the connection with.
func (c *conn) gateChan() chan struct{} {
	if c.gateCh == nil {
		c.gateCh = make(chan struct{}, 1)
	}
	return c.gateCh
}

// writeOut writes the pending replies that reference item memory (c.out:
// write-buffer pieces and value spans) with vectored writes: one system
// call for the lot unless the socket fills or the lot passes a call's bytes.
// c.out's elements are consumed; the caller clears it.
func (c *conn) writeOut() (int64, error) {
	if c.io.raw == nil {
		pieces := c.out
		n, err := c.out.WriteTo(c.nc) // TLS and the rest: through net.Conn
		c.out = pieces
		return n, err
	}
	if c.srv.wgate.pending.Load() { // writers wait for the poller: so does this one
		c.srv.wgate.waitPending(c.gateChan())
		c.io.turn = 0
	}
	c.startWrite()
	c.io.n, c.io.err, c.io.pendingV = 0, nil, c.out
	var err error
	for {
		err = c.io.raw.Write(c.io.onWriteV)
		if err != nil || c.io.err != nil || len(c.io.pendingV) == 0 {
			break
		}
		c.yieldWrite()
	}
	c.io.pendingV = nil
	c.stopContending()
	if err == nil {
		err = c.io.err
	}
	return int64(c.io.n), err
}

// maxIOV is the most buffers one vectored write takes (Linux's IOV_MAX).
const maxIOV = 1024

// fillIOV sets iov (emptied) to describe the first limit bytes of bufs, at
// most maxIOV buffers, skipping empty ones; it returns the descriptors and
// the bytes they cover.
func fillIOV(iov []syscall.Iovec, bufs [][]byte, limit int) ([]syscall.Iovec, int) {
	iov = iov[:0]
	total := 0
	for _, b := range bufs {
		if len(iov) == maxIOV || total == limit {
			break
		}
		if len(b) > 0 {
			n := min(len(b), limit-total)
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(n)
			iov = append(iov, v)
			total += n
		}
	}
	return iov, total
}

// writableV is writeOut's RawConn.Write callback; false parks the
// goroutine until the socket can take more, true with buffers left ends
// the turn.
func (c *conn) writableV(fd uintptr) bool {
	for {
		for len(c.io.pendingV) > 0 && len(c.io.pendingV[0]) == 0 {
			c.io.pendingV = c.io.pendingV[1:]
		}
		if len(c.io.pendingV) == 0 || c.io.turn >= c.srv.wgate.turnMax() {
			return true
		}
		iov, _ := fillIOV(c.io.iov, c.io.pendingV, c.srv.wgate.callMax())
		c.io.iov = iov
		n, errno := c.io.sendV(fd, iov)
		clear(iov) // no pointers into item memory outlive the write
		if sent, done := c.afterSend(n, errno, "writev"); !sent {
			return done
		}
		for n > 0 {
			if b := c.io.pendingV[0]; n >= len(b) {
				n -= len(b)
				c.io.pendingV = c.io.pendingV[1:]
			} else {
				c.io.pendingV[0] = b[n:]
				n = 0
			}
		}
	}
}
