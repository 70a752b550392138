package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gocached/gocached/protocol"
)

const (
	// initialBufSize is a new connection's read and write buffer size:
	// enough for a pipeline of small requests, cheap for 10K idle clients.
	initialBufSize = 4 << 10
	// flushThreshold makes a long pipeline of replies go out in chunks
	// rather than growing the write buffer without bound.
	flushThreshold = 256 << 10
	// maxGetLine bounds a multiget line, which memcached lets grow past
	// protocol.MaxLineLength.
	maxGetLine = 1 << 20
	// binaryRequestMagic starts every binary-protocol request; memcached
	// picks the protocol per request from it.
	binaryRequestMagic = 0x80
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, initialBufSize); return &b }}

// connWork is a connection's request state, needed only while it has
// input: pooled with the buffers, it takes about 1 KB off each idle
// connection.
type connWork struct {
	req     protocol.Request
	metaKey [protocol.MaxKeyLength]byte // decoded base64 key of a meta command
}

var workPool = sync.Pool{New: func() any { return new(connWork) }}

// wireProtocol is the protocol a connection speaks, fixed by its first byte.
type wireProtocol uint8

const (
	protoUnknown wireProtocol = iota
	protoText
	protoBinary
)

// pickProtocol chooses a connection's protocol from its first byte as
// memcached does: with -B auto a binary request magic selects binary for
// the life of the connection; -B ascii or binary force one.
func (s *Server) pickProtocol(first byte) wireProtocol {
	if s.cfg.SASL { // memcached binds binary with -S: text is refused (binary.go)
		return protoBinary
	}
	if s.cfg.AuthFile != "" { // and text with -Y (asciiauth.go)
		return protoText
	}
	switch s.cfg.Protocol {
	case "ascii":
		return protoText
	case "binary":
		return protoBinary
	}
	if first == binaryRequestMagic {
		return protoBinary
	}
	return protoText
}

// conn is one client connection, served by one goroutine.
type conn struct {
	srv *Server
	nc  net.Conn
	id  uint64 // accept order, for "stats conns"

	rbuf  []byte // read buffer; rbuf[rpos:rend] is unparsed input
	rpos  int
	rend  int
	wbuf  []byte  // replies not yet written
	rpool *[]byte // bufPool's buffer while rbuf is it
	wpool *[]byte // bufPool's buffer while wbuf is it

	// raw lets an idle connection wait for input without holding buffers
	// (nil for TLS, which must read through its own buffer).
	raw         syscall.RawConn
	waited      bool
	readable    func(uintptr) bool // c.onReadable, bound once
	swallow     int                // input bytes still to discard (payload of a refused set)
	bigBuf      int                // size of rbuf while charged to srv.bigBufs, else 0
	wbufCharged int                // bytes of wbuf's growth charged to srv.bigBufs
	scratch     []byte             // value copies for retrievals
	work        *connWork          // request state, pooled with the buffers while idle
	closing     bool               // close after writing the pending replies
	proto       wireProtocol
	lastCmd     atomic.Int64
	stats       connStats
	shutdown    atomic.Bool // set by wake: finish in-flight replies and close
	bin         binConn     // binary request and SASL state (binary.go)
	auth        asciiAuth   // -Y authentication state (asciiauth.go)
	watcher     *watcher    // set by the watch command (watch.go)
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	c := &conn{srv: s, nc: nc, id: id}
	if sc, ok := nc.(syscall.Conn); ok && canPeek {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.readable = c.onReadable
		}
	}
	c.acquireBuffers()
	c.lastCmd.Store(s.now())
	return c
}

// acquireBuffers gives the connection pooled read and write buffers.
func (c *conn) acquireBuffers() {
	if c.work == nil {
		c.work = workPool.Get().(*connWork)
	}
	if c.rbuf == nil {
		c.rpool = bufPool.Get().(*[]byte)
		c.rbuf = *c.rpool
	}
	if c.wbuf == nil {
		c.wpool = bufPool.Get().(*[]byte)
		c.wbuf = (*c.wpool)[:0]
	}
}

// releaseBuffers returns the buffers to the pools (or to the garbage
// collector, when grown); the connection holds none while it waits idle.
// The read buffer must be drained.
func (c *conn) releaseBuffers() {
	if c.rpool != nil {
		bufPool.Put(c.rpool)
		c.rpool = nil
	}
	if c.wpool != nil {
		bufPool.Put(c.wpool)
		c.wpool = nil
	}
	c.releaseBigBuf()
	c.rbuf, c.wbuf = nil, nil
	c.rpos, c.rend = 0, 0
	if c.work != nil {
		workPool.Put(c.work)
		c.work = nil
	}
	if cap(c.scratch) > initialBufSize {
		c.scratch = nil
	}
}

// onReadable is the RawConn.Read callback of waitReadable. RawConn.Read
// forgets readiness the poller saw before it, so the first call peeks at
// the socket itself: input already there returns at once; otherwise false
// parks the goroutine until the poller sees new input.
func (c *conn) onReadable(fd uintptr) bool {
	if !c.waited {
		c.waited = true
		return hasInput(fd)
	}
	return true
}

// waitReadable blocks until the connection has input (or its read deadline
// passes), holding no buffer meanwhile: 10K idle clients cost their
// goroutines and little else.
func (c *conn) waitReadable() error {
	c.waited = false
	return c.raw.Read(c.readable)
}

// wake interrupts a blocked read so the connection notices shutdown.
func (c *conn) wake() {
	c.shutdown.Store(true)
	_ = c.nc.SetReadDeadline(time.Now())
}

func (c *conn) release() { c.releaseBuffers() }

func (c *conn) serve() {
	defer func() {
		// A bug must cost one connection, not the cache: log it, as
		// net/http does, and keep serving the others.
		if v := recover(); v != nil {
			c.srv.log.Error("panic serving connection", zap.Any("panic", v),
				zap.Stringer("client", c.nc.RemoteAddr()), zap.Stack("stack"))
		}
		c.srv.watch.connClose(c)
		c.nc.Close()
		c.release()
	}()
	c.srv.watch.connNew(c)
	idle := c.srv.cfg.IdleTimeout
	if tc, ok := c.nc.(*tls.Conn); ok {
		if idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		if !c.tlsHandshake(tc) {
			return
		}
	}
	for !c.closing {
		if c.shutdown.Load() {
			return
		}
		if idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		if c.rpos == c.rend && c.raw != nil {
			c.releaseBuffers()
			if err := c.waitReadable(); err != nil {
				if c.retryRead(err, idle) {
					continue
				}
				c.countIdleKick(err, idle)
				return
			}
			c.acquireBuffers()
		}
		if c.rend == len(c.rbuf) && !c.makeRoom(0) {
			c.flush()
			return
		}
		n, err := c.nc.Read(c.rbuf[c.rend:])
		if n > 0 {
			atomic.AddUint64(&c.stats.bytesRead, uint64(n))
			c.rend += n
			c.process()
			if c.watcher != nil { // the watch command: stream logs instead
				c.serveWatch()
				return
			}
			if !c.flush() {
				return
			}
		}
		if err != nil && !c.retryRead(err, idle) {
			c.countIdleKick(err, idle)
			return
		}
	}
}

// countIdleKick counts a close for the idle timeout (idle_kicks): a read
// deadline passed with no shutdown under way.
func (c *conn) countIdleKick(err error, idle time.Duration) {
	var ne net.Error
	if idle > 0 && errors.As(err, &ne) && ne.Timeout() && !c.shutdown.Load() {
		atomic.AddUint64(&c.stats.idleKicks, 1)
	}
}

// retryRead reports whether a read error is the wake-up of a deadline that
// is neither the idle timeout nor shutdown, so serving goes on.
func (c *conn) retryRead(err error, idle time.Duration) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !c.shutdown.Load() && idle == 0
}

// flush writes every pending reply in one write; false if the peer is gone
// or the replies did not fit the connection-buffer budget.
//
// A write buffer grown past its pooled size is charged to the budget that
// read buffers share (memcached's read_buf_mem_limit) while the write is in
// flight: clients that request large values and never read the replies
// cannot make the server hold more than the budget. Over budget, the
// replies give way to memcached's error and the connection closes.
func (c *conn) flush() bool {
	if len(c.wbuf) == 0 {
		return true
	}
	refused := false
	if grown := cap(c.wbuf) - initialBufSize; grown > 0 {
		if c.srv.bigBufs.reserve(grown) {
			c.wbufCharged = grown
		} else {
			c.wbuf = append(c.wbuf[:0], "SERVER_ERROR out of memory writing get response\r\n"...)
			c.closing, refused = true, true
			atomic.AddUint64(&c.stats.responseObjOOM, 1)
		}
	}
	if c.srv.verbosity.Load() > 1 {
		c.debugf(">", zap.Stringer("client", c.nc.RemoteAddr()), zap.ByteString("replies", c.wbuf[:min(len(c.wbuf), 1024)]))
	}
	n, err := c.nc.Write(c.wbuf)
	atomic.AddUint64(&c.stats.bytesWritten, uint64(n))
	c.srv.bigBufs.release(c.wbufCharged)
	c.wbufCharged = 0
	if c.wpool != nil && cap(c.wbuf) != cap(*c.wpool) {
		// Grown past the pooled buffer: drop the big one, keep the pooled.
		c.wbuf = *c.wpool
	}
	c.wbuf = c.wbuf[:0]
	return err == nil && !refused
}

// makeRoom ensures the read buffer can take more input: it moves unparsed
// bytes to the front, grows the buffer to need (the size of the request
// being assembled, 0 if unknown) and doubles it when it is still full. It
// returns false, having queued memcached's error, when growing would take
// the server's large read buffers past their budget: however many clients
// send large requests at once, their buffers stay bounded.
func (c *conn) makeRoom(need int) bool {
	if c.rpos > 0 {
		copy(c.rbuf, c.rbuf[c.rpos:c.rend])
		c.rpos, c.rend = 0, c.rend-c.rpos
	}
	size := len(c.rbuf)
	if need > size {
		size = need
	}
	if c.rend == size {
		size *= 2
	}
	if size == len(c.rbuf) {
		return true
	}
	if !c.srv.bigBufs.reserve(size - c.bigBuf) {
		c.wbuf = append(c.wbuf, "SERVER_ERROR out of memory reading request\r\n"...)
		c.closing = true
		atomic.AddUint64(&c.stats.readBufOOM, 1)
		return false
	}
	c.bigBuf = size
	nb := make([]byte, size)
	copy(nb, c.rbuf[:c.rend])
	if c.rpool != nil {
		bufPool.Put(c.rpool)
		c.rpool = nil
	}
	c.rbuf = nb
	return true
}

// shrink returns an oversized read buffer once it is drained, so a client
// that once sent a large value does not keep it.
func (c *conn) shrink() {
	if c.rpos == c.rend && c.bigBuf > 64<<10 {
		c.releaseBigBuf()
		c.rbuf = nil
		c.acquireBuffers()
		c.rpos, c.rend = 0, 0
	}
}

func (c *conn) releaseBigBuf() {
	c.srv.bigBufs.release(c.bigBuf)
	c.bigBuf = 0
}

// bufBudget bounds the bytes held by grown read and write buffers across
// all connections (memcached's read_buf_mem_limit).
type bufBudget struct {
	used  atomic.Int64
	limit int64
}

func (b *bufBudget) reserve(n int) bool {
	if b.used.Add(int64(n)) > b.limit && n > 0 {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

func (b *bufBudget) release(n int) { b.used.Add(-int64(n)) }

// swallowInput discards what has arrived of a refused value (c.swallow)
// and reports whether there was any to discard.
func (c *conn) swallowInput() bool {
	if c.swallow == 0 {
		return false
	}
	n := min(c.swallow, c.rend-c.rpos)
	c.swallow -= n
	c.rpos += n
	return true
}

// process executes every complete request in the read buffer, appending
// replies to the write buffer.
func (c *conn) process() {
	defer c.shrink()
	reqs := 0
	for c.rpos < c.rend && !c.closing {
		if c.swallowInput() {
			continue
		}
		buf := c.rbuf[c.rpos:c.rend]
		if c.proto == protoUnknown {
			c.proto = c.srv.pickProtocol(buf[0])
		}
		var need int
		var ok bool
		if c.proto == protoBinary {
			need, ok = c.execBinary(buf)
		} else {
			need, ok = c.execText(buf)
		}
		if !ok {
			if c.rend == len(c.rbuf) || need > len(c.rbuf)-c.rpos {
				c.makeRoom(need)
			}
			return
		}
		if reqs++; reqs == c.srv.cfg.ReqsPerEvent {
			reqs = 0
			c.yield()
		}
		if len(c.wbuf) > flushThreshold {
			if !c.flush() {
				c.closing = true
				return
			}
		}
	}
	if c.rpos == c.rend {
		c.rpos, c.rend = 0, 0
	}
}

// yield lets other connections run after -R requests of one pipeline, as
// memcached's reqs_per_event: the goroutine gives up its processor, so a
// client sending a huge pipeline does not hold a CPU (-t) while others
// wait. Unlike memcached it does not write the replies so far: a write
// every 20 requests costs deep pipelines half as much CPU again per
// request; they go out at flushThreshold or when the input is drained.
func (c *conn) yield() {
	atomic.AddUint64(&c.stats.connYields, 1)
	runtime.Gosched()
}

// reply appends a reply line unless the request asked for silence.
func (c *conn) reply(b []byte) {
	if !c.work.req.NoReply {
		c.wbuf = append(c.wbuf, b...)
	}
}

func (c *conn) replyError(e protocol.Reply) {
	if !c.work.req.NoReply {
		c.wbuf = protocol.AppendLine(c.wbuf, string(e))
	}
}

func (c *conn) debugf(msg string, fields ...zap.Field) {
	c.srv.log.Debug(msg, fields...)
}

// logCommand logs a complete request line at -vv, as memcached prints
// "<fd command".
func (c *conn) logCommand(line []byte) {
	if c.srv.verbosity.Load() > 1 {
		c.debugf("<", zap.Stringer("client", c.nc.RemoteAddr()), zap.ByteString("command", bytes.TrimRight(line, "\r\n")))
	}
}
