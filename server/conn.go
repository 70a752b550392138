package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"math"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gocached/gocached/protocol"
	"github.com/gocached/gocached/slab"
)

const (
	// initialBufSize is a new connection's read and write buffer size:
	// enough for a pipeline of small requests, cheap for 10K idle clients.
	initialBufSize = 4 << 10
	// flushThreshold makes a long pipeline of replies go out in chunks
	// rather than growing the write buffer without bound (values.go has
	// the bound on referenced item memory).
	flushThreshold = 64 << 10
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
	line    []byte                      // command line of a value being read into its item (values.go)
	res     slab.Reservation            // the item that value is being read into
	scratch []byte                      // value copies for retrievals
	binReq  protocol.BinRequest         // the binary request being served (binary.go)
	binGat  slab.GetOptions             // a binary GAT's options
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
	srv    *Server
	gateCh chan struct{} // woken by the write gate (writegate.go), made at the first wait
	nc     net.Conn
	id     uint64 // accept order, for "stats conns"

	rbuf  []byte // read buffer; rbuf[rpos:rend] is unparsed input
	rpos  int
	rend  int
	wbuf  []byte  // replies not yet written
	rpool *[]byte // bufPool's buffer while rbuf is it
	wpool *[]byte // bufPool's buffer while wbuf is it

	io          rawIO     // socket reads and writes without the net.Conn wrappers (connio.go)
	parking     connPark  // giving the goroutine back while idle (park.go)
	swallow     int       // input bytes still to discard (payload of a refused set)
	bigBuf      int       // size of rbuf while charged to srv.bigBufs, else 0
	wbufCharged int       // bytes of wbuf's growth charged to srv.bigBufs
	work        *connWork // request state, pooled with the buffers while idle
	closing     bool      // close after writing the pending replies
	proto       wireProtocol
	lastCmd     atomic.Int64
	stats       *connStats  // nil while parked: folded into the server's retired total (retireStats)
	shutdown    atomic.Bool // set by wake: finish in-flight replies and close
	bin         binConn     // binary request and SASL state (binary.go)
	auth        asciiAuth   // -Y authentication state (asciiauth.go)
	watcher     *watcher    // set by the watch command (watch.go)

	// Values between sockets and item memory (values.go).
	datagram     bool           // UDP: replies are built in wbuf alone, values never reserved
	copyLimit    int            // longest value copied into replies (copyValueMax; UDP: all)
	swallowReply protocol.Reply // error to answer once the swallowed value is read
	pin          slab.Pin       // item of the value readValue left in item memory
	spans        [][]byte       // that value's spans of item memory
	out          net.Buffers    // pending replies that reference item memory: wbuf pieces and value spans
	outMark      int            // wbuf[:outMark] is in out
	outPinned    int            // bytes of item memory in out
	outPins      []slab.Pin     // the items referenced by out
	valueKind    uint8          // the command reading into work.res (valueText, valueMeta), else valueNone
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	c := &conn{srv: s, nc: nc, id: id, stats: statsPool.Get().(*connStats)}
	_, c.datagram = nc.(*udpNetConn)
	c.copyLimit = copyValueMax
	if c.datagram {
		c.copyLimit = math.MaxInt
	}
	c.io.init(c)
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
		if cap(c.work.scratch) > initialBufSize {
			c.work.scratch = nil
		}
		workPool.Put(c.work)
		c.work = nil
	}
}

// wake interrupts a blocked read so the connection notices shutdown, and
// gives a parked connection a goroutine to close with.
func (c *conn) wake() {
	c.shutdown.Store(true)
	_ = c.nc.SetReadDeadline(time.Now())
	c.srv.resume(c)
}

func (c *conn) release() {
	c.releaseValues()
	c.releaseBuffers()
}

// serve serves the connection until it closes (false) or parks (true: its
// goroutine is given back, park.go; the idle set calls serve again).
func (c *conn) serve() (parked bool) {
	defer func() {
		// A bug must cost one connection, not the cache: log it, as
		// net/http does, and keep serving the others.
		if v := recover(); v != nil {
			c.srv.log.Error("panic serving connection", zap.Any("panic", v),
				zap.Stringer("client", c.nc.RemoteAddr()), zap.Stack("stack"))
			parked = false
		}
		if parked {
			return
		}
		c.srv.idle.remove(c)
		c.srv.watch.connClose(c)
		c.nc.Close()
		c.release()
	}()
	idle := c.srv.cfg.IdleTimeout
	if c.parking.started {
		c.srv.takeStats(c)
		c.resumed()
		if !c.closing && !c.shutdown.Load() && !c.attach() {
			return false
		}
	} else {
		c.parking.started = true
		c.srv.watch.connNew(c)
		if tc, ok := c.nc.(*tls.Conn); ok {
			if idle > 0 {
				_ = c.nc.SetReadDeadline(time.Now().Add(idle))
			}
			if !c.tlsHandshake(tc) {
				return false
			}
		}
	}
	for !c.closing {
		if c.shutdown.Load() {
			return false
		}
		if idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		var n int
		var err error
		if c.reserving() && c.directValueRead() {
			// A value being read straight into its item (values.go); n
			// bytes that followed it are in the read buffer.
			n, err = c.readIntoValue()
		} else {
			if c.rbuf != nil && c.rend == len(c.rbuf) && !c.makeRoom(0) {
				c.flush()
				return false
			}
			n, err = c.read()
			if n > 0 {
				atomic.AddUint64(&c.stats.bytesRead, uint64(n))
				c.rend += n
			}
		}
		if n > 0 || c.valueDone() {
			c.process()
			if c.watcher == nil && !c.flush() {
				return false
			}
		}
		switch c.io.served { // requests the read served itself (serveInline)
		case inlineClose:
			return false
		case inlineWatch:
			c.io.served = inlineGoOn
		}
		if c.watcher != nil { // the watch command: stream logs instead
			c.parking.noPark.Store(true)
			c.serveWatch()
			return false
		}
		if err != nil {
			if goOn, parked := c.readFailed(err, idle); !goOn {
				return parked
			}
		}
	}
	return false
}

// readFailed handles a read's error: goOn says serving carries on;
// otherwise serve returns parked (its goroutine was given back, park.go)
// or closes the connection.
func (c *conn) readFailed(err error, idle time.Duration) (goOn, parked bool) {
	if err == errParkNow {
		parked = c.park()
		return !parked, parked
	}
	if c.parking.askPark.Load() {
		parked, retry := c.answerPark(err, idle)
		if parked {
			return false, true
		}
		if retry {
			return true, false
		}
	}
	if c.retryRead(err, idle) {
		return true, false
	}
	c.countIdleKick(err, idle)
	return false, false
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
	if len(c.out) > 0 {
		n, err := c.writeVectored()
		atomic.AddUint64(&c.stats.bytesWritten, uint64(n))
		c.resetWbuf()
		return err == nil
	}
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
	n, err := c.write(c.wbuf)
	atomic.AddUint64(&c.stats.bytesWritten, uint64(n))
	c.srv.bigBufs.release(c.wbufCharged)
	c.wbufCharged = 0
	c.resetWbuf()
	return err == nil && !refused
}

// resetWbuf empties the written write buffer, dropping it for the pooled
// one when it grew.
func (c *conn) resetWbuf() {
	if c.wpool != nil && cap(c.wbuf) != cap(*c.wpool) {
		c.wbuf = *c.wpool
	}
	c.wbuf = c.wbuf[:0]
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
	if c.swallow == 0 && c.swallowReply != "" {
		c.wbuf = protocol.AppendLine(c.wbuf, string(c.swallowReply))
		c.swallowReply = ""
	}
	return true
}

// process executes every complete request in the read buffer, appending
// replies to the write buffer.
func (c *conn) process() {
	defer c.shrink()
	reqs := 0
	for (c.rpos < c.rend || c.valueDone()) && !c.closing {
		if c.swallowInput() {
			continue
		}
		if c.reserving() {
			if !c.continueValue() {
				break
			}
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
		if c.repliesFull() {
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
