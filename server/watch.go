package server

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gocached/gocached/protocol"
	"github.com/gocached/gocached/slab"
)

// watch is memcached's "watch" command: a connection turns into a stream of
// log lines, one per event of the kinds it asked for, in memcached
// 1.6.18's format:
//
//	ts=1795687497.779184 gid=2 type=item_get key=foo status=not_found clsid=0 cfd=25 size=0
//	ts=1795687497.779188 gid=3 type=item_store key=foo status=stored cmd=set ttl=0 clsid=1 cfd=25 size=3
//	ts=1795690244.385595 gid=4 type=eviction key=key0 fetch=no ttl=1000 la=0 clsid=12 size=1000
//
// Requests never wait for a watcher: each has a bounded buffer
// (watcher_logbuf_size) and a line that does not fit is dropped and
// counted, then reported as "skipped=N" as memcached does.

// Event kinds a watcher asks for.
const (
	watchFetchers uint32 = 1 << iota
	watchMutations
	watchEvictions
	watchConnEvents
	watchOther // rawcmds, sysevents, proxy*: accepted, never emitted
)

// watcherBufSize bounds a watcher's pending lines (memcached's
// watcher_logbuf_size).
const watcherBufSize = 256 << 10

// watchHub holds the server's watchers. flags is the union of their kinds:
// the hooks load it once and do nothing more when nobody watches.
// Evictions happen inside the store, which calls the hub through its
// eviction hook only while someone watches them.
type watchHub struct {
	flags    atomic.Uint32
	gid      atomic.Uint64
	sent     atomic.Uint64 // lines queued to watchers (log_watcher_sent)
	skipped  atomic.Uint64 // lines dropped for slow watchers (log_watcher_skipped)
	mu       sync.Mutex
	watchers []*watcher
	classes  []int       // chunk sizes, for clsid (set when the first watcher comes)
	st       *slab.Store // set by add, for the eviction hook
}

// watcher is one watching connection's queue.
type watcher struct {
	kinds   uint32
	mu      sync.Mutex
	buf     []byte // pending lines, at most watcherBufSize
	skipped uint64
	wake    chan struct{}
}

var lineBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (h *watchHub) add(w *watcher, store *slab.Store) {
	classes := store.ClassSizes()
	h.mu.Lock()
	h.st = store
	if h.classes == nil {
		h.classes = classes
	}
	h.watchers = append(h.watchers, w)
	h.recomputeLocked()
	h.mu.Unlock()
}

func (h *watchHub) remove(w *watcher) {
	h.mu.Lock()
	for i, x := range h.watchers {
		if x == w {
			h.watchers = append(h.watchers[:i], h.watchers[i+1:]...)
			break
		}
	}
	h.recomputeLocked()
	h.mu.Unlock()
}

func (h *watchHub) recomputeLocked() {
	var f uint32
	for _, w := range h.watchers {
		f |= w.kinds
	}
	// The hook changes under h.mu with the flags, so the last watcher of
	// evictions to leave always removes it and a new one always sets it.
	if h.st != nil && (f^h.flags.Load())&watchEvictions != 0 {
		if f&watchEvictions != 0 {
			h.st.SetEvictionHook(h.eviction)
		} else {
			h.st.SetEvictionHook(nil)
		}
	}
	h.flags.Store(f)
}

// count is the number of watchers (log_watchers).
func (h *watchHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

// on reports whether anyone watches kind: the hooks' one atomic load.
func (h *watchHub) on(kind uint32) bool { return h.flags.Load()&kind != 0 }

// fetch logs an item_get (get, gets, gat, gats, mg, binary get, gat and
// touch) from the lookup's result: found with the value's size, or why it
// missed. A vivifying miss (mg N) logs the miss, as memcached logs its
// lookup before it creates the item.
func (h *watchHub) fetch(c *conn, key []byte, miss slab.Miss, size int) {
	if h.on(watchFetchers) {
		h.logGet(c, key, miss, size)
	}
}

// peek logs the item_get memcached emits when a store or delete first
// looks the key up; it must run before the store changes the item.
func (h *watchHub) peek(c *conn, key []byte) {
	if h.on(watchFetchers) {
		h.logPeek(c, key)
	}
}

// store logs an item_store (set, add, replace, append, prepend, cas, ms).
func (h *watchHub) store(c *conn, key []byte, res slab.Result, opt *slab.SetOptions, size int) {
	if h.on(watchMutations) {
		h.logStore(c, key, res, opt, size)
	}
}

func (h *watchHub) logPeek(c *conn, key []byte) {
	var b []byte
	_, it, _ := c.srv.store.Get(b, key, &slab.GetOptions{Peek: true})
	h.logGet(c, key, it.Miss, it.Size)
}

// getStatus are memcached's item_get statuses for a lookup that found no
// live item: logger.c's was_found_map. Its do_item_get removes an expired
// or flushed item it finds and logs why, with clsid and size 0. (Its LRU
// maintainer and allocations also reclaim dead items at the LRU tails, so
// memcached often logs not_found for a key that expired a moment ago:
// gocached reclaims lazily, and logs the reason whenever it knows it.)
var getStatus = [...]string{
	slab.MissAbsent:  " status=not_found clsid=0",
	slab.MissExpired: " status=expired clsid=0",
	slab.MissFlushed: " status=flushed clsid=0",
}

func (h *watchHub) logGet(c *conn, key []byte, miss slab.Miss, size int) {
	bp := lineBufPool.Get().(*[]byte)
	b := h.appendHead(*bp, "item_get")
	b = appendKey(b, key)
	if miss == slab.MissNone {
		b = append(b, " status=found clsid="...)
		b = strconv.AppendInt(b, int64(h.classID(len(key), size)), 10)
	} else {
		b = append(b, getStatus[miss]...)
		size = 0
	}
	b = appendCfdSize(b, c, size)
	h.publish(watchFetchers, b)
	*bp = b[:0]
	lineBufPool.Put(bp)
}

var storeStatus = map[slab.Result]string{
	slab.Stored:    "stored",
	slab.NotStored: "not_stored",
	slab.Exists:    "exists",
	slab.NotFound:  "not_found",
	slab.TooLarge:  "too_large",
}

func (h *watchHub) logStore(c *conn, key []byte, res slab.Result, opt *slab.SetOptions, size int) {
	status, ok := storeStatus[res]
	if !ok {
		status = "no_memory"
	}
	var cmd string
	switch opt.Mode {
	case slab.ModeAdd:
		cmd = "add"
	case slab.ModeReplace:
		cmd = "replace"
	case slab.ModeAppend:
		cmd = "append"
	case slab.ModePrepend:
		cmd = "prepend"
	case slab.ModeCAS:
		cmd = "cas"
	default:
		cmd = "set"
		if opt.CAS != 0 {
			cmd = "cas"
		}
	}
	exptime := opt.Exptime
	if res == slab.Stored && (opt.Mode == slab.ModeAppend || opt.Mode == slab.ModePrepend) {
		// The stored item keeps the old one's TTL: log it as it is now.
		var b []byte
		if _, it, ok := c.srv.store.Get(b, key, &slab.GetOptions{Peek: true}); ok {
			exptime, size = it.Exptime, it.Size
		}
	}
	var ttl int64
	if exptime > 0 {
		ttl = max(exptime-c.srv.now(), 0)
	}
	bp := lineBufPool.Get().(*[]byte)
	b := h.appendHead(*bp, "item_store")
	b = appendKey(b, key)
	b = append(b, " status="...)
	b = append(b, status...)
	b = append(b, " cmd="...)
	b = append(b, cmd...)
	b = append(b, " ttl="...)
	b = strconv.AppendInt(b, ttl, 10)
	b = append(b, " clsid="...)
	b = strconv.AppendInt(b, int64(h.classID(len(key), size)), 10)
	b = appendCfdSize(b, c, size)
	h.publish(watchMutations, b)
	*bp = b[:0]
	lineBufPool.Put(bp)
}

// eviction logs an eviction, as memcached's LOGGER_EVICTION:
//
//	ts=1795690244.385593 gid=2 type=eviction key=foo fetch=yes ttl=-1 la=0 clsid=12 size=1000
//
// ttl is the seconds left (-1: no expiry), la the seconds since the last
// access, size the value length. It is the store's eviction hook: it runs
// under the store's class and stripe locks, and takes only the hub's.
func (h *watchHub) eviction(e slab.Eviction) {
	bp := lineBufPool.Get().(*[]byte)
	b := h.appendHead(*bp, "eviction")
	b = appendKey(b, e.Key)
	if e.Fetched {
		b = append(b, " fetch=yes"...)
	} else {
		b = append(b, " fetch=no"...)
	}
	ttl := int64(-1)
	if e.Exptime > 0 {
		ttl = e.Exptime - e.Now
	}
	b = append(b, " ttl="...)
	b = strconv.AppendInt(b, ttl, 10)
	b = append(b, " la="...)
	b = strconv.AppendInt(b, e.Now-e.LastAccess, 10)
	b = append(b, " clsid="...)
	b = strconv.AppendInt(b, int64(h.classID(len(e.Key), e.ValueLen)), 10)
	b = append(b, " size="...)
	b = strconv.AppendInt(b, int64(e.ValueLen), 10)
	b = append(b, '\n')
	h.publish(watchEvictions, b)
	*bp = b[:0]
	lineBufPool.Put(bp)
}

// connNew and connClose log conn_new and conn_close ("connevents").
func (h *watchHub) connNew(c *conn) {
	if h.on(watchConnEvents) {
		h.connEvent(c, false, "")
	}
}

func (h *watchHub) connClose(c *conn) {
	if h.on(watchConnEvents) {
		reason := "normal"
		if c.shutdown.Load() {
			reason = "shutdown"
		}
		h.connEvent(c, true, reason)
	}
}

func (h *watchHub) connEvent(c *conn, closed bool, reason string) {
	if c.nc == nil {
		return
	}
	if _, udp := c.nc.(*udpNetConn); udp {
		return
	}
	bp := lineBufPool.Get().(*[]byte)
	var b []byte
	if closed {
		b = h.appendHead(*bp, "conn_close")
	} else {
		b = h.appendHead(*bp, "conn_new")
	}
	switch a := c.nc.RemoteAddr().(type) {
	case *net.TCPAddr:
		b = append(b, " rip="...)
		b = append(b, a.IP.String()...)
		b = append(b, " rport="...)
		b = strconv.AppendInt(b, int64(a.Port), 10)
		b = append(b, " transport=tcp"...)
	default:
		b = append(b, " transport=local"...)
	}
	if closed {
		b = append(b, " reason="...)
		b = append(b, reason...)
	}
	b = append(b, " cfd="...)
	b = strconv.AppendInt(b, int64(connFD(c)), 10)
	b = append(b, '\n')
	h.publish(watchConnEvents, b)
	*bp = b[:0]
	lineBufPool.Put(bp)
}

// appendHead starts a line: "ts=SEC.USEC gid=N type=T". memcached prints
// the microseconds with %d, unpadded, and so does gocached.
func (h *watchHub) appendHead(b []byte, typ string) []byte {
	now := time.Now()
	b = append(b, "ts="...)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(now.Nanosecond()/1000), 10)
	b = append(b, " gid="...)
	b = strconv.AppendUint(b, h.gid.Add(1), 10)
	b = append(b, " type="...)
	return append(b, typ...)
}

const upperHex = "0123456789ABCDEF"

// appendKey appends " key=" and the key URI-encoded as memcached does:
// alphanumerics and -._~ as they are, any other byte as %XX.
func appendKey(b, key []byte) []byte {
	b = append(b, " key="...)
	for _, ch := range key {
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9',
			ch == '-', ch == '.', ch == '_', ch == '~':
			b = append(b, ch)
		default:
			b = append(b, '%', upperHex[ch>>4], upperHex[ch&15])
		}
	}
	return b
}

func appendCfdSize(b []byte, c *conn, size int) []byte {
	b = append(b, " cfd="...)
	b = strconv.AppendInt(b, int64(connFD(c)), 10)
	b = append(b, " size="...)
	b = strconv.AppendInt(b, int64(size), 10)
	return append(b, '\n')
}

// classID is the slab class memcached would store the item in: its
// 48-byte header, 8 bytes of CAS, the key with its terminator and the value
// with "\r\n".
func (h *watchHub) classID(keyLen, valueLen int) int {
	total := 48 + 8 + keyLen + 1 + valueLen + 2
	h.mu.Lock()
	classes := h.classes
	h.mu.Unlock()
	for i, sz := range classes {
		if total <= sz {
			return i + 1
		}
	}
	return len(classes)
}

// connFD is the connection's file descriptor (memcached's cfd), -1 if it
// has none.
func connFD(c *conn) int {
	nc := c.nc
	if fd := detachedFD(nc); fd >= 0 {
		return fd
	}
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok { // TLS
		nc = t.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// publish queues a line to every watcher of kind, dropping it for those
// whose buffer is full.
func (h *watchHub) publish(kind uint32, line []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.watchers {
		if w.kinds&kind == 0 {
			continue
		}
		w.mu.Lock()
		if len(w.buf)+len(line) > watcherBufSize {
			w.skipped++
			w.mu.Unlock()
			h.skipped.Add(1)
			continue
		}
		w.buf = append(w.buf, line...)
		w.mu.Unlock()
		h.sent.Add(1)
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// execWatch is the watch command: "watch [kind...]", fetchers alone when
// none is given. On success the connection becomes a watcher once its
// pending replies are written (serve calls c.serveWatch).
func (c *conn) execWatch() {
	if c.srv.cfg.DisableWatch {
		c.replyError("CLIENT_ERROR watch commands not allowed")
		return
	}
	if _, udp := c.nc.(*udpNetConn); udp || c.nc == nil {
		c.replyError(protocol.ErrUnknownCommand)
		return
	}
	c.setNoReplyMaybe()
	kinds := watchFetchers
	if len(c.work.req.Args) > 0 {
		kinds = 0
		for _, a := range c.work.req.Args {
			switch string(a) {
			case "fetchers":
				kinds |= watchFetchers
			case "mutations":
				kinds |= watchMutations
			case "evictions":
				kinds |= watchEvictions
			case "connevents":
				kinds |= watchConnEvents
			case "rawcmds", "sysevents", "proxyreqs", "proxyevents", "proxyuser":
				kinds |= watchOther
			default:
				c.replyError(protocol.ErrUnknownCommand)
				return
			}
		}
	}
	c.wbuf = append(c.wbuf, protocol.ReplyOK...)
	c.watcher = &watcher{kinds: kinds, wake: make(chan struct{}, 1)}
	c.closing = true // execute no request after watch; serve streams instead
}

// serveWatch streams log lines to a watching connection until the client
// closes it or the server shuts down. Input is read and discarded, as
// memcached ignores requests on a watcher.
func (c *conn) serveWatch() {
	w := c.watcher
	s := c.srv
	// Registered before the OK goes out: a client may act on the OK at
	// once, and its events must be logged. Lines wait in w.buf until the
	// loop below, after the OK.
	s.watch.add(w, s.store)
	defer s.watch.remove(w)
	if !c.flush() {
		return
	}
	c.releaseBuffers()
	_ = c.nc.SetReadDeadline(time.Time{}) // watchers never idle out
	if c.shutdown.Load() {                // woken before the deadline was cleared
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Unblock a write to a client that stopped reading.
		defer func() { _ = c.nc.SetWriteDeadline(time.Now()) }()
		var b [512]byte
		for {
			if _, err := c.nc.Read(b[:]); err != nil && !c.retryRead(err, 0) {
				return
			}
			if c.shutdown.Load() {
				return
			}
		}
	}()
	var out []byte
	for {
		select {
		case <-done:
			return
		case <-s.done:
			return
		case <-w.wake:
		}
		w.mu.Lock()
		out, w.buf = w.buf, out[:0]
		skipped := w.skipped
		w.skipped = 0
		w.mu.Unlock()
		if skipped > 0 {
			out = append(out, "skipped="...)
			out = strconv.AppendUint(out, skipped, 10)
			out = append(out, '\n')
		}
		if len(out) == 0 {
			continue
		}
		n, err := c.nc.Write(out)
		atomic.AddUint64(&c.stats.bytesWritten, uint64(n))
		if err != nil {
			return
		}
	}
}
