package server

import (
	"bytes"
	"strconv"
	"sync/atomic"

	"github.com/gocached/gocached/protocol"
	"github.com/gocached/gocached/slab"
)

// execText parses and executes one text request at the start of buf. It
// returns false when buf holds no complete request, with need the total size
// the request will take (0 if unknown yet).
func (c *conn) execText(buf []byte) (need int, complete bool) {
	if !c.auth.ok && c.srv.cfg.AuthFile != "" {
		return c.execASCIIAuth(buf)
	}
	r := &c.work.req
	n, err := protocol.ParseLine(buf, r, maxGetLine)
	switch {
	case err == protocol.ErrIncomplete:
		return 0, false
	case err == protocol.ErrLineTooLong:
		c.closing = true
		return 0, true
	case err == protocol.ErrHTTPRequest:
		c.closing = true // no reply, as memcached
		return 0, true
	case err != nil:
		c.rpos += n
		c.swallow = r.Swallow
		if e, ok := err.(protocol.Reply); ok {
			c.replyError(e)
		}
		return 0, true
	}
	switch r.Command {
	case protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace, protocol.CmdAppend,
		protocol.CmdPrepend, protocol.CmdCas:
		return c.execStorage(buf, n)
	case protocol.CmdMetaSet:
		return c.execMetaSet(buf, n)
	case protocol.CmdConfig:
		return c.execConfig(buf, n) // clustercfg.go
	}
	c.logCommand(buf[:n])
	c.rpos += n
	c.lastCmd.Store(c.srv.now())
	switch r.Command {
	case protocol.CmdGet, protocol.CmdGets, protocol.CmdGat, protocol.CmdGats:
		c.execRetrieval()
	case protocol.CmdDelete:
		c.execDelete()
	case protocol.CmdIncr, protocol.CmdDecr:
		c.execArith()
	case protocol.CmdTouch:
		c.execTouch()
	case protocol.CmdFlushAll:
		c.execFlushAll()
	case protocol.CmdVersion:
		c.wbuf = append(c.wbuf, "VERSION "+Version+"\r\n"...)
	case protocol.CmdQuit:
		c.closing = true
	case protocol.CmdVerbosity:
		c.execVerbosity()
	case protocol.CmdShutdown:
		c.execShutdown()
	case protocol.CmdStats:
		c.execStats()
	case protocol.CmdCacheMemlimit:
		c.execCacheMemlimit()
	case protocol.CmdMetaNoop:
		c.wbuf = append(c.wbuf, protocol.ReplyMetaNoop...)
	case protocol.CmdMetaGet, protocol.CmdMetaDelete, protocol.CmdMetaArith, protocol.CmdMetaDebug:
		c.execMeta()
	case protocol.CmdRefreshCerts:
		c.execRefreshCerts()
	default:
		c.execAdmin()
	}
	return 0, true
}

var modes = [...]slab.Mode{
	protocol.CmdSet:     slab.ModeSet,
	protocol.CmdAdd:     slab.ModeAdd,
	protocol.CmdReplace: slab.ModeReplace,
	protocol.CmdAppend:  slab.ModeAppend,
	protocol.CmdPrepend: slab.ModePrepend,
	protocol.CmdCas:     slab.ModeCAS,
}

// itemTooLarge applies memcached's item_size_ok: its 48-byte header, 8
// bytes of CAS, the key with its terminator and the value with "\r\n" must
// fit in -I.
func (c *conn) itemTooLarge(keyLen, valueLen int) bool {
	total := 48 + keyLen + 1 + valueLen + 2
	if !c.srv.cfg.Store.DisableCAS {
		total += 8
	}
	return total > c.srv.cfg.Store.MaxItemSize
}

// countSetCmd counts a storage command in cmd_set unless its result says
// that memcached would have failed to allocate its item (too large, out
// of memory), which memcached counts nowhere. A malformed data block
// ("bad data chunk") counts: memcached had allocated the item.
func countSetCmd(st *connStats, res slab.Result) {
	if res != slab.TooLarge && res != slab.OutOfMemory {
		atomic.AddUint64(&st.cmdSet, 1)
	}
}

func (c *conn) execStorage(buf []byte, lineLen int) (int, bool) {
	r := &c.work.req
	if c.itemTooLarge(len(r.Key), r.Bytes) {
		c.rpos += lineLen
		atomic.AddUint64(&c.stats.storeTooLarge, 1)
		if r.Command == protocol.CmdSet {
			// Stale data must not outlive a failed overwrite.
			c.srv.store.Unlink(r.Key)
		}
		c.refuseAfterValue(r.Bytes+2, protocol.ErrTooLarge, r.NoReply)
		return 0, true
	}
	data, dn, err := protocol.ParseData(buf[lineLen:], r.Bytes)
	if err == protocol.ErrIncomplete {
		if c.datagram || lineLen+r.Bytes+2 <= initialBufSize {
			return lineLen + r.Bytes + 2, false
		}
		// Too large for the read buffer: read it into its item (values.go).
		opt := c.storageOptions()
		c.reserveValue(valueText, buf, lineLen, r.Key, r.Bytes, &opt, r.NoReply)
		return 0, true
	}
	c.logCommand(buf[:lineLen])
	c.rpos += lineLen + dn
	c.lastCmd.Store(c.srv.now())
	c.finishStorage(data, err != nil)
	return 0, true
}

// storageOptions returns the store options of the text storage command
// in c.work.req.
func (c *conn) storageOptions() slab.SetOptions {
	r := &c.work.req
	return slab.SetOptions{
		Mode:    modes[r.Command],
		Flags:   r.Flags,
		Exptime: c.srv.absExptime(r.Exptime, c.srv.now()),
		CAS:     r.CAS,
	}
}

// finishStorage executes the text storage command in c.work.req whose
// value is data, or the connection's reservation; bad: the value did not
// end with "\r\n".
func (c *conn) finishStorage(data []byte, bad bool) {
	r := &c.work.req
	c.srv.prefixes.record(r.Key, prefixSet)
	if bad {
		atomic.AddUint64(&c.stats.cmdSet, 1)
		c.srv.store.CountSet(r.Key, r.Bytes, r.Flags) // memcached counts it in its class too
		c.replyError(protocol.ErrBadDataChunk)
		return
	}
	opt := c.storageOptions()
	c.srv.watch.peek(c, r.Key)
	res, _ := c.storeValue(r.Key, data, &opt)
	countSetCmd(c.stats, res)
	c.srv.watch.store(c, r.Key, res, &opt, r.Bytes)
	switch res {
	case slab.Stored:
		c.reply(protocol.ReplyStored)
	case slab.NotStored:
		c.reply(protocol.ReplyNotStored)
	case slab.Exists:
		c.reply(protocol.ReplyExists)
	case slab.NotFound:
		c.reply(protocol.ReplyNotFound)
	case slab.TooLarge:
		atomic.AddUint64(&c.stats.storeTooLarge, 1)
		c.replyError(protocol.ErrTooLarge)
	default:
		atomic.AddUint64(&c.stats.storeNoMemory, 1)
		c.replyError(protocol.ErrOutOfMemory)
	}
}

func (c *conn) execRetrieval() {
	r := &c.work.req
	withCAS := r.Command == protocol.CmdGets || r.Command == protocol.CmdGats
	var opt *slab.GetOptions
	var gat slab.GetOptions
	if r.Command == protocol.CmdGat || r.Command == protocol.CmdGats {
		gat = slab.GetOptions{Touch: true, NewExptime: c.srv.absExptime(r.Exptime, c.srv.now())}
		opt = &gat
	}
	var hits uint64
	var discovery *clusterConfig // "get AmazonElastiCache:cluster" (clustercfg.go)
	if r.Command == protocol.CmdGet {
		discovery = c.srv.discovery.cur.Load()
	}
	for _, key := range r.Keys {
		// Replies that fill up are written before the next key's, not
		// after the last one's: a large value and END go in one write.
		if c.repliesFull() && !c.flush() {
			c.closing = true
			return // the peer is gone, or the reply was refused: no END
		}
		if discovery != nil && string(key) == elastiCacheKey {
			hits++
			c.wbuf = appendClusterConfig(c.wbuf, "VALUE "+elastiCacheKey, discovery)
			continue
		}
		it, ok := c.readValue(key, opt)
		c.srv.prefixes.record(key, getOp(ok))
		c.srv.watch.fetch(c, key, it.Miss, it.Size)
		if !ok {
			continue
		}
		hits++
		c.wbuf = protocol.AppendValueHeader(c.wbuf, key, it.Flags, it.Size, it.CAS, withCAS)
		c.appendValueBody()
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	c.wbuf = append(c.wbuf, protocol.ReplyEnd...)
	// memcached counts gat/gats keys as touches only.
	if opt != nil {
		atomic.AddUint64(&c.stats.cmdTouch, uint64(len(r.Keys)))
		atomic.AddUint64(&c.stats.touchHits, hits)
		atomic.AddUint64(&c.stats.touchMisses, uint64(len(r.Keys))-hits)
	} else {
		atomic.AddUint64(&c.stats.cmdGet, uint64(len(r.Keys)))
		atomic.AddUint64(&c.stats.getHits, hits)
		atomic.AddUint64(&c.stats.getMisses, uint64(len(r.Keys))-hits)
	}
	if cap(c.work.scratch) > 64<<10 {
		c.work.scratch = nil
	}
}

func (c *conn) execDelete() {
	c.srv.prefixes.record(c.work.req.Key, prefixDelete)
	c.srv.watch.peek(c, c.work.req.Key)
	switch c.srv.store.Delete(c.work.req.Key, 0, false, 0) {
	case slab.Deleted:
		c.reply(protocol.ReplyDeleted)
	default:
		c.reply(protocol.ReplyNotFound)
	}
}

func (c *conn) execArith() {
	r := &c.work.req
	c.srv.watch.peek(c, r.Key)
	v, _, res := c.srv.store.Arith(r.Key, r.Command == protocol.CmdIncr, r.Delta, nil)
	switch res {
	case slab.Stored:
		if !r.NoReply {
			c.wbuf = protocol.AppendUint(c.wbuf, v)
		}
	case slab.NotFound:
		c.reply(protocol.ReplyNotFound)
	case slab.NonNumeric:
		c.replyError(protocol.ErrNonNumeric)
	default:
		atomic.AddUint64(&c.stats.storeNoMemory, 1)
		c.replyError(protocol.ErrOutOfMemory)
	}
}

func (c *conn) execTouch() {
	atomic.AddUint64(&c.stats.cmdTouch, 1)
	exp := c.srv.absExptime(c.work.req.Exptime, c.srv.now())
	c.srv.watch.peek(c, c.work.req.Key)
	if c.srv.store.Touch(c.work.req.Key, exp) == slab.Touched {
		atomic.AddUint64(&c.stats.touchHits, 1)
		c.reply(protocol.ReplyTouched)
		return
	}
	atomic.AddUint64(&c.stats.touchMisses, 1)
	c.reply(protocol.ReplyNotFound)
}

func (c *conn) execFlushAll() {
	r := &c.work.req
	if c.srv.cfg.DisableFlushAll {
		c.replyError("CLIENT_ERROR flush_all not allowed")
		return
	}
	var delay int64
	// As memcached: unless the line is "flush_all [noreply]", the first
	// argument is the delay ("flush_all noreply 5" is a bad exptime).
	if len(r.Args) != boolInt(r.NoReply) {
		var ok bool
		if delay, ok = protocol.ParseInt32(r.Args[0]); !ok {
			c.replyError(protocol.ErrBadExptime)
			return
		}
	}
	atomic.AddUint64(&c.stats.cmdFlush, 1)
	c.srv.flushAll(delay)
	c.reply(protocol.ReplyOK)
}

// flushAll invalidates every item, at once or after delay (an exptime:
// relative seconds or a Unix time). memcached flushes the items last
// written at or before the second before the deadline, so "flush_all 1"
// acts at once.
func (s *Server) flushAll(delay int64) {
	at := s.clock.Now()
	if delay > 0 {
		at = s.store.SecondStart(s.absExptime(delay, s.now()) - 1)
	}
	s.store.FlushAll(at)
}

func (c *conn) execVerbosity() {
	r := &c.work.req
	level, ok := protocol.ParseUint32(r.Args[0])
	if !ok {
		c.replyError(protocol.ErrBadFormat)
		return
	}
	c.srv.verbosity.Store(int32(min(level, 3)))
	c.reply(protocol.ReplyOK)
}

func (c *conn) execShutdown() {
	if !c.srv.cfg.EnableShutdown {
		c.replyError("ERROR: shutdown not enabled")
		return
	}
	if len(c.work.req.Args) > 0 && !bytes.Equal(c.work.req.Args[0], []byte("graceful")) {
		c.replyError(protocol.ErrUnknownCommand)
		return
	}
	c.srv.log.Info("shutdown command received")
	c.closing = true
	go c.srv.beginShutdown()
}

func (c *conn) execCacheMemlimit() {
	mb, ok := protocol.ParseUint32(c.work.req.Args[0])
	switch {
	case !ok:
		c.replyError(protocol.ErrUnknownCommand)
	case mb < 8:
		c.replyError("MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m")
	case mb > 1000000000:
		c.replyError("MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes")
	default:
		c.srv.store.SetMemoryLimit(int64(mb) << 20)
		c.reply(protocol.ReplyOK)
	}
}

// appendStatUint appends "STAT name value" with an integer value.
func appendStatUint(dst []byte, name string, v uint64) []byte {
	dst = append(dst, "STAT "...)
	dst = append(dst, name...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, v, 10)
	return append(dst, "\r\n"...)
}

// boolInt is 1 for true, 0 for false.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
