package server

import (
	"sync/atomic"

	"github.com/gocached/gocached/protocol"
	"github.com/gocached/gocached/slab"
)

// Values travel between sockets and item memory without heap copies, as
// in memcached:
//
//   - Replies. A retrieved value longer than copyValueMax is not copied: the
//     reply references the item's memory (slab.Store.Read pins the item),
//     and flush writes the header buffer and the value spans together with
//     one vectored write (net.Buffers, writev), then unpins. Shorter values
//     are copied into the header buffer, which is cheaper than a pin and
//     an extra iovec.
//   - Backpressure. Replies are written synchronously once they pass
//     flushThreshold bytes of copies or pinnedFlushThreshold bytes of
//     referenced item memory; a client that does not read blocks its own
//     connection there, which then parses nothing more and holds its pins,
//     never copies. Pins only keep chunks from being reused: they are
//     memory inside -m, shown by "stats" as pinned_items and pinned_bytes.
//   - Storage. A storage command whose value does not fit the read buffer
//     reserves its item in the store (inside -m) when its line is parsed;
//     the value is read from the socket straight into the item's memory and
//     the item is linked when the value and its "\r\n" are complete
//     (slab.Reservation). A connection that dies meanwhile frees it.
const (
	// copyValueMax is the longest value copied into a reply rather than
	// written from item memory, when it fits the write buffer's free
	// space; values up to copyAlwaysMax are copied even if the buffer must
	// grow. Measured with BenchmarkReplyCopyOrPin (10 gets a batch,
	// loopback): at 512 B a copy takes 17 µs a batch against 26 µs for
	// pins, at 1 KB and beyond pins win (31 µs against 104 µs, which
	// includes growing the write buffer past its pooled 4 KB each batch).
	copyValueMax  = 2 << 10
	copyAlwaysMax = 512
	// pinnedFlushThreshold bounds the item memory a connection's pending
	// replies reference before they are written.
	pinnedFlushThreshold = 256 << 10
	// directReadMin is the least value still to come that is read straight
	// into item memory; a shorter tail is read into the read buffer with
	// whatever follows it, saving a read.
	directReadMin = 2 << 10
)

// Kinds of storage command whose value is being read into a reservation.
const (
	valueNone uint8 = iota
	valueText
	valueMeta
	valueBinary
)

// readValue looks key up for a reply: a short value is copied into
// c.work.scratch, a longer one left in item memory (c.spans, pinned in c.pin)
// until appendValueBody or dropValue.
func (c *conn) readValue(key []byte, opt *slab.GetOptions) (slab.Item, bool) {
	limit := c.copyLimit
	if limit == copyValueMax {
		// Copy what fits the buffer (less room for the reply's line), and
		// small values whatever the buffer.
		limit = max(copyAlwaysMax, min(limit, cap(c.wbuf)-len(c.wbuf)-2*protocol.MaxKeyLength))
	}
	var it slab.Item
	var ok bool
	c.work.scratch, c.spans, it, c.pin, ok = c.srv.store.Read(c.work.scratch[:0], c.spans[:0], key, opt, limit)
	return it, ok
}

// appendValueBody appends the value readValue found to the replies.
func (c *conn) appendValueBody() {
	if c.pin == (slab.Pin{}) {
		c.wbuf = append(c.wbuf, c.work.scratch...)
		return
	}
	c.cutReplies()
	for _, sp := range c.spans {
		c.out = append(c.out, sp)
		c.outPinned += len(sp)
	}
	c.outPins = append(c.outPins, c.pin)
	c.pin = slab.Pin{}
	clear(c.spans)
}

// dropValue releases the value readValue found when the reply does not
// carry it.
func (c *conn) dropValue() {
	if c.pin != (slab.Pin{}) {
		c.srv.store.Unpin(c.pin)
		c.pin = slab.Pin{}
		clear(c.spans)
	}
}

// cutReplies ends the reply bytes appended to wbuf since the last cut as a
// piece of c.out, so that item memory can follow them.
func (c *conn) cutReplies() {
	if len(c.wbuf) > c.outMark {
		c.out = append(c.out, c.wbuf[c.outMark:len(c.wbuf):len(c.wbuf)])
		c.outMark = len(c.wbuf)
	}
}

// repliesFull reports whether the pending replies should be written before
// more requests are parsed.
func (c *conn) repliesFull() bool {
	return len(c.wbuf) > flushThreshold || c.outPinned > pinnedFlushThreshold
}

// writeVectored writes the pending replies that reference item memory with
// one vectored write, then unpins their items.
func (c *conn) writeVectored() (int64, error) {
	c.cutReplies()
	n, err := c.writeOut()
	clear(c.out)
	c.out = c.out[:0]
	c.outMark, c.outPinned = 0, 0
	c.unpinReplies()
	return n, err
}

// unpinReplies releases the pins of the pending replies (written, or the
// connection closing).
func (c *conn) unpinReplies() {
	for _, p := range c.outPins {
		c.srv.store.Unpin(p)
	}
	clear(c.outPins)
	c.outPins = c.outPins[:0]
	c.dropValue()
}

// reserveValue starts reading the value of a storage command straight into
// item memory: buf[:lineLen] is the command line (kept to be parsed again
// when the value is complete), key, vlen and opt describe the item. When
// the store cannot hold the item, the value is swallowed and the error
// answered as memcached does (refuseReservation).
func (c *conn) reserveValue(kind uint8, buf []byte, lineLen int, key []byte, vlen int, opt *slab.SetOptions, noReply bool) {
	binary := kind == valueBinary
	if !binary { // binary requests were logged when parsed
		c.logCommand(buf[:lineLen])
	}
	c.lastCmd.Store(c.srv.now())
	if res := c.srv.store.Reserve(&c.work.res, key, vlen, opt); res != slab.Stored {
		c.refuseReservation(binary, res, lineLen, vlen, noReply)
		return
	}
	c.rpos += lineLen
	c.work.line = append(c.work.line[:0], buf[:lineLen]...)
	c.valueKind = kind
	c.rpos += c.work.res.Write(c.rbuf[c.rpos:c.rend])
}

// refuseReservation answers a value the store cannot hold (res: too large
// or out of memory) as memcached does: a binary one at once, the value
// then swallowed (refuseValue); a text or meta one once its line and value
// have been read and discarded.
func (c *conn) refuseReservation(binary bool, res slab.Result, lineLen, vlen int, noReply bool) {
	tooLarge := res == slab.TooLarge
	if tooLarge {
		atomic.AddUint64(&c.stats.storeTooLarge, 1)
	} else {
		atomic.AddUint64(&c.stats.storeNoMemory, 1)
	}
	switch {
	case binary && tooLarge:
		c.refuseValue(protocol.StatusTooLarge)
	case binary:
		c.refuseValue(protocol.StatusOutOfMemory)
	case tooLarge:
		c.rpos += lineLen
		c.refuseAfterValue(vlen+2, protocol.ErrTooLarge, noReply)
	default:
		c.rpos += lineLen
		c.refuseAfterValue(vlen+2, protocol.ErrOutOfMemory, noReply)
	}
}

// refuseAfterValue swallows n bytes of input and then answers e (unless
// noReply): memcached answers a refused value only once it has read it.
// UDP answers at once (its replies go with the datagram).
func (c *conn) refuseAfterValue(n int, e protocol.Reply, noReply bool) {
	c.swallow = n
	if noReply {
		return
	}
	if c.datagram {
		c.wbuf = protocol.AppendLine(c.wbuf, string(e))
		return
	}
	c.swallowReply = e
}

// directValueRead reports whether the value being read into the
// reservation should take the socket's next bytes straight into item
// memory: nothing is buffered and at least directReadMin bytes are to
// come. A shorter tail is read into the read buffer with whatever follows
// it, saving a read.
func (c *conn) directValueRead() bool {
	return c.rpos == c.rend && c.work.res.Remaining() >= directReadMin
}

// readIntoValue reads input straight into the reservation's item memory
// (at most the value's remaining bytes), through the connection's raw
// socket reads (connio.go) where it has them. When the span it reads into
// ends the value, the same read goes on into the read buffer, so the
// value's "\r\n" and the next request come with it: a set whose value
// arrives whole costs two reads (its line, then the rest), not three.
// tail is how many bytes went into the read buffer; process them next.
// (Read's callback does the same itself while it serves inline.)
func (c *conn) readIntoValue() (tail int, err error) {
	span, intoBuf := c.valueSpan()
	c.io.dstTail = intoBuf
	n, err := c.readTo(span)
	if intoBuf {
		tail, c.io.dstTail = c.io.nTail, false
	}
	c.valueRead(n, tail)
	return tail, err
}

// valueDone reports whether the value being read into its item is
// complete, so the storage command can be executed (continueValue) even
// with no input buffered: a binary value has no "\r\n" after it.
func (c *conn) valueDone() bool { return c.reserving() && c.work.res.Remaining() == 0 }

// valueNext reports whether the connection's next read goes straight into
// the item of the value it is reading (directValueRead).
func (c *conn) valueNext() bool { return c.reserving() && c.directValueRead() }

// valueSpan returns the item memory the value's next bytes go to, up to
// the value's end; intoBuf says it ends the value and the read may go on
// into the read buffer.
func (c *conn) valueSpan() (span []byte, intoBuf bool) {
	span = c.work.res.Next()
	last := len(span) >= c.work.res.Remaining()
	span = span[:min(len(span), c.work.res.Remaining())]
	return span, last && c.io.raw != nil && c.rbuf != nil && c.rend < len(c.rbuf)
}

// valueRead records a read of n bytes into the value's span and tail
// more into the read buffer.
func (c *conn) valueRead(n, tail int) {
	c.rend += tail
	if n+tail > 0 {
		atomic.AddUint64(&c.stats.bytesRead, uint64(n+tail))
		c.work.res.Fill(n)
	}
}

// continueValue moves buffered input into the reservation and, once the
// value and its "\r\n" are there, executes the storage command. It
// reports false when more input is needed.
func (c *conn) continueValue() bool {
	c.rpos += c.work.res.Write(c.rbuf[c.rpos:c.rend])
	if c.work.res.Remaining() > 0 {
		return false
	}
	kind := c.valueKind
	if kind == valueBinary { // no "\r\n" after a binary value
		c.valueKind = valueNone
		r := &c.work.binReq
		if _, err := protocol.ParseBinRequest(c.work.line, r); err != nil || r.Validate() != protocol.StatusOK {
			c.work.res.Abort() // cannot happen: the request parsed before
			return true
		}
		c.binStore(nil)
		return true
	}
	if c.rend-c.rpos < 2 {
		return false
	}
	bad := c.rbuf[c.rpos] != '\r' || c.rbuf[c.rpos+1] != '\n'
	c.rpos += 2
	c.valueKind = valueNone
	if bad {
		c.work.res.Abort()
	}
	line := c.work.line
	switch kind {
	case valueText:
		r := &c.work.req
		if n, err := protocol.ParseLine(line, r, maxGetLine); err != nil || n != len(line) {
			c.work.res.Abort() // cannot happen: the line parsed before
			return true
		}
		c.finishStorage(nil, bad)
	case valueMeta:
		c.finishMetaSet(line, bad)
	}
	return true
}

// storeValue stores key's value: data, or the value read into the
// connection's reservation.
func (c *conn) storeValue(key, data []byte, opt *slab.SetOptions) (slab.Result, uint64) {
	if c.reserving() {
		return c.work.res.Commit()
	}
	return c.srv.store.Set(key, data, opt)
}

// holdsValues reports whether the connection is in the middle of moving a
// value: reading one into its reservation, holding pins, or holding
// replies not yet written. Such a connection keeps its buffers and its
// goroutine (connio.go, park.go) until it is done.
func (c *conn) holdsValues() bool {
	return c.reserving() || len(c.wbuf) > 0 || len(c.out) > 0 || len(c.outPins) > 0 || c.pin != (slab.Pin{})
}

// reserving reports whether a value is being read into its item; the
// connection then keeps its request state (c.work) while it waits.
func (c *conn) reserving() bool { return c.work != nil && c.work.res.Active() }

// releaseValues frees what a closing connection holds of item memory.
func (c *conn) releaseValues() {
	if c.work != nil {
		c.work.res.Abort()
	}
	c.valueKind = valueNone
	c.unpinReplies()
	clear(c.out)
	c.out = c.out[:0]
	c.outMark, c.outPinned = 0, 0
}

// appendValueStats appends gocached's own value-path stats to "stats go":
// the items pinned by replies being written (value_pinned_items) and their
// bytes (value_pinned_bytes, inside -m).
func (s *Server) appendValueStats(b []byte) []byte {
	items, bytes := s.store.PinStats()
	b = appendStatUint(b, "value_pinned_items", uint64(items))
	return appendStatUint(b, "value_pinned_bytes", uint64(bytes))
}
