package slab

// The temporary-TTL LRU (memcached's -o temporary_ttl, "lru temp_ttl").
// When it is on, an item whose remaining TTL at link time is at most
// temporary_ttl seconds goes to its class's TEMP list instead of HOT (or
// COLD): eviction never looks at TEMP, reads never move its items, and
// they leave only when they expire (or are flushed, deleted, replaced or
// evicted by a page move). Expired TEMP items are reclaimed from the
// list's tail by the maintenance goroutine (memcached's LRU maintainer),
// by the LRU crawler, and by an allocation that found nothing to evict. A
// class whose memory is all TEMP items answers OutOfMemory, as memcached
// does ("SERVER_ERROR out of memory storing object").

// tempOn is set in Store.temp when the TEMP LRU is on; the low 32 bits
// hold temporary_ttl. One word, so the store path pays a single atomic
// load for both.
const tempOn = 1 << 32

// defaultTempTTL is memcached's temporary_ttl default, shown by "stats
// settings" even while the TEMP LRU is off.
const defaultTempTTL = 61

// tempReclaimMax bounds the TEMP items one class reclaims per maintenance
// tick (memcached's LRU maintainer pulls at most 500 per juggle).
const tempReclaimMax = 500

// initTemp applies cfg's temporary-TTL settings.
func (s *Store) initTemp(cfg *Config) {
	if !cfg.TempLRU && cfg.TemporaryTTL == 0 {
		cfg.TemporaryTTL = defaultTempTTL
	}
	s.SetTempTTL(cfg.TemporaryTTL, cfg.TempLRU)
}

// SetTempTTL sets temporary_ttl and turns the TEMP LRU on or off, as
// memcached's "lru temp_ttl" (a negative TTL there turns it off, keeping
// the old value). It applies to items stored from now on; items already
// in TEMP stay there until they expire.
func (s *Store) SetTempTTL(ttl int, on bool) {
	v := uint64(uint32(ttl))
	if on {
		v |= tempOn
	}
	s.temp.Store(v)
}

// TempTTL returns temporary_ttl and whether the TEMP LRU is on (stats
// settings temporary_ttl and temp_lru).
func (s *Store) TempTTL() (ttl int, on bool) {
	v := s.temp.Load()
	return int(int32(uint32(v))), v&tempOn != 0
}

// isTemp reports whether a new item expiring at exp goes to TEMP. The
// arithmetic is memcached's, unsigned: "exptime - current_time <=
// temporary_ttl", so an item already expired is not TEMP, and one that
// never expires (exp 0) is not either.
func (s *Store) isTemp(exp, now uint32) bool {
	v := s.temp.Load()
	return v&tempOn != 0 && exp != 0 && exp-now <= uint32(v)
}

// reclaimTemp frees up to limit dead items from the tail of c's TEMP list
// (reclaimDeadTail). c.mu held.
func (s *Store) reclaimTemp(c *class, held int, now uint32, fseq uint64, limit int) int {
	return s.reclaimDeadTail(c, segTemp, held, now, fseq, limit)
}
