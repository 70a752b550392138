package server

import (
	"bytes"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/gocached/gocached/protocol"
	"github.com/gocached/gocached/server/auth"
	"github.com/gocached/gocached/slab"
)

// binConn is a connection's binary-protocol and SASL state.
type binConn struct {
	authenticated bool // a SASL auth succeeded (-S)
	saslStarted   bool // PLAIN auth began without its message: a step must follow
	// sent is how much of c.wbuf a noop has flushed, as far as a client
	// can tell: memcached writes its replies when it has parsed all the
	// input it read, or at a noop, and drops the others when it closes on
	// a bad magic.
	sent int
}

// saslExempt lists the opcodes memcached serves before authentication.
func saslExempt(op uint8) bool {
	switch op {
	case protocol.OpSASLListMechs, protocol.OpSASLAuth, protocol.OpSASLStep, protocol.OpVersion:
		return true
	}
	return false
}

// execBinary parses and executes one binary-protocol request at the start
// of buf. Like execText it returns false when buf holds no complete
// request, with need the total size the request will take. It follows
// memcached's proto_bin.c: header, extras and key are read first; a value
// too large for -I is refused and swallowed, never buffered.
func (c *conn) execBinary(buf []byte) (need int, complete bool) {
	r := &c.work.binReq
	if len(c.wbuf) < c.bin.sent {
		c.bin.sent = 0 // written since the noop
	}
	need, err := protocol.ParseBinRequest(buf, r)
	switch err {
	case nil:
	case protocol.ErrIncomplete:
		return need, false
	case protocol.ErrBinLengths:
		c.binError(protocol.StatusUnknownCommand)
		c.closing = true
		return 0, true
	default:
		// Bad magic: memcached closes without a word, and without the
		// replies to the requests it read with this one (but those before
		// a noop).
		c.wbuf = c.wbuf[:c.bin.sent]
		c.closing = true
		return 0, true
	}
	if c.srv.verbosity.Load() > 1 {
		c.debugf("< binary", zap.Uint8("opcode", r.Opcode), zap.ByteString("key", r.Key))
	}
	if c.srv.cfg.SASL && !c.bin.authenticated && !saslExempt(r.Opcode) {
		c.binError(protocol.StatusAuthError)
		c.closing = true
		return 0, true
	}
	switch r.Validate() {
	case protocol.StatusInvalid:
		c.binError(protocol.StatusInvalid)
		c.closing = true
		return 0, true
	case protocol.StatusUnknownCommand:
		// memcached swallows the whole body length after having consumed
		// extras and key already; a client that sends an unknown command
		// with a key or extras loses as many bytes of what follows.
		c.rpos += r.KeyEnd()
		c.swallow = int(r.BodyLen)
		c.binError(protocol.StatusUnknownCommand)
		return 0, true
	}

	switch r.Command {
	case protocol.OpSet, protocol.OpAdd, protocol.OpReplace, protocol.OpAppend, protocol.OpPrepend:
		if c.itemTooLarge(int(r.KeyLen), r.ValueLen) {
			c.refuseValue(protocol.StatusTooLarge)
			atomic.AddUint64(&c.stats.storeTooLarge, 1)
			if r.Command == protocol.OpSet {
				// Stale data must not outlive a failed overwrite.
				c.srv.store.Unlink(r.Key)
			}
			return 0, true
		}
		if len(buf) < r.Len() {
			if c.datagram || r.Len() <= initialBufSize {
				return r.Len(), false
			}
			// Too large for the read buffer: read it into its item
			// (values.go), the header, extras and key kept to be parsed
			// again when the value is complete.
			opt := c.binStoreOptions()
			c.reserveValue(valueBinary, buf, r.KeyEnd(), r.Key, r.ValueLen, &opt, r.Quiet)
			return 0, true
		}
		c.consume(r.Len())
		c.binStore(buf[r.KeyEnd():r.Len()])
		return 0, true
	case protocol.OpSASLAuth, protocol.OpSASLStep:
		switch {
		case !c.srv.cfg.SASL:
			c.refuseValue(protocol.StatusUnknownCommand)
			return 0, true
		case r.KeyLen > protocol.MaxSASLMechLen:
			c.refuseValue(protocol.StatusInvalid)
			return 0, true
		case c.itemTooLarge(int(r.KeyLen), r.ValueLen):
			c.refuseValue(protocol.StatusOutOfMemory)
			return 0, true
		}
		if len(buf) < r.Len() {
			return r.Len(), false
		}
		c.consume(r.Len())
		c.binSASLAuth(buf[r.KeyEnd():r.Len()])
		return 0, true
	}

	// Every other command ends with its key. A body longer than that
	// (allowed only for stat) is read as the next request, as memcached.
	c.consume(r.KeyEnd())
	switch r.Command {
	case protocol.OpGet, protocol.OpGetK, protocol.OpTouch, protocol.OpGAT, protocol.OpGATK:
		c.binGet()
	case protocol.OpDelete:
		c.binDelete()
	case protocol.OpIncrement, protocol.OpDecrement:
		c.binArith()
	case protocol.OpQuit:
		c.binOK(0)
		c.closing = true
	case protocol.OpFlush:
		c.binFlush()
	case protocol.OpNoop:
		c.binOK(0)
		c.bin.sent = len(c.wbuf)
	case protocol.OpVersion:
		c.wbuf = protocol.AppendBinString(c.wbuf, r.Opcode, protocol.StatusOK, r.Opaque, Version)
	case protocol.OpStat:
		c.binStat()
	case protocol.OpSASLListMechs:
		if !c.srv.cfg.SASL {
			c.binError(protocol.StatusUnknownCommand)
			break
		}
		c.bin.authenticated = false
		c.wbuf = protocol.AppendBinString(c.wbuf, r.Opcode, protocol.StatusOK, r.Opaque, auth.Mechanisms)
	}
	return 0, true
}

// consume marks n bytes of input as read by a command.
func (c *conn) consume(n int) {
	c.rpos += n
	c.lastCmd.Store(c.srv.now())
}

// refuseValue answers status to a command whose value is not read, and
// swallows the value.
func (c *conn) refuseValue(status protocol.BinStatus) {
	r := &c.work.binReq
	c.consume(r.KeyEnd())
	c.swallow = r.ValueLen
	c.binError(status)
}

// binError appends an error reply. Errors are sent even for quiet
// commands, as in memcached.
func (c *conn) binError(status protocol.BinStatus) {
	r := &c.work.binReq
	c.wbuf = protocol.AppendBinError(c.wbuf, r.Opcode, status, r.Opaque)
}

// binOK appends an empty success reply unless the command is quiet.
func (c *conn) binOK(cas uint64) {
	r := &c.work.binReq
	if !r.Quiet {
		c.wbuf = protocol.AppendBinHeader(c.wbuf, r.Opcode, protocol.StatusOK, 0, 0, 0, r.Opaque, cas)
	}
}

func (c *conn) binGet() {
	r := &c.work.binReq
	touch := r.Command == protocol.OpTouch || r.Command == protocol.OpGAT || r.Command == protocol.OpGATK
	withKey := r.Command == protocol.OpGetK || r.Command == protocol.OpGATK
	var opt *slab.GetOptions
	if touch {
		c.work.binGat = slab.GetOptions{Touch: true, NewExptime: c.srv.absExptime(int64(r.ExptimeExtras()), c.srv.now())}
		opt = &c.work.binGat
	}
	it, ok := c.readValue(r.Key, opt)
	c.srv.prefixes.record(r.Key, getOp(ok))
	c.srv.watch.fetch(c, r.Key, it.Miss, it.Size)
	switch {
	case touch:
		atomic.AddUint64(&c.stats.cmdTouch, 1)
		if ok {
			atomic.AddUint64(&c.stats.touchHits, 1)
		} else {
			atomic.AddUint64(&c.stats.touchMisses, 1)
		}
	default:
		atomic.AddUint64(&c.stats.cmdGet, 1)
		if ok {
			atomic.AddUint64(&c.stats.getHits, 1)
		} else {
			atomic.AddUint64(&c.stats.getMisses, 1)
		}
	}
	var key []byte
	if withKey {
		key = r.Key
	}
	switch {
	case ok && r.Command == protocol.OpTouch: // no value in the reply
		c.dropValue()
		c.wbuf = protocol.AppendBinValueHeader(c.wbuf, r.Opcode, r.Opaque, it.CAS, it.Flags, key, 0)
	case ok:
		// Hits are sent even for the quiet variants; a long value from
		// item memory, as text replies (values.go).
		c.wbuf = protocol.AppendBinValueHeader(c.wbuf, r.Opcode, r.Opaque, it.CAS, it.Flags, key, it.Size)
		c.appendValueBody()
	case r.Quiet:
	case withKey:
		c.wbuf = protocol.AppendBinHeader(c.wbuf, r.Opcode, protocol.StatusKeyNotFound, 0, len(key), len(key), r.Opaque, 0)
		c.wbuf = append(c.wbuf, key...)
	default:
		c.binError(protocol.StatusKeyNotFound)
	}
	if cap(c.work.scratch) > 64<<10 {
		c.work.scratch = nil
	}
}

// binStore runs set, add, replace, append and prepend with value, or
// the value read into the connection's reservation (value nil).
func (c *conn) binStore(value []byte) {
	r := &c.work.binReq
	opt := c.binStoreOptions()
	c.srv.watch.peek(c, r.Key)
	res, cas := c.storeValue(r.Key, value, &opt)
	countSetCmd(c.stats, res)
	c.srv.watch.store(c, r.Key, res, &opt, r.ValueLen)
	c.srv.prefixes.record(r.Key, prefixSet)
	switch res {
	case slab.Stored:
		c.binOK(cas)
	case slab.Exists:
		c.binError(protocol.StatusKeyExists)
	case slab.NotFound:
		c.binError(protocol.StatusKeyNotFound)
	case slab.NotStored:
		switch opt.Mode {
		case slab.ModeAdd:
			c.binError(protocol.StatusKeyExists)
		case slab.ModeReplace:
			c.binError(protocol.StatusKeyNotFound)
		default:
			c.binError(protocol.StatusNotStored)
		}
	case slab.TooLarge:
		atomic.AddUint64(&c.stats.storeTooLarge, 1)
		c.binError(protocol.StatusTooLarge)
	default:
		atomic.AddUint64(&c.stats.storeNoMemory, 1)
		c.binError(protocol.StatusOutOfMemory)
	}
}

// binStoreOptions returns the store options of the binary storage request
// in c.work.binReq.
func (c *conn) binStoreOptions() slab.SetOptions {
	r := &c.work.binReq
	// With -C memcached keeps no CAS to compare: the request's is ignored.
	opt := slab.SetOptions{CAS: r.CAS}
	if c.srv.cfg.Store.DisableCAS {
		opt.CAS = 0
	}
	switch r.Command {
	case protocol.OpSet:
		opt.Mode = slab.ModeSet
	case protocol.OpAdd:
		opt.Mode = slab.ModeAdd
	case protocol.OpReplace:
		opt.Mode = slab.ModeReplace
	case protocol.OpAppend:
		opt.Mode = slab.ModeAppend
	case protocol.OpPrepend:
		opt.Mode = slab.ModePrepend
	}
	if r.Command == protocol.OpSet || r.Command == protocol.OpAdd || r.Command == protocol.OpReplace {
		flags, exp := r.SetExtras()
		opt.Flags = flags
		opt.Exptime = c.srv.absExptime(int64(exp), c.srv.now())
		if opt.CAS != 0 {
			// memcached turns any binary set, add or replace with a CAS
			// into a CAS command.
			opt.Mode = slab.ModeCAS
		}
	}
	return opt
}

func (c *conn) binDelete() {
	r := &c.work.binReq
	c.srv.prefixes.record(r.Key, prefixDelete)
	c.srv.watch.peek(c, r.Key)
	switch c.srv.store.Delete(r.Key, r.CAS, false, 0) {
	case slab.Deleted:
		c.binOK(0)
	case slab.Exists:
		c.binError(protocol.StatusKeyExists)
	default:
		c.binError(protocol.StatusKeyNotFound)
	}
}

func (c *conn) binArith() {
	r := &c.work.binReq
	delta, initial, exp := r.ArithExtras()
	opt := slab.ArithOptions{CAS: r.CAS}
	if exp != protocol.NoInitialExptime {
		opt.Vivify = true
		opt.Initial = initial
		opt.Exptime = c.srv.absExptime(int64(exp), c.srv.now())
	}
	c.srv.watch.peek(c, r.Key)
	v, cas, res := c.srv.store.Arith(r.Key, r.Command == protocol.OpIncrement, delta, &opt)
	switch res {
	case slab.Stored:
		if !r.Quiet {
			c.wbuf = protocol.AppendBinCounter(c.wbuf, r.Opcode, r.Opaque, cas, v)
		}
	case slab.NotFound:
		c.binError(protocol.StatusKeyNotFound)
	case slab.Exists:
		c.binError(protocol.StatusKeyExists)
	case slab.NonNumeric:
		c.binError(protocol.StatusDeltaBadValue)
	default:
		atomic.AddUint64(&c.stats.storeNoMemory, 1)
		c.binError(protocol.StatusOutOfMemory)
	}
}

func (c *conn) binFlush() {
	r := &c.work.binReq
	if c.srv.cfg.DisableFlushAll {
		// memcached -F answers flush with an auth error.
		c.binError(protocol.StatusAuthError)
		return
	}
	atomic.AddUint64(&c.stats.cmdFlush, 1)
	c.srv.flushAll(int64(r.ExptimeExtras()))
	c.binOK(0)
}

// binStat answers a stat request. The stats are those of the text
// protocol's "stats <group>", converted to one packet per stat and ended
// by an empty packet. Like memcached, "reset", "settings" and "detail"
// match as prefixes and the other groups exactly; unknown groups (and
// "conns", which memcached serves only in text) answer "Not found".
func (c *conn) binStat() {
	r := &c.work.binReq
	s := c.srv
	key := r.Key
	text := c.work.scratch[:0]
	switch {
	case len(key) == 0:
		text = s.appendGeneralStats(text)
	case bytes.HasPrefix(key, []byte("reset")):
		s.resetStats()
	case bytes.HasPrefix(key, []byte("settings")):
		text = s.appendSettings(text)
	case bytes.HasPrefix(key, []byte("detail")):
		switch sub := key[len("detail"):]; {
		case bytes.HasPrefix(sub, []byte(" dump")):
			// No prefix statistics are kept: memcached's dump of none.
			c.wbuf = protocol.AppendBinStat(c.wbuf, r.Opaque, []byte("detailed"), []byte("END\r\n"))
		case bytes.HasPrefix(sub, []byte(" on")), bytes.HasPrefix(sub, []byte(" off")):
		default:
			c.binError(protocol.StatusKeyNotFound)
			return
		}
	case string(key) == "items":
		text = s.appendItems(text)
	case string(key) == "slabs":
		text = s.appendSlabs(text)
	case string(key) == "sizes":
		text = s.appendSizes(text)
	case string(key) == "sizes_enable", string(key) == "sizes_disable":
		// As in text, memcached sends no terminating packet after these.
		text = s.switchSizes(text, string(key) == "sizes_enable")
		c.wbuf = protocol.AppendBinStatsFromText(c.wbuf, r.Opaque, text)
		c.work.scratch = text[:0]
		return
	default:
		c.binError(protocol.StatusKeyNotFound)
		return
	}
	c.wbuf = protocol.AppendBinStatsFromText(c.wbuf, r.Opaque, text)
	c.wbuf = protocol.AppendBinStat(c.wbuf, r.Opaque, nil, nil)
	c.work.scratch = text[:0]
	if cap(c.work.scratch) > 64<<10 {
		c.work.scratch = nil
	}
}

// binSASLAuth runs SASL auth and step with PLAIN, as memcached with
// cyrus-sasl: any auth first drops the connection's authentication; PLAIN
// with its message authenticates or fails at once; PLAIN without it
// answers "continue" and takes the message in a step. Completed attempts
// count in auth_cmds, failed ones also in auth_errors.
func (c *conn) binSASLAuth(data []byte) {
	r := &c.work.binReq
	c.bin.authenticated = false
	var ok bool
	switch {
	case r.Command == protocol.OpSASLAuth && string(r.Key) == auth.MechPlain && len(data) == 0:
		c.bin.saslStarted = true
		c.wbuf = protocol.AppendBinHeader(c.wbuf, r.Opcode, protocol.StatusAuthContinue, 0, 0, 0, r.Opaque, 0)
		return
	case r.Command == protocol.OpSASLAuth:
		ok = string(r.Key) == auth.MechPlain && auth.CheckPlain(auth.PasswordDBPath(c.srv.cfg.Extended), data)
	default: // step
		ok = c.bin.saslStarted && auth.CheckPlain(auth.PasswordDBPath(c.srv.cfg.Extended), data)
	}
	c.bin.saslStarted = false
	atomic.AddUint64(&c.stats.authCmds, 1)
	if !ok {
		atomic.AddUint64(&c.stats.authErrors, 1)
		c.binError(protocol.StatusAuthError)
		return
	}
	c.bin.authenticated = true
	c.wbuf = protocol.AppendBinString(c.wbuf, r.Opcode, protocol.StatusOK, r.Opaque, "Authenticated")
}
