package server

import (
	"strconv"
	"sync/atomic"

	"github.com/gocached/gocached/protocol"
	"github.com/gocached/gocached/slab"
)

// ErrMetaDebugDisabled answers me under -X (memcached 1.6.18 still answers
// it; the issue asks gocached to refuse it with the other dumps).
const ErrMetaDebugDisabled protocol.Reply = "CLIENT_ERROR meta debug not allowed"

// execMeta answers mg, md, ma and me.
func (c *conn) execMeta() {
	atomic.AddUint64(&c.stats.cmdMeta, 1)
	var m protocol.MetaFlags
	if err := protocol.ParseMeta(&c.work.req, c.work.metaKey[:], &m); err != nil {
		c.replyError(err.(protocol.Reply))
		return
	}
	switch c.work.req.Command {
	case protocol.CmdMetaGet:
		c.metaGet(&m)
	case protocol.CmdMetaDelete:
		c.metaDelete(&m)
	case protocol.CmdMetaArith:
		c.metaArith(&m)
	case protocol.CmdMetaDebug:
		c.metaDebug(&m)
	}
}

// ttl is a meta t value: -1 for an item that never expires.
func ttl(exptime, now int64) int64 {
	if exptime == 0 {
		return -1
	}
	return exptime - now
}

func (c *conn) metaGet(m *protocol.MetaFlags) {
	now := c.srv.now()
	opt := slab.GetOptions{NoBump: m.Has('u')}
	touch := m.Has('T')
	if touch {
		opt.Touch = true
		opt.NewExptime = c.srv.absExptime(m.TTL, now)
	}
	if m.Has('N') {
		opt.Vivify = true
		opt.VivifyExptime = c.srv.absExptime(m.Vivify, now)
	}
	if m.Recache > 0 {
		if below := c.srv.absExptime(m.Recache, now) - now; below > 0 {
			opt.RecacheBelow = below
		}
	}
	it, ok := c.readValue(m.Key, &opt)
	c.srv.prefixes.record(m.Key, getOp(ok))
	c.srv.watch.fetch(c, m.Key, it.Miss, it.Size)
	// memcached counts an mg T hit as a touch (cmd_touch, touch_hits)
	// and any miss, T or not, as a get (cmd_get, get_misses).
	if touch && ok {
		atomic.AddUint64(&c.stats.cmdTouch, 1)
	} else {
		atomic.AddUint64(&c.stats.cmdGet, 1)
	}
	if !ok {
		atomic.AddUint64(&c.stats.getMisses, 1)
		if !m.Quiet {
			c.wbuf = append(c.wbuf, protocol.MetaEN...)
			c.wbuf = m.AppendStatusFlags(c.wbuf, m.Key, 0, false)
			c.wbuf = protocol.AppendMetaEnd(c.wbuf, nil, false)
		}
		return
	}
	if touch {
		atomic.AddUint64(&c.stats.touchHits, 1)
	} else {
		atomic.AddUint64(&c.stats.getHits, 1)
	}
	// C: a matching CAS withholds the value (protocol.txt).
	value := m.Has('v') && !(m.Has('C') && m.CAS == it.CAS)
	w := protocol.AppendMetaHeader(c.wbuf, protocol.MetaHD, value, it.Size)
	for _, f := range m.Order() {
		switch f {
		case 's':
			w = protocol.AppendMetaUint(w, 's', uint64(it.Size))
		case 't':
			w = protocol.AppendMetaInt(w, 't', ttl(it.Exptime, now))
		case 'c':
			w = protocol.AppendMetaUint(w, 'c', it.CAS)
		case 'f':
			w = protocol.AppendMetaUint(w, 'f', uint64(it.Flags))
		case 'l':
			w = protocol.AppendMetaInt(w, 'l', now-it.LastAccess)
		case 'h':
			h := uint64(0)
			if it.Fetched {
				h = 1
			}
			w = protocol.AppendMetaUint(w, 'h', h)
		case 'O':
			w = m.AppendOpaque(w)
		case 'k':
			w = protocol.AppendMetaKey(w, m.Key, m.Base64)
		}
	}
	if it.TokenSent {
		w = protocol.AppendMetaFlag(w, 'Z')
	}
	if it.Stale {
		w = protocol.AppendMetaFlag(w, 'X')
	}
	if it.Won {
		w = protocol.AppendMetaFlag(w, 'W')
	}
	c.wbuf = protocol.AppendMetaEnd(w, nil, false)
	if !value {
		c.dropValue()
		return
	}
	c.appendValueBody()
	c.wbuf = append(c.wbuf, "\r\n"...)
}

// execMetaSet answers ms, whose data block follows its line.
func (c *conn) execMetaSet(buf []byte, lineLen int) (int, bool) {
	var m protocol.MetaFlags
	if err := protocol.ParseMeta(&c.work.req, c.work.metaKey[:], &m); err != nil {
		c.rpos += lineLen
		if m.Size >= 0 {
			c.swallow = m.Size + 2
		}
		atomic.AddUint64(&c.stats.cmdMeta, 1)
		c.replyError(err.(protocol.Reply))
		return 0, true
	}
	if c.itemTooLarge(len(m.Key), m.Size) {
		c.rpos += lineLen
		atomic.AddUint64(&c.stats.cmdMeta, 1)
		atomic.AddUint64(&c.stats.storeTooLarge, 1)
		// Stale data must not outlive a failed store (memcached unlinks it
		// whatever the mode).
		c.srv.store.Unlink(m.Key)
		c.refuseAfterValue(m.Size+2, protocol.ErrTooLarge, c.work.req.NoReply)
		return 0, true
	}
	data, dn, err := protocol.ParseData(buf[lineLen:], m.Size)
	if err == protocol.ErrIncomplete {
		if c.datagram || lineLen+m.Size+2 <= initialBufSize {
			return lineLen + m.Size + 2, false
		}
		// Too large for the read buffer: read it into its item (values.go).
		atomic.AddUint64(&c.stats.cmdMeta, 1)
		opt := c.metaSetOptions(&m)
		c.reserveValue(valueMeta, buf, lineLen, m.Key, m.Size, &opt, c.work.req.NoReply)
		if !c.reserving() {
			c.srv.store.Unlink(m.Key) // as above, whatever the mode
		}
		return 0, true
	}
	c.logCommand(buf[:lineLen])
	c.rpos += lineLen + dn
	c.lastCmd.Store(c.srv.now())
	atomic.AddUint64(&c.stats.cmdMeta, 1)
	c.storeMeta(&m, data, err != nil)
	return 0, true
}

// finishMetaSet executes the ms command whose line is line and whose value
// has been read into the connection's reservation; bad: the value did not
// end with "\r\n".
func (c *conn) finishMetaSet(line []byte, bad bool) {
	var m protocol.MetaFlags
	r := &c.work.req
	if n, err := protocol.ParseLine(line, r, maxGetLine); err != nil || n != len(line) ||
		protocol.ParseMeta(r, c.work.metaKey[:], &m) != nil {
		c.work.res.Abort() // cannot happen: the line parsed before
		return
	}
	c.storeMeta(&m, nil, bad)
}

// metaSetOptions returns the store options of the ms command m.
func (c *conn) metaSetOptions(m *protocol.MetaFlags) slab.SetOptions {
	now := c.srv.now()
	opt := slab.SetOptions{
		Mode:       slab.ModeSet,
		Flags:      m.Flags,
		Exptime:    c.srv.absExptime(m.TTL, now),
		CAS:        m.CAS,
		Invalidate: m.Has('I'),
	}
	switch m.Mode {
	case 'E':
		opt.Mode = slab.ModeAdd
	case 'A':
		opt.Mode = slab.ModeAppend
	case 'P':
		opt.Mode = slab.ModePrepend
	case 'R':
		opt.Mode = slab.ModeReplace
	}
	if m.Has('C') && (opt.Mode == slab.ModeSet || opt.Mode == slab.ModeReplace) {
		// memcached turns set and replace with any C, C0 included, into
		// a compare-and-swap: C0 never matches (EX, or NF on a miss).
		opt.Mode = slab.ModeCAS
	}
	if m.Has('N') {
		opt.Vivify = true
		opt.VivifyExptime = c.srv.absExptime(m.Vivify, now)
	}
	return opt
}

// storeMeta executes the ms command m whose value is data, or the
// connection's reservation; bad: the value did not end with "\r\n".
func (c *conn) storeMeta(m *protocol.MetaFlags, data []byte, bad bool) {
	if bad {
		atomic.AddUint64(&c.stats.cmdSet, 1)
		c.srv.store.CountSet(m.Key, m.Size, m.Flags) // memcached counts it in its class too
		c.replyError(protocol.ErrBadDataChunk)
		return
	}
	opt := c.metaSetOptions(m)
	c.srv.watch.peek(c, m.Key)
	res, cas := c.storeValue(m.Key, data, &opt)
	countSetCmd(c.stats, res)
	c.srv.watch.store(c, m.Key, res, &opt, m.Size)
	c.srv.prefixes.record(m.Key, prefixSet)
	var code string
	switch res {
	case slab.Stored:
		if m.Quiet {
			return
		}
		code = protocol.MetaHD
	case slab.NotStored:
		code = protocol.MetaNS
	case slab.Exists:
		code = protocol.MetaEX
	case slab.NotFound:
		code = protocol.MetaNF
	case slab.TooLarge:
		atomic.AddUint64(&c.stats.storeTooLarge, 1)
		c.replyError(protocol.ErrTooLarge)
		return
	default:
		atomic.AddUint64(&c.stats.storeNoMemory, 1)
		c.replyError(protocol.ErrOutOfMemory)
		return
	}
	w := append(c.wbuf, code...)
	for _, f := range m.Order() {
		switch f {
		case 'O':
			w = m.AppendOpaque(w)
		case 'k':
			w = protocol.AppendMetaKey(w, m.Key, m.Base64)
		case 'c':
			w = protocol.AppendMetaUint(w, 'c', cas)
		case 's':
			// protocol.txt: the size of the stored item (the new size
			// after an append); memcached 1.6.18 ignores s.
			if res == slab.Stored {
				size := m.Size
				if opt.Mode == slab.ModeAppend || opt.Mode == slab.ModePrepend {
					size = c.itemSize(m.Key, size)
				}
				w = protocol.AppendMetaUint(w, 's', uint64(size))
			}
		}
	}
	c.wbuf = protocol.AppendMetaEnd(w, nil, false)
	return
}

// itemSize looks up the value size of key without bumping it; def if the
// item is gone.
func (c *conn) itemSize(key []byte, def int) int {
	it, ok := c.readValue(key, &slab.GetOptions{Peek: true})
	c.dropValue()
	if !ok {
		return def
	}
	return it.Size
}

func (c *conn) metaDelete(m *protocol.MetaFlags) {
	now := c.srv.now()
	var stale int64
	if m.Has('I') && m.Has('T') {
		stale = c.srv.absExptime(m.TTL, now)
	}
	var res slab.Result
	c.srv.watch.peek(c, m.Key)
	if m.Has('x') {
		res = c.metaDropValue(m, stale)
	} else {
		if m.Has('C') {
			res = c.srv.store.DeleteCAS(m.Key, m.CAS, m.Has('I'), stale) // C0 too
		} else {
			res = c.srv.store.Delete(m.Key, 0, m.Has('I'), stale)
		}
		c.srv.prefixes.record(m.Key, prefixDelete)
	}
	var code string
	switch res {
	case slab.Deleted:
		if m.Quiet {
			return
		}
		code = protocol.MetaHD
	case slab.Exists:
		c.srv.store.CountDeleteMiss(m.Key) // as memcached's md, unlike binary delete
		code = protocol.MetaEX
	default:
		code = protocol.MetaNF
	}
	c.wbuf = append(c.wbuf, code...)
	c.wbuf = m.AppendStatusFlags(c.wbuf, m.Key, 0, false)
	c.wbuf = protocol.AppendMetaEnd(c.wbuf, nil, false)
}

// metaDropValue is md x (protocol.txt; not in memcached 1.6.18): the value
// is replaced by an empty one, keeping flags and TTL, then marked stale
// with I. The store has no atomic form, so the swap is CAS-guarded.
func (c *conn) metaDropValue(m *protocol.MetaFlags, stale int64) slab.Result {
	var it slab.Item
	var ok bool
	c.work.scratch, it, ok = c.srv.store.Get(c.work.scratch[:0], m.Key, &slab.GetOptions{Peek: true})
	if !ok {
		return slab.NotFound
	}
	if m.Has('C') && m.CAS != it.CAS { // C0 too; it.CAS is 0 under -C, as memcached's
		return slab.Exists
	}
	opt := slab.SetOptions{Mode: slab.ModeCAS, Flags: it.Flags, Exptime: it.Exptime, CAS: it.CAS}
	if c.srv.cfg.Store.DisableCAS {
		opt.Mode = slab.ModeReplace
	}
	switch res, _ := c.srv.store.Set(m.Key, nil, &opt); res {
	case slab.Stored:
	case slab.Exists:
		return slab.Exists
	default:
		return slab.NotFound
	}
	if m.Has('I') {
		c.srv.store.Delete(m.Key, 0, true, stale)
	}
	return slab.Deleted
}

func (c *conn) metaArith(m *protocol.MetaFlags) {
	now := c.srv.now()
	incr := m.Mode != 'D' && m.Mode != '-'
	opt := slab.ArithOptions{CAS: m.CAS}
	if m.Has('N') {
		opt.Vivify = true
		opt.Initial = m.Initial
		opt.Exptime = c.srv.absExptime(m.Vivify, now)
	}
	if m.Has('T') {
		opt.Touch = true
		opt.NewExptime = c.srv.absExptime(m.TTL, now)
	}
	c.srv.watch.peek(c, m.Key)
	// memcached answers a counter created by N even under q; the store does
	// not say whether it created one, so look first when it matters.
	existed := true
	if m.Quiet && opt.Vivify {
		var ok bool
		c.work.scratch, _, ok = c.srv.store.Get(c.work.scratch[:0], m.Key, &slab.GetOptions{Peek: true})
		existed = ok
	}
	v, cas, res := c.srv.store.Arith(m.Key, incr, m.Delta, &opt)
	var code string
	switch res {
	case slab.Stored:
		if m.Quiet && existed {
			return
		}
	case slab.NotFound:
		code = protocol.MetaNF
	case slab.Exists:
		code = protocol.MetaEX
	case slab.NonNumeric:
		c.replyError(protocol.ErrNonNumeric)
		return
	case slab.OutOfMemory:
		atomic.AddUint64(&c.stats.storeNoMemory, 1)
		c.replyError(protocol.ErrOutOfMemory)
		return
	default:
		code = protocol.MetaNS
	}
	if code != "" {
		c.wbuf = append(c.wbuf, code...)
		c.wbuf = m.AppendStatusFlags(c.wbuf, m.Key, 0, false)
		c.wbuf = protocol.AppendMetaEnd(c.wbuf, nil, false)
		return
	}
	var num [20]byte
	val := strconv.AppendUint(num[:0], v, 10)
	value := m.Has('v')
	w := protocol.AppendMetaHeader(c.wbuf, protocol.MetaHD, value, len(val))
	for _, f := range m.Order() {
		switch f {
		case 't':
			exp := opt.NewExptime
			if !opt.Touch {
				var it slab.Item
				c.work.scratch, it, _ = c.srv.store.Get(c.work.scratch[:0], m.Key, &slab.GetOptions{Peek: true})
				exp = it.Exptime
			}
			w = protocol.AppendMetaInt(w, 't', ttl(exp, now))
		case 'c':
			w = protocol.AppendMetaUint(w, 'c', cas)
		case 'O':
			w = m.AppendOpaque(w)
		case 'k':
			w = protocol.AppendMetaKey(w, m.Key, m.Base64)
		}
	}
	c.wbuf = protocol.AppendMetaEnd(w, val, value)
}

// metaDebug answers me with memcached's fields: exp, la, cas, fetch, cls
// and size computed as memcached's ITEM_ntotal.
func (c *conn) metaDebug(m *protocol.MetaFlags) {
	if c.srv.cfg.DisableDumping {
		c.replyError(ErrMetaDebugDisabled)
		return
	}
	now := c.srv.now()
	var it slab.Item
	var ok bool
	c.work.scratch, it, ok = c.srv.store.Get(c.work.scratch[:0], m.Key, &slab.GetOptions{Peek: true})
	if !ok {
		c.wbuf = append(c.wbuf, "EN\r\n"...)
		return
	}
	size := 48 + len(m.Key) + 1 + it.Size + 2
	if !c.srv.cfg.Store.DisableCAS {
		size += 8
	}
	if it.Flags != 0 {
		size += 4
	}
	cls := 0
	for i, cs := range c.srv.store.ClassSizes() {
		if cs >= size {
			cls = i + 1
			break
		}
	}
	w := append(c.wbuf, "ME "...)
	if m.Base64 {
		w = protocol.AppendBase64(w, m.Key)
	} else {
		w = append(w, m.Key...)
	}
	// memcached 1.6.18 prints current_time - exptime: the seconds since
	// expiry, negative while the item lives.
	exp := int64(-1)
	if it.Exptime != 0 {
		exp = now - it.Exptime
	}
	w = append(w, " exp="...)
	w = strconv.AppendInt(w, exp, 10)
	w = append(w, " la="...)
	w = strconv.AppendInt(w, now-it.LastAccess, 10)
	w = append(w, " cas="...)
	w = strconv.AppendUint(w, it.CAS, 10)
	if it.Fetched {
		w = append(w, " fetch=yes"...)
	} else {
		w = append(w, " fetch=no"...)
	}
	w = append(w, " cls="...)
	w = strconv.AppendInt(w, int64(cls), 10)
	w = append(w, " size="...)
	w = strconv.AppendInt(w, int64(size), 10)
	c.wbuf = append(w, "\r\n"...)
}
