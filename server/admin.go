package server

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"

	"github.com/gocached/gocached/protocol"
	"github.com/gocached/gocached/slab"
)

// execAdmin answers the maintenance commands: lru_crawler, slabs and lru,
// with memcached 1.6.18's replies, and routes watch to watch.go. misbehave
// and debugtime are not built and answer ERROR (refresh_certs is answered in tls.go).
func (c *conn) execAdmin() {
	switch c.work.req.Command {
	case protocol.CmdLruCrawler:
		c.execLruCrawler()
	case protocol.CmdSlabs:
		c.execSlabs()
	case protocol.CmdLru:
		c.execLru()
	case protocol.CmdWatch:
		c.execWatch()
	default:
		c.replyError(protocol.ErrUnknownCommand)
	}
}

// parseUint32 is memcached's safe_strtoul: decimal with an optional '+',
// no sign, at most 64 bits, truncated to 32 bits.
func parseUint32(b []byte) (uint32, bool) {
	s := string(b)
	if len(s) > 0 && s[0] == '+' {
		s = s[1:]
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}

// parseInt is memcached's safe_strtol.
func parseInt(b []byte) (int64, bool) {
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}

// setNoReplyMaybe is memcached's set_noreply_maybe: a last token
// "noreply" silences the reply.
func (c *conn) setNoReplyMaybe() {
	if n := len(c.work.req.Args); n > 0 && string(c.work.req.Args[n-1]) == "noreply" {
		c.work.req.NoReply = true
	}
}

// parseClassList parses an lru_crawler class list: "all" (nil) or comma
// separated ids (empty ones skipped; the result is non-nil).
func parseClassList(arg []byte) ([]int, bool) {
	if string(arg) == "all" {
		return nil, true
	}
	ids := []int{}
	for _, f := range bytes.Split(arg, []byte(",")) {
		if len(f) == 0 {
			continue
		}
		id, ok := parseUint32(f)
		if !ok || id < 1 || id > slab.MaxClassID {
			return nil, false
		}
		ids = append(ids, int(id))
	}
	return ids, true
}

func (c *conn) execLruCrawler() {
	args := c.work.req.Args
	store := c.srv.store
	if len(args) == 2 {
		switch string(args[0]) {
		case "crawl":
			if !store.CrawlerEnabled() {
				c.replyError("CLIENT_ERROR lru crawler disabled")
				return
			}
			ids, ok := parseClassList(args[1])
			if !ok {
				c.replyError("BADCLASS invalid class id")
				return
			}
			switch store.Crawl(ids) {
			case slab.CrawlOK:
				c.reply(protocol.ReplyOK)
			case slab.CrawlRunning:
				c.replyError("BUSY currently processing crawler request")
			case slab.CrawlBadClass:
				c.replyError("BADCLASS invalid class id")
			case slab.CrawlNotStarted:
				c.replyError("NOTSTARTED no items to crawl")
			default:
				c.replyError("CLIENT_ERROR lru crawler disabled")
			}
			return
		case "metadump", "mgdump":
			c.execKeyDump(string(args[0]) == "mgdump", args[1])
			return
		case "tocrawl":
			n, ok := parseUint32(args[1])
			if !ok {
				c.replyError(protocol.ErrBadFormat)
				return
			}
			store.SetCrawlerToCrawl(int64(n))
			c.reply(protocol.ReplyOK)
			return
		case "sleep":
			n, ok := parseUint32(args[1])
			if !ok {
				c.replyError(protocol.ErrBadFormat)
				return
			}
			if n > 1000000 {
				c.replyError("CLIENT_ERROR sleep must be one second or less")
				return
			}
			store.SetCrawlerSleep(int64(n))
			c.reply(protocol.ReplyOK)
			return
		}
	}
	if len(args) == 1 {
		switch string(args[0]) {
		case "enable":
			if store.SetCrawler(true) {
				c.reply(protocol.ReplyOK)
			} else {
				c.replyError("ERROR failed to start lru crawler thread")
			}
			return
		case "disable":
			store.SetCrawler(false)
			c.reply(protocol.ReplyOK)
			return
		}
	}
	c.replyError(protocol.ErrUnknownCommand)
}

// execKeyDump answers "lru_crawler metadump|mgdump <classids|all|hash>".
// memcached streams these from its crawler; here the dump walks the
// store's LRUs (or its index for "hash") and the lines go out in chunks.
func (c *conn) execKeyDump(mg bool, arg []byte) {
	store := c.srv.store
	if !store.CrawlerEnabled() {
		c.replyError("CLIENT_ERROR lru crawler disabled")
		return
	}
	if c.srv.cfg.DisableDumping {
		if mg {
			c.replyError("ERROR key dump not allowed")
		} else {
			c.replyError("ERROR metadump not allowed")
		}
		return
	}
	hash := string(arg) == "hash"
	var ids []int
	if !hash {
		var ok bool
		if ids, ok = parseClassList(arg); !ok {
			c.replyError("BADCLASS invalid class id")
			return
		}
		if ids != nil && len(ids) == 0 {
			c.replyError("NOTSTARTED no items to crawl")
			return
		}
		if ids == nil {
			for id := 1; id <= store.NumClasses(); id++ {
				ids = append(ids, id)
			}
		}
	}
	fn := func(d *slab.DumpItem) bool {
		if mg {
			c.wbuf = appendMgDump(c.wbuf, d)
		} else {
			c.wbuf = appendMetaDump(c.wbuf, d)
		}
		return !c.closing
	}
	between := func() {
		if len(c.wbuf) > flushThreshold && c.nc != nil && !c.flush() {
			c.closing = true
		}
	}
	if hash {
		store.DumpHash(fn, between)
	} else {
		for _, id := range ids {
			store.DumpClass(id, 0, false, true, fn, between)
		}
	}
	if mg {
		c.wbuf = append(c.wbuf, "EN\r\n"...)
	} else {
		c.wbuf = append(c.wbuf, protocol.ReplyEnd...)
	}
}

// appendMetaDump appends memcached's metadump line (ending in "\n" only):
// key=<uri-encoded> exp=<abs|-1> la=<abs> cas=N fetch=yes|no cls=N size=N.
func appendMetaDump(b []byte, d *slab.DumpItem) []byte {
	const hex = "0123456789ABCDEF"
	b = append(b, "key="...)
	for _, ch := range d.Key {
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '-' || ch == '.' || ch == '_' || ch == '~' {
			b = append(b, ch)
		} else {
			b = append(b, '%', hex[ch>>4], hex[ch&15])
		}
	}
	b = append(b, " exp="...)
	if d.Exptime == 0 {
		b = append(b, "-1"...)
	} else {
		b = strconv.AppendInt(b, d.Exptime, 10)
	}
	b = append(b, " la="...)
	b = strconv.AppendInt(b, d.LastAccess, 10)
	b = append(b, " cas="...)
	b = strconv.AppendUint(b, d.CAS, 10)
	if d.Fetched {
		b = append(b, " fetch=yes"...)
	} else {
		b = append(b, " fetch=no"...)
	}
	b = append(b, " cls="...)
	b = strconv.AppendInt(b, int64(d.Class), 10)
	b = append(b, " size="...)
	b = strconv.AppendInt(b, int64(d.Size), 10)
	return append(b, '\n')
}

// appendMgDump appends "mg <key>\r\n", with a key that is not printable
// ASCII in base64 and the b flag, as memcached's mgdump.
func appendMgDump(b []byte, d *slab.DumpItem) []byte {
	b = append(b, "mg "...)
	binary := false
	for _, ch := range d.Key {
		if ch <= ' ' || ch >= 0x7f {
			binary = true
			break
		}
	}
	if binary {
		b = base64.StdEncoding.AppendEncode(b, d.Key)
		b = append(b, " b"...)
	} else {
		b = append(b, d.Key...)
	}
	return append(b, "\r\n"...)
}

func (c *conn) execSlabs() {
	args := c.work.req.Args
	store := c.srv.store
	switch {
	case len(args) == 3 && string(args[0]) == "reassign":
		// memcached refuses before it reads the class ids.
		if store.Config().NoSlabReassign {
			c.replyError("CLIENT_ERROR slab reassignment disabled")
			return
		}
		src, ok1 := parseInt(args[1])
		dst, ok2 := parseInt(args[2])
		if !ok1 || !ok2 {
			c.replyError(protocol.ErrBadFormat)
			return
		}
		switch store.Reassign(int(src), int(dst)) {
		case slab.ReassignOK:
			c.reply(protocol.ReplyOK)
		case slab.ReassignRunning:
			c.replyError("BUSY currently processing reassign request")
		case slab.ReassignBadClass:
			c.replyError("BADCLASS invalid src or dst class id")
		case slab.ReassignNoSpare:
			c.replyError("NOSPARE source class has no spare pages")
		case slab.ReassignSame:
			c.replyError("SAME src and dst class are identical")
		case slab.ReassignDisabled:
			c.replyError("CLIENT_ERROR slab reassignment disabled")
		}
	case len(args) >= 2 && string(args[0]) == "automove":
		c.setNoReplyMaybe()
		if string(args[1]) == "ratio" {
			if len(args) < 3 {
				c.replyError(protocol.ErrUnknownCommand)
				return
			}
			r, err := strconv.ParseFloat(string(args[2]), 64)
			if err != nil {
				c.replyError(protocol.ErrUnknownCommand)
				return
			}
			store.SetAutomoveRatio(r)
			c.reply(protocol.ReplyOK)
			return
		}
		level, ok := parseUint32(args[1])
		if !ok {
			c.replyError(protocol.ErrBadFormat)
			return
		}
		if level > 2 {
			c.replyError(protocol.ErrUnknownCommand)
			return
		}
		store.SetAutomove(int(level))
		c.reply(protocol.ReplyOK)
	default:
		c.replyError(protocol.ErrUnknownCommand)
	}
}

// execLru answers "lru tune|mode|temp_ttl" with memcached's replies and
// applies them to the store. "lru temp_ttl N" turns the TEMP LRU on with
// temporary_ttl N; a negative N turns it off, keeping the old value.
func (c *conn) execLru() {
	args := c.work.req.Args
	c.setNoReplyMaybe()
	_, noMaintainer := c.srv.cfg.Extended["no_lru_maintainer"]
	switch {
	case len(args) >= 5 && string(args[0]) == "tune":
		hot, ok1 := parseUint32(args[1])
		warm, ok2 := parseUint32(args[2])
		hotFactor, err1 := strconv.ParseFloat(string(args[3]), 64)
		factor, err2 := strconv.ParseFloat(string(args[4]), 64)
		switch {
		case !ok1 || !ok2 || err1 != nil || err2 != nil:
			c.replyError(protocol.ErrUnknownCommand)
		case hot+warm > 80:
			c.replyError("ERROR hot and warm pcts must not exceed 80")
		case factor <= 0 || hotFactor <= 0:
			c.replyError("ERROR hot/warm age factors must be greater than 0")
		case c.srv.store.SetLRUTune(int(hot), int(warm), hotFactor, factor) != nil:
			c.replyError("ERROR hot and warm pcts must not exceed 80")
		default:
			c.reply(protocol.ReplyOK)
		}
	case len(args) >= 2 && string(args[0]) == "mode" && !noMaintainer:
		switch string(args[1]) {
		case "flat", "segmented":
			c.srv.store.SetLRUSegmented(string(args[1]) == "segmented")
			c.reply(protocol.ReplyOK)
		default:
			c.replyError(protocol.ErrUnknownCommand)
		}
	case len(args) >= 2 && string(args[0]) == "temp_ttl" && !noMaintainer:
		// memcached's safe_strtol: strtol (saturating), then stored in an
		// int32_t, so 3000000000 reads as negative and turns it off.
		v, err := strconv.ParseInt(string(args[1]), 10, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			c.replyError(protocol.ErrUnknownCommand)
			return
		}
		if ttl := int32(v); ttl < 0 {
			old, _ := c.srv.store.TempTTL()
			c.srv.store.SetTempTTL(old, false)
		} else {
			c.srv.store.SetTempTTL(int(ttl), true)
		}
		c.reply(protocol.ReplyOK)
	default:
		c.replyError(protocol.ErrUnknownCommand)
	}
}

// execStatsAdmin answers the stats groups that belong to the store's
// machinery ("stats cachedump"); any other group is an unknown command.
// execStats calls it for the groups it does not know.
func (c *conn) execStatsAdmin(sub string) {
	if sub != "cachedump" {
		c.replyError(protocol.ErrUnknownCommand)
		return
	}
	args := c.work.req.Args
	if c.srv.cfg.DisableDumping {
		c.replyError("CLIENT_ERROR stats cachedump not allowed")
		return
	}
	if len(args) < 3 {
		c.replyError("CLIENT_ERROR bad command line")
		return
	}
	id, ok1 := parseUint32(args[1])
	limit, ok2 := parseUint32(args[2])
	if !ok1 || !ok2 {
		c.replyError(protocol.ErrBadFormat)
		return
	}
	if id > slab.MaxClassID {
		c.replyError("CLIENT_ERROR Illegal slab id")
		return
	}
	// memcached builds the reply in a 2 MB buffer and stops when full.
	const memlimit = 2 << 20
	// memcached keeps times relative to process_started, 62 s before it
	// started (ITEM_UPDATE_INTERVAL + 2), and stores a time before that,
	// or a negative exptime, as 1: it shows those as its epoch + 1.
	epoch := c.srv.started - 62
	start := len(c.wbuf)
	c.srv.store.DumpClass(int(id), int(limit), true, false, func(d *slab.DumpItem) bool {
		n := len(c.wbuf)
		c.wbuf = append(c.wbuf, "ITEM "...)
		c.wbuf = append(c.wbuf, d.Key...)
		c.wbuf = append(c.wbuf, " ["...)
		c.wbuf = strconv.AppendInt(c.wbuf, int64(d.ValueLen), 10)
		c.wbuf = append(c.wbuf, " b; "...)
		exp := d.Exptime
		if exp != 0 && exp <= epoch {
			exp = epoch + 1
		}
		c.wbuf = strconv.AppendInt(c.wbuf, exp, 10)
		c.wbuf = append(c.wbuf, " s]\r\n"...)
		if len(c.wbuf)-start+6 > memlimit {
			c.wbuf = c.wbuf[:n]
			return false
		}
		return true
	}, nil)
	c.wbuf = append(c.wbuf, protocol.ReplyEnd...)
}
