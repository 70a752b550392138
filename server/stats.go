package server

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gocached/gocached/protocol"
)

// connStats are one connection's counters. The owning goroutine adds with
// atomics, which are uncontended; "stats" sums every live connection and
// the retired total, so no counter is shared between cores.
type connStats struct {
	cmdGet, getHits, getMisses          uint64
	cmdSet, cmdFlush, cmdTouch, cmdMeta uint64
	touchHits, touchMisses              uint64
	storeTooLarge, storeNoMemory        uint64
	authCmds, authErrors                uint64
	bytesRead, bytesWritten             uint64
	idleKicks, connYields               uint64 // idle-timeout closes; -R yields
	responseObjOOM, readBufOOM          uint64 // replies and reads refused over read_buf_mem_limit
}

// statsPool holds the counters of connections that are not parked. A
// parked connection's are folded into the server's retired total, so a
// parked connection does not carry them (152 bytes, and they put conn in
// a larger size class).
var statsPool = sync.Pool{New: func() any { return new(connStats) }}

// takeStats gives a connection that resumes from parking counters of its
// own again.
func (s *Server) takeStats(c *conn) {
	if c.stats != nil {
		return
	}
	st := statsPool.Get().(*connStats)
	s.mu.Lock() // totals reads c.stats under it
	c.stats = st
	s.mu.Unlock()
}

// retireStats folds c's counters into the retired total and gives them
// back to the pool: c is parking, and takeStats must run before it counts
// again.
func (s *Server) retireStats(c *conn) {
	s.mu.Lock()
	st := s.retireStatsLocked(c)
	s.mu.Unlock()
	putStats(st)
}

// retireStatsLocked is retireStats under s.mu; the caller puts the result
// back with putStats once it has released the lock.
func (s *Server) retireStatsLocked(c *conn) *connStats {
	st := c.stats
	c.stats = nil
	if st != nil {
		s.retired.add(st)
	}
	return st
}

// putStats zeroes counters no longer reachable from any connection and
// pools them.
func putStats(st *connStats) {
	if st != nil {
		*st = connStats{}
		statsPool.Put(st)
	}
}

// add accumulates o into s. s must not be shared; o may be live.
func (s *connStats) add(o *connStats) {
	s.cmdGet += atomic.LoadUint64(&o.cmdGet)
	s.getHits += atomic.LoadUint64(&o.getHits)
	s.getMisses += atomic.LoadUint64(&o.getMisses)
	s.cmdSet += atomic.LoadUint64(&o.cmdSet)
	s.cmdFlush += atomic.LoadUint64(&o.cmdFlush)
	s.cmdTouch += atomic.LoadUint64(&o.cmdTouch)
	s.cmdMeta += atomic.LoadUint64(&o.cmdMeta)
	s.touchHits += atomic.LoadUint64(&o.touchHits)
	s.touchMisses += atomic.LoadUint64(&o.touchMisses)
	s.storeTooLarge += atomic.LoadUint64(&o.storeTooLarge)
	s.storeNoMemory += atomic.LoadUint64(&o.storeNoMemory)
	s.authCmds += atomic.LoadUint64(&o.authCmds)
	s.authErrors += atomic.LoadUint64(&o.authErrors)
	s.bytesRead += atomic.LoadUint64(&o.bytesRead)
	s.bytesWritten += atomic.LoadUint64(&o.bytesWritten)
	s.idleKicks += atomic.LoadUint64(&o.idleKicks)
	s.connYields += atomic.LoadUint64(&o.connYields)
	s.responseObjOOM += atomic.LoadUint64(&o.responseObjOOM)
	s.readBufOOM += atomic.LoadUint64(&o.readBufOOM)
}

// totals sums the counters of every connection, live and closed.
func (s *Server) totals() connStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.retired
	for c := range s.conns {
		if c.stats != nil {
			t.add(c.stats)
		}
	}
	return t
}

// resetStats implements "stats reset".
func (s *Server) resetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retired = connStats{}
	for c := range s.conns {
		if c.stats != nil {
			c.stats.reset()
		}
	}
	s.totalConns.Store(0)
	s.rejectedConns.Store(0)
	// As memcached's stats_reset: its global stats (listen_disabled_num,
	// the log counters), each thread's and each class's counters, and the
	// "stats detail" prefixes.
	s.listenDisabled.Store(0)
	s.watch.sent.Store(0)
	s.watch.skipped.Store(0)
	s.store.ResetStats()
	s.prefixes.clear()
}

func (s *connStats) reset() {
	for _, p := range []*uint64{&s.cmdGet, &s.getHits, &s.getMisses, &s.cmdSet, &s.cmdFlush,
		&s.cmdTouch, &s.cmdMeta, &s.touchHits, &s.touchMisses, &s.storeTooLarge,
		&s.storeNoMemory, &s.authCmds, &s.authErrors, &s.bytesRead, &s.bytesWritten,
		&s.idleKicks, &s.connYields, &s.responseObjOOM, &s.readBufOOM} {
		atomic.StoreUint64(p, 0)
	}
}

func (c *conn) execStats() {
	args := c.work.req.Args
	sub := ""
	if len(args) > 0 {
		sub = string(args[0])
	}
	s := c.srv
	switch sub {
	case "":
		c.wbuf = s.appendGeneralStats(c.wbuf)
	case "settings":
		c.wbuf = s.appendSettings(c.wbuf)
	case "items":
		c.wbuf = s.appendItems(c.wbuf)
	case "slabs":
		c.wbuf = s.appendSlabs(c.wbuf)
	case "sizes":
		c.wbuf = s.appendSizes(c.wbuf)
	case "sizes_enable", "sizes_disable":
		// memcached ends these replies without END.
		c.wbuf = s.switchSizes(c.wbuf, sub == "sizes_enable")
		return
	case "conns":
		c.wbuf = s.appendConns(c.wbuf)
	case "go":
		c.wbuf = s.appendValueStats(appendGoStats(c.wbuf))
	case "reset":
		s.resetStats()
		c.wbuf = append(c.wbuf, protocol.ReplyReset...)
		return
	case "detail":
		if len(args) < 2 {
			c.replyError("CLIENT_ERROR usage: stats detail on|off|dump")
			return
		}
		switch string(args[1]) {
		case "on", "off":
			s.prefixes.enabled.Store(string(args[1]) == "on")
			c.wbuf = append(c.wbuf, protocol.ReplyOK...)
		case "dump":
			c.wbuf = s.prefixes.appendDump(c.wbuf)
		default:
			c.replyError("CLIENT_ERROR usage: stats detail on|off|dump")
		}
		return
	default:
		c.execStatsAdmin(sub) // stats cachedump (admin.go), else ERROR
		return
	}
	c.wbuf = append(c.wbuf, protocol.ReplyEnd...)
}

func (s *Server) appendGeneralStats(b []byte) []byte {
	now := s.now()
	t := s.totals()
	st := s.store.Stats()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	u := func(name string, v uint64) { b = appendStatUint(b, name, v) }
	str := func(name, v string) { b = protocol.AppendStat(b, name, v) }
	u("pid", uint64(os.Getpid()))
	u("uptime", uint64(now-s.started))
	u("time", uint64(now))
	str("version", Version)
	str("libevent", "go")
	u("pointer_size", 64)
	str("rusage_user", fmt.Sprintf("%d.%06d", ru.Utime.Sec, ru.Utime.Usec))
	str("rusage_system", fmt.Sprintf("%d.%06d", ru.Stime.Sec, ru.Stime.Usec))
	u("max_connections", uint64(s.cfg.MaxConns))
	u("curr_connections", uint64(s.currConns.Load()))
	u("total_connections", s.totalConns.Load())
	u("rejected_connections", s.rejectedConns.Load())
	u("connection_structures", uint64(s.currConns.Load()))
	u("response_obj_oom", t.responseObjOOM)
	u("response_obj_count", 0)
	u("response_obj_bytes", 0)
	u("read_buf_count", 0)
	u("read_buf_bytes", 0)
	u("read_buf_bytes_free", 0)
	u("read_buf_oom", t.readBufOOM)
	u("reserved_fds", 20) // memcached's fixed reservation; reported for dashboards
	u("cmd_get", t.cmdGet)
	u("cmd_set", t.cmdSet)
	u("cmd_flush", t.cmdFlush)
	u("cmd_touch", t.cmdTouch)
	u("cmd_meta", t.cmdMeta)
	u("get_hits", t.getHits)
	u("get_misses", t.getMisses)
	u("get_expired", st.GetExpired)
	u("get_flushed", st.GetFlushed)
	u("delete_misses", st.DeleteMisses)
	u("delete_hits", st.DeleteHits)
	u("incr_misses", st.IncrMisses)
	u("incr_hits", st.IncrHits)
	u("decr_misses", st.DecrMisses)
	u("decr_hits", st.DecrHits)
	u("cas_misses", st.CasMisses)
	u("cas_hits", st.CasHits)
	u("cas_badval", st.CasBadval)
	u("touch_hits", t.touchHits)
	u("touch_misses", t.touchMisses)
	u("store_too_large", t.storeTooLarge)
	u("store_no_memory", t.storeNoMemory)
	u("auth_cmds", t.authCmds)
	u("auth_errors", t.authErrors)
	if s.cfg.IdleTimeout > 0 { // as memcached: listed under -o idle_timeout only
		u("idle_kicks", t.idleKicks)
	}
	u("bytes_read", t.bytesRead)
	u("bytes_written", t.bytesWritten)
	u("limit_maxbytes", st.LimitMaxbytes)
	u("accepting_conns", b2u(!s.acceptPaused.Load()))
	u("listen_disabled_num", s.listenDisabled.Load())
	u("time_in_listen_disabled_us", 0)
	u("threads", uint64(s.cfg.Threads))
	u("conn_yields", t.connYields)
	u("hash_power_level", st.HashPowerLevel)
	u("hash_bytes", st.HashBytes)
	u("hash_is_expanding", 0)
	u("slab_reassign_rescues", st.SlabReassignRescues)
	u("slab_reassign_chunk_rescues", 0)
	u("slab_reassign_evictions_nomem", st.SlabReassignEvictionsNomem)
	u("slab_reassign_inline_reclaim", st.SlabReassignInlineReclaim)
	u("slab_reassign_busy_items", st.SlabReassignBusyItems)
	u("slab_reassign_busy_deletes", 0)
	u("slab_reassign_running", b2u(st.SlabReassignRunning))
	u("slabs_moved", st.SlabsMoved)
	// As memcached, the crawler's and the maintainer's stats are listed
	// only while they run (not under no_lru_crawler, "lru_crawler
	// disable", no_lru_maintainer).
	maintainer := !s.store.Config().NoLRUMaintainer
	if s.store.CrawlerEnabled() {
		u("lru_crawler_running", b2u(st.LRUCrawlerRunning))
		u("lru_crawler_starts", st.LRUCrawlerStarts)
	}
	if maintainer {
		u("lru_maintainer_juggles", 0)
	}
	u("malloc_fails", 0)
	u("log_worker_dropped", 0)
	u("log_worker_written", 0)
	u("log_watcher_skipped", s.watch.skipped.Load())
	u("log_watcher_sent", s.watch.sent.Load())
	u("log_watchers", uint64(s.watch.count()))
	if s.cfg.TLS {
		if _, ok := s.cfg.Extended[optSSLSessionCache]; ok {
			u("ssl_new_sessions", s.tls.newSessions.Load())
		}
		u("ssl_handshake_errors", s.tls.handshakeErrors.Load())
		u("time_since_server_cert_refresh", uint64(max(now-s.tls.loaded.Load(), 0)))
	}
	u("unexpected_napi_ids", 0)
	u("round_robin_fallback", 0)
	u("bytes", st.Bytes)
	u("curr_items", st.CurrItems)
	u("total_items", st.TotalItems)
	u("slab_global_page_pool", st.SlabGlobalPagePool)
	u("expired_unfetched", st.ExpiredUnfetched)
	u("evicted_unfetched", st.EvictedUnfetched)
	if maintainer {
		u("evicted_active", st.EvictedActive)
	}
	u("evictions", st.Evictions)
	u("reclaimed", st.Reclaimed)
	u("crawler_reclaimed", st.CrawlerReclaimed)
	u("crawler_items_checked", st.CrawlerItemsChecked)
	u("lrutail_reflocked", 0)
	if maintainer {
		u("moves_to_cold", 0)
		u("moves_to_warm", 0)
		u("moves_within_lru", 0)
		u("direct_reclaims", 0)
		u("lru_bumps_dropped", 0)
	}
	return b
}

// b2u is memcached's 0/1 for a flag.
func b2u(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// orNull returns v, or memcached's placeholder for an unset string.
func orNull(v, null string) string {
	if v == "" {
		return null
	}
	return v
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func (s *Server) appendSettings(b []byte) []byte {
	cfg := s.cfg
	sc := s.store.Config()
	u := func(name string, v uint64) { b = appendStatUint(b, name, v) }
	str := func(name, v string) { b = protocol.AppendStat(b, name, v) }
	u("maxbytes", uint64(sc.MemoryLimit))
	u("maxconns", uint64(cfg.MaxConns))
	u("tcpport", uint64(cfg.Port))
	u("udpport", uint64(cfg.UDPPort))
	inter := "NULL"
	if len(cfg.Listen) > 0 {
		inter = cfg.Listen[0]
	}
	str("inter", inter)
	u("verbosity", uint64(s.verbosity.Load()))
	u("oldest", 0)
	str("evictions", map[bool]string{true: "off", false: "on"}[sc.DisableEvictions])
	sock := "NULL"
	if cfg.UnixSocket != "" {
		sock = cfg.UnixSocket
	}
	str("domain_socket", sock)
	str("umask", strconv.FormatUint(uint64(cfg.UnixMask), 8))
	str("shutdown_command", yesNo(cfg.EnableShutdown))
	str("growth_factor", strconv.FormatFloat(sc.GrowthFactor, 'f', 2, 64))
	u("chunk_size", uint64(sc.MinChunkSize))
	u("num_threads", uint64(cfg.Threads))
	u("num_threads_per_udp", uint64(cfg.Threads))
	str("stat_key_prefix", string(s.prefixes.delimiter))
	str("detail_enabled", yesNo(s.prefixes.enabled.Load()))
	u("reqs_per_event", uint64(cfg.ReqsPerEvent))
	str("cas_enabled", yesNo(!sc.DisableCAS))
	u("tcp_backlog", uint64(cfg.Backlog))
	proto := cfg.Protocol
	switch {
	case cfg.SASL: // memcached -S binds binary (-B can only confirm it)
		proto = "binary"
	case proto == "auto":
		proto = "auto-negotiate"
	}
	str("binding_protocol", proto)
	str("auth_enabled_sasl", yesNo(cfg.SASL))
	str("auth_enabled_ascii", orNull(cfg.AuthFile, "no")) // memcached shows the file
	u("item_size_max", uint64(sc.MaxItemSize))
	str("maxconns_fast", yesNo(cfg.MaxConnsFast))
	u("hashpower_init", 0)
	str("slab_reassign", yesNo(!sc.NoSlabReassign))
	// The running mode: "slabs automove N" changes it, as memcached's setting.
	u("slab_automove", uint64(s.store.Automove()))
	str("slab_automove_ratio", "0.80")
	u("slab_automove_window", 30)
	u("slab_chunk_max", uint64(sc.SlabChunkMax))
	str("lru_crawler", yesNo(!sc.NoLRUCrawler))
	u("lru_crawler_sleep", uint64(cmp.Or(sc.CrawlerSleep, 100)))
	u("lru_crawler_tocrawl", uint64(sc.CrawlerToCrawl))
	u("tail_repair_time", 0)
	str("flush_enabled", yesNo(!cfg.DisableFlushAll))
	str("dump_enabled", yesNo(!cfg.DisableDumping))
	str("hash_algorithm", "murmur3")
	hot, warm, hotFactor, warmFactor := s.store.LRUTune()
	str("lru_maintainer_thread", yesNo(!sc.NoLRUMaintainer))
	str("lru_segmented", yesNo(s.store.LRUSegmented()))
	u("hot_lru_pct", uint64(hot))
	u("warm_lru_pct", uint64(warm))
	str("hot_max_factor", strconv.FormatFloat(hotFactor, 'f', 2, 64))
	str("warm_max_factor", strconv.FormatFloat(warmFactor, 'f', 2, 64))
	tempTTL, tempOn := s.store.TempTTL()
	str("temp_lru", yesNo(tempOn))
	u("temporary_ttl", uint64(uint32(tempTTL))) // memcached prints it with %u
	u("idle_timeout", uint64(cfg.IdleTimeout/time.Second))
	u("watcher_logbuf_size", 262144)
	u("worker_logbuf_size", 65536)
	u("read_buf_mem_limit", uint64(cfg.ReadBufMemLimit)) // bytes, as memcached; 0 = not given (the differential corpus)
	str("track_sizes", yesNo(s.store.SizesOn()))         // as memcached: running now, not -o track_sizes
	str("inline_ascii_response", "no")
	u("ext_item_size", 512)
	u("ext_item_age", 4294967295)
	u("ext_low_ttl", 0)
	u("ext_recache_rate", 2000)
	u("ext_wbuf_size", 4194304)
	u("ext_compact_under", 0)
	u("ext_drop_under", 0)
	u("ext_max_sleep", 1000000)
	str("ext_max_frag", "0.80")
	str("slab_automove_freeratio", "0.010")
	str("ext_drop_unread", "no")
	str("ssl_enabled", yesNo(cfg.TLS))
	str("ssl_chain_cert", orNull(cfg.Extended["ssl_chain_cert"], "(null)"))
	str("ssl_key", orNull(cfg.Extended["ssl_key"], "(null)"))
	str("ssl_verify_mode", sslVerifyModeSetting(cfg.Extended))
	u("ssl_keyformat", 1)
	str("ssl_ciphers", orNull(cfg.Extended["ssl_ciphers"], "NULL"))
	str("ssl_ca_cert", orNull(cfg.Extended["ssl_ca_cert"], "NULL"))
	u("ssl_wbuf_size", 16384)
	str("ssl_session_cache", sslSessionCacheSetting(cfg.Extended))
	str("ssl_kernel_tls", "no")
	str("ssl_min_version", sslMinVersionSetting(cfg.Extended))
	str("num_napi_ids", "(null)")
	str("memory_file", orNull(cfg.Store.MemoryFile, "(null)"))
	return b
}

// appendSizes appends "stats sizes": the item size histogram, a line per
// nonzero 32-byte bucket ("STAT 96 2": 2 items of 65 to 96 bytes, in
// memcached's item sizes), or its status when it does not run.
func (s *Server) appendSizes(b []byte) []byte {
	hist, on := s.store.Sizes()
	if !on {
		return protocol.AppendStat(b, "sizes_status", "disabled")
	}
	for _, h := range hist {
		b = appendStatUint(b, strconv.Itoa(h.Size), uint64(h.Count))
	}
	return b
}

// switchSizes runs "stats sizes_enable" (on) or "stats sizes_disable" and
// appends memcached's status lines.
func (s *Server) switchSizes(b []byte, on bool) []byte {
	if !on {
		s.store.DisableSizes()
		return protocol.AppendStat(b, "sizes_status", "disabled")
	}
	if !s.store.EnableSizes() {
		b = protocol.AppendStat(b, "sizes_status", "error")
		return protocol.AppendStat(b, "sizes_error", "cas_support_disabled")
	}
	return protocol.AppendStat(b, "sizes_status", "enabled")
}

func (s *Server) appendSlabs(b []byte) []byte {
	var active uint64
	for _, cl := range s.store.Classes() {
		p := strconv.Itoa(cl.ID) + ":"
		b = appendStatUint(b, p+"chunk_size", uint64(cl.ChunkSize))
		b = appendStatUint(b, p+"chunks_per_page", uint64(cl.ChunksPerPage))
		b = appendStatUint(b, p+"total_pages", uint64(cl.TotalPages))
		b = appendStatUint(b, p+"total_chunks", uint64(cl.TotalChunks))
		b = appendStatUint(b, p+"used_chunks", uint64(cl.UsedChunks))
		b = appendStatUint(b, p+"free_chunks", uint64(cl.FreeChunks))
		b = appendStatUint(b, p+"free_chunks_end", 0)
		b = appendStatUint(b, p+"get_hits", cl.HitsToHot+cl.HitsToWarm+cl.HitsToCold+cl.HitsToTemp)
		b = appendStatUint(b, p+"cmd_set", cl.CmdSet)
		b = appendStatUint(b, p+"delete_hits", cl.DeleteHits)
		b = appendStatUint(b, p+"incr_hits", cl.IncrHits)
		b = appendStatUint(b, p+"decr_hits", cl.DecrHits)
		b = appendStatUint(b, p+"cas_hits", cl.CasHits)
		b = appendStatUint(b, p+"cas_badval", cl.CasBadval)
		b = appendStatUint(b, p+"touch_hits", cl.TouchHits)
		active++
	}
	b = appendStatUint(b, "active_slabs", active)
	b = appendStatUint(b, "total_malloced", s.store.Stats().TotalMalloced)
	return b
}

func (s *Server) appendItems(b []byte) []byte {
	// memcached shows number_temp while the TEMP LRU is on (not the items
	// left in TEMP after "lru temp_ttl -1" turned it off).
	_, tempOn := s.store.TempTTL()
	// Without the LRU maintainer memcached has one LRU a class and shows
	// none of the segmented LRU's counts.
	maintainer := !s.store.Config().NoLRUMaintainer
	for _, cl := range s.store.Classes() {
		if cl.Items == 0 {
			continue
		}
		p := "items:" + strconv.Itoa(cl.ID) + ":"
		age := uint64(0)
		if cl.OldestAge > 0 {
			age = uint64(cl.OldestAge)
		}
		b = appendStatUint(b, p+"number", uint64(cl.Items))
		if maintainer {
			b = appendStatUint(b, p+"number_hot", uint64(cl.NumberHot))
			b = appendStatUint(b, p+"number_warm", uint64(cl.NumberWarm))
			b = appendStatUint(b, p+"number_cold", uint64(cl.NumberCold))
			if tempOn {
				b = appendStatUint(b, p+"number_temp", uint64(cl.NumberTemp))
			}
			b = appendStatUint(b, p+"age_hot", uint64(max(cl.AgeHot, 0)))
			b = appendStatUint(b, p+"age_warm", uint64(max(cl.AgeWarm, 0)))
		}
		b = appendStatUint(b, p+"age", age)
		b = appendStatUint(b, p+"mem_requested", cl.MemRequested)
		b = appendStatUint(b, p+"evicted", cl.Evicted)
		b = appendStatUint(b, p+"evicted_nonzero", cl.EvictedNonzero)
		b = appendStatUint(b, p+"evicted_time", uint64(max(cl.EvictedTime, 0)))
		b = appendStatUint(b, p+"outofmemory", cl.OutOfMemory)
		b = appendStatUint(b, p+"tailrepairs", 0)
		b = appendStatUint(b, p+"reclaimed", cl.Expired)
		b = appendStatUint(b, p+"expired_unfetched", cl.ExpiredUnfetched)
		b = appendStatUint(b, p+"evicted_unfetched", cl.EvictedUnfetched)
		if maintainer {
			b = appendStatUint(b, p+"evicted_active", cl.EvictedActive)
		}
		b = appendStatUint(b, p+"crawler_reclaimed", cl.CrawlerReclaimed)
		b = appendStatUint(b, p+"crawler_items_checked", cl.CrawlerItemsChecked)
		b = appendStatUint(b, p+"lrutail_reflocked", 0)
		if !maintainer {
			continue
		}
		b = appendStatUint(b, p+"moves_to_cold", cl.MovesToCold)
		b = appendStatUint(b, p+"moves_to_warm", cl.MovesToWarm)
		b = appendStatUint(b, p+"moves_within_lru", cl.MovesWithinLRU)
		b = appendStatUint(b, p+"direct_reclaims", 0)
		b = appendStatUint(b, p+"hits_to_hot", cl.HitsToHot)
		b = appendStatUint(b, p+"hits_to_warm", cl.HitsToWarm)
		b = appendStatUint(b, p+"hits_to_cold", cl.HitsToCold)
		b = appendStatUint(b, p+"hits_to_temp", cl.HitsToTemp)
	}
	return b
}

func (s *Server) appendConns(b []byte) []byte {
	now := s.now()
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	listeners := append([]net.Listener(nil), s.listeners...)
	s.mu.Unlock()
	// memcached lists by file descriptor: listeners first, then clients in
	// the order they connected.
	slices.SortFunc(conns, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	id := 0
	for _, l := range listeners {
		p := strconv.Itoa(id) + ":"
		id++
		b = protocol.AppendStat(b, p+"addr", addrString(l.Addr()))
		b = protocol.AppendStat(b, p+"state", "conn_listening")
		b = appendStatUint(b, p+"secs_since_last_cmd", uint64(max(now-s.started, 0)))
	}
	for _, c := range conns {
		p := strconv.Itoa(id) + ":"
		id++
		s.mu.Lock() // a parking or resuming connection swaps its net.Conn under it
		remote, local := c.nc.RemoteAddr(), c.nc.LocalAddr()
		s.mu.Unlock()
		b = protocol.AppendStat(b, p+"addr", addrString(remote))
		b = protocol.AppendStat(b, p+"listen_addr", addrString(local))
		b = protocol.AppendStat(b, p+"state", "conn_parse_cmd")
		b = appendStatUint(b, p+"secs_since_last_cmd", uint64(max(now-c.lastCmd.Load(), 0)))
	}
	return b
}

// addrString formats an address as memcached does: "tcp:127.0.0.1:11211".
func addrString(a net.Addr) string {
	return a.Network() + ":" + a.String()
}

// appendGoStats is gocached's own "stats go" group: what the Go runtime
// spends on the server, so the claim that item memory costs the garbage
// collector nothing can be checked on a live server.
func appendGoStats(b []byte) []byte {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var maxPause uint64
	for _, p := range ms.PauseNs {
		maxPause = max(maxPause, p)
	}
	b = protocol.AppendStat(b, "go_version", runtime.Version())
	b = appendStatUint(b, "go_goroutines", uint64(runtime.NumGoroutine()))
	b = appendStatUint(b, "go_heap_alloc_bytes", ms.HeapAlloc)
	b = appendStatUint(b, "go_heap_sys_bytes", ms.HeapSys)
	b = appendStatUint(b, "go_heap_released_bytes", ms.HeapReleased)
	b = appendStatUint(b, "go_heap_objects", ms.HeapObjects)
	b = appendStatUint(b, "go_stack_bytes", ms.StackInuse)
	b = appendStatUint(b, "go_sys_bytes", ms.Sys)
	// The runtime's own memory beside the heap: spans, GC metadata and the
	// rest (the netpoller's descriptors among them) are kept for reuse,
	// not returned when connections close.
	b = appendStatUint(b, "go_stack_sys_bytes", ms.StackSys)
	b = appendStatUint(b, "go_mspan_sys_bytes", ms.MSpanSys)
	b = appendStatUint(b, "go_gc_sys_bytes", ms.GCSys)
	b = appendStatUint(b, "go_other_sys_bytes", ms.OtherSys)
	b = appendStatUint(b, "go_gc_count", uint64(ms.NumGC))
	b = appendStatUint(b, "go_gc_pause_last_ns", ms.PauseNs[(ms.NumGC+255)%256])
	b = appendStatUint(b, "go_gc_pause_max_ns", maxPause) // of the last 256
	b = appendStatUint(b, "go_gc_pause_total_ns", ms.PauseTotalNs)
	return b
}
