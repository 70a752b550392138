package slab

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Warm restart (Config.MemoryFile, memcached's -e): the pages are slices
// of one file mapped MAP_SHARED, so the item bytes outlive the process.
// Persist, called once the server has stopped, msyncs the mapping and
// writes a metadata file next to it (path + ".meta"): the configuration
// fingerprint, the counters (CAS sequence, flush sequence, pending flush),
// the page table (each page's class) and each class's LRU lists as chunk
// handles, head to tail. New with the same path and configuration maps the
// file again, rebuilds the index and the LRU lists from those handles
// (every item carries its full key), drops the items that expired or were
// flushed meanwhile, and puts every other chunk on its class's free list.
//
// The LRU lists are saved rather than found by scanning the pages because
// a scan cannot tell the head chunk of an item larger than a page from a
// continuation chunk holding raw value bytes; they also keep the LRU order.
// Every saved handle is checked against the page table and the item's
// layout before use, so a damaged metadata file loses items, not memory
// safety.
//
// New deletes the metadata file once read: a process that then crashes
// (rather than being stopped through Persist) restarts empty, as memcached
// does. Times need no adjustment: items store absolute Unix seconds.

// metaMagic starts a metadata file (version 1).
const metaMagic = "GOCMETA\x01"

// memFile is the mapped item memory of Config.MemoryFile.
type memFile struct {
	path    string
	f       *os.File
	data    []byte // slots pages
	slots   int
	restore RestoreInfo
}

// RestoreInfo describes how a Store with a memory file started.
type RestoreInfo struct {
	Restored bool      // items were restored from the memory file
	Items    int       // items restored
	Dropped  int       // saved items dropped: expired, flushed or invalid
	SavedAt  time.Time // when Persist wrote the metadata (when restored)
	Reason   string    // why the store started empty ("" when restored)
}

// Restore reports how the store started: restored from Config.MemoryFile
// or empty, and why. The zero value without a memory file.
func (s *Store) Restore() RestoreInfo {
	if s.mem == nil {
		return RestoreInfo{}
	}
	return s.mem.restore
}

// fingerprint names the settings a memory file's contents depend on: a
// restart with any of them changed starts empty.
func (s *Store) fingerprint(slots int) string {
	sizes := make([]int, len(s.classes))
	for i, c := range s.classes {
		sizes[i] = c.size
	}
	// layout names the item layout (item.go): version 3 has a slack byte, links after
	// the key, and none under CLOCK.
	return fmt.Sprintf("layout=3 eviction=%s m=%d I=%d f=%g n=%d page=%d slots=%d classes=%v",
		s.cfg.Eviction, s.cfg.MemoryLimit, s.cfg.MaxItemSize, s.cfg.GrowthFactor, s.cfg.MinChunkSize,
		s.pageSize, slots, sizes)
}

// savedMeta is a parsed metadata file.
type savedMeta struct {
	fp                string
	savedAt           int64
	cas, fseq         uint64
	flushAt           int64
	cls               []uint8 // class index of pages 1..n
	lists             [][nSegs][]uint32
	fileSize, nclsLst int
}

// openMemoryFile maps cfg.MemoryFile and restores its items when a valid
// metadata file for the same configuration is found. It runs in New
// before any other goroutine sees the store.
func (s *Store) openMemoryFile() error {
	path := s.cfg.MemoryFile
	ps := int64(s.pageSize)
	slots := int64(len(s.classes)) + (s.cfg.MemoryLimit+ps-1)/ps
	slots = min(slots, int64(s.maxPages), math.MaxInt/ps)
	size := slots * ps
	fp := s.fingerprint(int(slots))

	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("slab: memory file: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return fmt.Errorf("slab: memory file %s is in use: %w", path, err)
	}
	metaPath := path + ".meta"
	md, reason := readMeta(metaPath)
	// Once read, the metadata no longer describes the file: the store
	// changes it from now on.
	if err := os.Remove(metaPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		f.Close()
		return fmt.Errorf("slab: memory file metadata: %w", err)
	}
	if md != nil {
		fi, err := f.Stat()
		switch {
		case err != nil:
			reason = err.Error()
		case md.fp != fp:
			reason = fmt.Sprintf("settings changed (saved %s; now %s)", md.fp, fp)
		case fi.Size() != size:
			reason = fmt.Sprintf("memory file is %d bytes, expected %d", fi.Size(), size)
		}
		if reason != "" {
			md = nil
		}
	}
	if md == nil {
		// Start empty: drop the old contents (the file stays sparse).
		if err := f.Truncate(0); err == nil {
			err = f.Truncate(size)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("slab: memory file: %w", err)
		}
	}
	data, err := mmapFile(f, int(size))
	if err != nil {
		f.Close()
		return fmt.Errorf("slab: memory file: mmap %s: %w", path, err)
	}
	s.mem = &memFile{path: path, f: f, data: data, slots: int(slots)}
	if md == nil {
		s.mem.restore.Reason = reason
		return nil
	}
	s.restoreFrom(md)
	return nil
}

// memPage returns the memory of page pg (1-based) from the mapped file,
// or nil when the file has no room for it.
func (s *Store) memPage(pg int) []byte {
	if pg < 1 || pg > s.mem.slots {
		return nil
	}
	off := (pg - 1) * s.pageSize
	return s.mem.data[off : off+s.pageSize : off+s.pageSize]
}

// readMeta reads and checks a metadata file. It returns nil and the
// reason when there is none or it is unusable.
func readMeta(path string) (*savedMeta, string) {
	buf, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "no metadata file " + path + " (not stopped with SIGUSR1?)"
	}
	if err != nil {
		return nil, err.Error()
	}
	bad := func(what string) (*savedMeta, string) {
		return nil, "metadata file " + path + " is invalid: " + what
	}
	if len(buf) < len(metaMagic)+4 || string(buf[:len(metaMagic)]) != metaMagic {
		return bad("bad magic")
	}
	body, sum := buf[:len(buf)-4], le.Uint32(buf[len(buf)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return bad("checksum mismatch")
	}
	r := metaReader{b: body[len(metaMagic):]}
	md := &savedMeta{}
	md.fp = string(r.bytes(int(r.u32())))
	md.savedAt = int64(r.u64())
	md.cas = r.u64()
	md.fseq = r.u64()
	md.flushAt = int64(r.u64())
	md.cls = r.bytes(int(r.u32()))
	ncls := int(r.u32())
	if ncls > maxClassesTotal {
		return bad("too many classes")
	}
	md.lists = make([][nSegs][]uint32, ncls)
	for ci := range md.lists {
		for seg := range nSegs {
			n := int(r.u32())
			if n > len(r.b)/4 {
				r.err = true
				break
			}
			hs := make([]uint32, n)
			for i := range hs {
				hs[i] = r.u32()
			}
			md.lists[ci][seg] = hs
		}
	}
	if r.err || len(r.b) != 0 {
		return bad("truncated or trailing bytes")
	}
	return md, ""
}

// metaReader decodes a metadata file; a short read sets err.
type metaReader struct {
	b   []byte
	err bool
}

func (r *metaReader) bytes(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.err = true
		r.b = nil
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *metaReader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return le.Uint32(b)
	}
	return 0
}

func (r *metaReader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return le.Uint64(b)
	}
	return 0
}

// Persist saves the store for a warm restart (Config.MemoryFile): it
// flushes the mapped item memory to the file and writes the metadata
// file. Call it once the server has stopped taking requests, as the last
// use of the store: the next New with the same file and settings gets the
// items back. Persist releases the file's lock (taken by New, so that two
// stores cannot share a file); changes made after it are not saved, and a
// process stopped without it restarts empty.
func (s *Store) Persist() error {
	if s.mem == nil {
		return errors.New("slab: no memory file configured")
	}
	// Quiesce: every lock in the documented order, so the LRU lists, the
	// page table and the item bytes are consistent.
	for _, c := range s.classes {
		c.walkMu.Lock()
		defer c.walkMu.Unlock()
	}
	for i := range s.stripes {
		s.stripes[i].mu.Lock()
		defer s.stripes[i].mu.Unlock()
	}
	for _, c := range s.classes {
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	s.pageMu.Lock()
	defer s.pageMu.Unlock()

	pt := s.pt.Load()
	var buf bytes.Buffer
	buf.WriteString(metaMagic)
	w32 := func(v uint32) { buf.Write(le.AppendUint32(nil, v)) }
	w64 := func(v uint64) { buf.Write(le.AppendUint64(nil, v)) }
	fp := s.fingerprint(s.mem.slots)
	w32(uint32(len(fp)))
	buf.WriteString(fp)
	w64(uint64(s.clock.Now()))
	w64(s.cas.Load())
	w64(s.flushSeq.Load())
	w64(uint64(s.flushAt.Load()))
	w32(uint32(len(pt.cls) - 1))
	buf.Write(pt.cls[1:])
	w32(uint32(len(s.classes)))
	for _, c := range s.classes {
		for seg := range nSegs {
			if !c.links {
				w32(0) // no lists: restore finds the items in the pages
				continue
			}
			// TEMP items are saved after COLD's, keeping the file format;
			// the restore puts them back in TEMP by their segment bits.
			lists := []int{seg}
			if seg == segCold {
				lists = append(lists, segTemp)
			}
			total := 0
			for _, ls := range lists {
				total += c.lru[ls].n
			}
			w32(uint32(total))
			for _, ls := range lists {
				l := &c.lru[ls]
				n := 0
				for h := l.head; h != 0 && n < l.n; h = lruNext(s.chunk(h)) {
					w32(h)
					n++
				}
				if n != l.n {
					return fmt.Errorf("slab: persist: class %d list %d holds %d items, counted %d", c.id, ls, n, l.n)
				}
			}
		}
	}
	w32(crc32.ChecksumIEEE(buf.Bytes()))

	if err := msync(s.mem.data); err != nil {
		return fmt.Errorf("slab: persist: msync: %w", err)
	}
	if err := s.mem.f.Sync(); err != nil {
		return fmt.Errorf("slab: persist: %w", err)
	}
	if err := writeFileAtomic(s.mem.path+".meta", buf.Bytes()); err != nil {
		return err
	}
	// The file is handed over to the next process: release the lock, so a
	// restart need not wait for this process to exit.
	return unlockFile(s.mem.f)
}

// writeFileAtomic writes data to path through a synced temporary file
// renamed over it.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("slab: persist: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("slab: persist: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync() //nolint:errcheck // best effort: the rename is done
		d.Close()
	}
	return nil
}

// restoreFrom rebuilds the store from saved metadata whose fingerprint
// matches. Single-threaded (from New).
func (s *Store) restoreFrom(md *savedMeta) {
	info := &s.mem.restore
	n := len(md.cls)
	if n > s.mem.slots || len(md.lists) != len(s.classes) {
		info.Reason = "metadata does not fit the memory file"
		return
	}
	pages := make([][]byte, n+1)
	cls := make([]uint8, n+1)
	for pg := 1; pg <= n; pg++ {
		ci := md.cls[pg-1]
		if ci != poolClass && int(ci) >= len(s.classes) {
			info.Reason = fmt.Sprintf("metadata names class index %d for page %d", ci, pg)
			return
		}
		pages[pg], cls[pg] = s.memPage(pg), ci
	}
	s.pt.Store(&pageTable{pages: pages, cls: cls})
	s.npages.Store(int64(n))
	s.cas.Store(md.cas)
	s.flushSeq.Store(md.fseq)
	s.flushAt.Store(md.flushAt)
	info.Restored = true
	info.SavedAt = time.Unix(0, md.savedAt)

	// used[pg] marks the chunks of page pg held by restored items.
	used := make([][]uint64, n+1)
	for pg := 1; pg <= n; pg++ {
		if cls[pg] != poolClass {
			used[pg] = make([]uint64, (s.classes[cls[pg]].perPage+63)/64)
		}
	}
	isUsed := func(h uint32) bool {
		i := h & s.chunkMask
		return used[h>>s.chunkBits][i/64]&(1<<(i%64)) != 0
	}
	mark := func(h uint32) {
		i := h & s.chunkMask
		used[h>>s.chunkBits][i/64] |= 1 << (i % 64)
	}
	// valid reports whether h is a chunk of class index ci not yet used.
	valid := func(h uint32, ci int) bool {
		pg := int(h >> s.chunkBits)
		return pg >= 1 && pg <= n && int(cls[pg]) == ci &&
			int(h&s.chunkMask) < s.classes[ci].perPage && !isUsed(h)
	}

	now, fseq := s.now()
	last := len(s.classes) - 1
	// restoreItem links the saved item h of class index ci into list to
	// and the index, unless it is implausible, dead or a duplicate.
	restoreItem := func(c *class, ci int, h uint32, to int) {
		if !valid(h, ci) {
			info.Dropped++
			return
		}
		b := s.chunk(h)
		l, ok := s.checkItem(b, c)
		if !ok || dead(b, now, fseq) != alive {
			info.Dropped++
			return
		}
		for j := 1; j < l.nchunks; j++ {
			ch := chainHandle(b, l, j)
			if !valid(ch, last) {
				info.Dropped++
				return
			}
			for k := 1; k < j; k++ {
				if chainHandle(b, l, k) == ch {
					info.Dropped++
					return
				}
			}
		}
		key := itemKey(b)
		st, _, tag := s.stripeFor(key)
		if pos, _ := s.find(st, tag, key); pos >= 0 {
			info.Dropped++ // a duplicate: keep the first (most recent list position)
			return
		}
		mark(h)
		for j := 1; j < l.nchunks; j++ {
			mark(chainHandle(b, l, j))
		}
		if to == segCold && itemSeg(b) == segTemp {
			to = segTemp // saved after COLD's items
		}
		s.listPush(c, to, h, b)
		c.items++
		c.bytes += uint64(l.total)
		c.used += l.nchunks
		st.insert(tag, h)
		st.ctr.totalItems++
		info.Items++
	}
	for ci, c := range s.classes {
		if !c.links {
			// CLOCK keeps no lists: every item-looking chunk of the
			// class's pages is a candidate.
			for pg := 1; pg <= n; pg++ {
				if int(cls[pg]) != ci {
					continue
				}
				for i := range c.perPage {
					h := uint32(pg)<<s.chunkBits | uint32(i)
					if isItem(s.chunk(h)) {
						restoreItem(c, ci, h, segCold)
					}
				}
			}
			continue
		}
		for seg := range nSegs {
			hs := md.lists[ci][seg]
			to := seg
			if s.s3 && seg == segWarm {
				to = segCold
			}
			for i := len(hs) - 1; i >= 0; i-- { // tail first
				restoreItem(c, ci, hs[i], to)
			}
		}
	}

	// Every other chunk is free; pool pages return to the pool.
	for pg := 1; pg <= n; pg++ {
		if cls[pg] == poolClass {
			s.pool = append(s.pool, uint32(pg))
			continue
		}
		c := s.classes[cls[pg]]
		c.pages++
		for i := c.perPage - 1; i >= 0; i-- {
			h := uint32(pg)<<s.chunkBits | uint32(i)
			if isUsed(h) {
				continue
			}
			markFree(s.chunk(h), c.free)
			c.free = h
			c.nfree++
		}
	}
	s.poolLen.Store(int64(len(s.pool)))
}

// checkItem reports whether chunk b of class c holds a plausible item
// head for that class, and its layout.
func (s *Store) checkItem(b []byte, c *class) (layout, bool) {
	nkey := int(b[offNkey])
	off := hdrSize + nkey // where a length past 16 bits is
	if nkey > maxKeyLen || off > len(b) ||
		b[offSlack] == slackExt && off+4 > len(b) {
		return layout{}, false
	}
	l := s.readLayout(b)
	if l.nchunks == 1 {
		return l, l.total <= len(b) && s.classFor(l) == c
	}
	return l, c == s.classes[len(s.classes)-1] && l.valOff <= len(b) &&
		l.vlen <= maxItemSizeHard
}

// closeMemoryFile unmaps the memory file and releases its lock. The store
// must not be used afterwards (tests: the process exits otherwise).
func (s *Store) closeMemoryFile() error {
	s.Close()
	err := munmap(s.mem.data)
	if cerr := s.mem.f.Close(); err == nil {
		err = cerr
	}
	return err
}
