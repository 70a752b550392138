// Package slab is gocached's item store: item memory in 1 MB pages carved
// into size classes, per-class LRU eviction under a memory budget, lazy
// expiry and CAS. Item bytes and the index hold no Go pointers, so the
// garbage collector's work does not grow with the number of items.
package slab

import "time"

// Clock reports the current time. Tests inject a fake one so expiry can be
// checked without sleeping.
type Clock interface {
	// Now returns the current time in Unix nanoseconds.
	Now() int64
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() int64 { return time.Now().UnixNano() }

// Config configures a Store. The zero value of each field selects
// memcached's default.
type Config struct {
	MemoryLimit      int64   // bytes of item memory (-m); default 64 MiB
	PageSize         int     // slab page size; default 1 MiB
	GrowthFactor     float64 // chunk size growth factor (-f); default 1.25
	MinChunkSize     int     // smallest space for key+value+flags (-n); default 48
	MaxItemSize      int     // largest item, key+value+overhead (-I); default 1 MiB
	DisableEvictions bool    // answer OutOfMemory instead of evicting (-M)
	DisableCAS       bool    // report CAS 0 and skip CAS checks (-C)
	Clock            Clock   // default SystemClock

	// SlabChunkMax (-o slab_chunk_max) is the largest class of unchained
	// chunks; larger items go to the full-page class. It must divide
	// PageSize. Default PageSize/2.
	SlabChunkMax int
	// SlabSizes (-o slab_sizes) replaces the classes the growth factor
	// makes below SlabChunkMax: ascending chunk sizes, each rounded up to
	// a multiple of 8, at most MaxSlabSizes of them, none above
	// SlabChunkMax. Default nil (sizes from GrowthFactor and MinChunkSize).
	SlabSizes []int

	// MemoryFile (-e) maps this file for item memory, so that Persist can
	// save the items for a restart with the same settings (persist.go).
	// "" = item memory from the Go heap.
	MemoryFile string
	// LargePages (-L) asks the kernel for transparent huge pages for item
	// memory (not with MemoryFile).
	LargePages bool

	// Slab rebalancing and the LRU crawler (-o slab_automove, -o
	// lru_crawler...). The zero values are memcached's defaults.
	Automove       int           // -o slab_automove: 0 = default (1); AutomoveDisabled for 0; 1; 2
	NoSlabReassign bool          // -o no_slab_reassign: Reassign answers ReassignDisabled and automove moves nothing; default off
	NoLRUCrawler   bool          // -o no_lru_crawler
	CrawlerSleep   int           // -o lru_crawler_sleep, µs per 1000 items; 0 = default 100
	CrawlerToCrawl int           // -o lru_crawler_tocrawl, items per class per crawl; 0 = all
	Maintenance    time.Duration // background tick (automove, scheduled crawls); 0 = 100ms; < 0 = none

	// Eviction (lru.go). The zero values of the LRU fields are memcached's
	// defaults; any of them set selects EvictionLRU when Eviction is "".
	Eviction        string  // -o eviction: EvictionS3Clock, EvictionLRU, EvictionS3FIFO or EvictionClock; "" = s3clock (lru with an LRU field set)
	NoLRUMaintainer bool    // -o no_lru_maintainer: flat LRU instead of HOT/WARM/COLD
	HotLRUPct       int     // -o hot_lru_pct: % of a class's items in HOT; 0 = 20
	WarmLRUPct      int     // -o warm_lru_pct: % in WARM; 0 = 40 (hot + warm <= 80)
	HotMaxFactor    float64 // -o hot_max_factor: HOT idle limit / COLD tail age; 0 = 0.2
	WarmMaxFactor   float64 // -o warm_max_factor: WARM idle limit / COLD tail age; 0 = 2.0

	// The temporary-TTL LRU (-o temporary_ttl=N, temp.go): with TempLRU,
	// items stored with at most TemporaryTTL seconds left go to a TEMP
	// list that is never evicted; they leave when they expire.
	TempLRU      bool // -o temporary_ttl given; default off
	TemporaryTTL int  // -o temporary_ttl, seconds; 0 without TempLRU = 61 (memcached's default)

	// TrackSizes (-o track_sizes) runs the item size histogram of "stats
	// sizes" from the start (sizes.go); default off ("stats sizes_enable"
	// starts it later).
	TrackSizes bool
	// memcached sets the histogram up as it reads -o track_sizes, so the
	// options after it do not apply to it: TrackSizesItemMax is the -I
	// read before it, which bounds the sizes counted (0 = MaxItemSize);
	// TrackSizesNoItems is set when -C comes after it, as then no item
	// (all of CAS 0) is new enough to count.
	TrackSizesItemMax int
	TrackSizesNoItems bool
}

// AutomoveDisabled as Config.Automove turns automove off (slab_automove=0).
const AutomoveDisabled = -1

// Mode selects a storage command's semantics.
type Mode uint8

// Storage modes, as memcached's set/add/replace/append/prepend/cas.
const (
	ModeSet Mode = iota
	ModeAdd
	ModeReplace
	ModeAppend
	ModePrepend
	ModeCAS
)

// Result is the outcome of a store operation.
type Result uint8

// Results. Their names follow memcached's replies.
const (
	Stored Result = iota
	NotStored
	Exists   // CAS mismatch
	NotFound // missing or expired
	Deleted  // Delete succeeded
	Touched  // Touch succeeded
	TooLarge // item larger than MaxItemSize or than the largest class
	OutOfMemory
	NonNumeric // incr/decr on a value that is not a decimal number
)

// Item is an item's metadata, returned by lookups.
type Item struct {
	Flags      uint32
	Exptime    int64  // absolute Unix seconds; 0 = never expires
	CAS        uint64 // never 0 unless DisableCAS
	LastAccess int64  // Unix seconds of the last access before this one
	Size       int    // value length in bytes
	Fetched    bool   // fetched at least once before this access
	Stale      bool   // marked stale by an invalidation (meta md/ms I)
	Won        bool   // this caller received the recache token (meta W)
	TokenSent  bool   // another caller already holds the recache token (meta Z)
	// Miss is why Get found no live item: MissNone on a hit, else set
	// whenever Get returns false, and on a vivifying miss (meta N), which
	// returns true. It lets the server log memcached's item_get status
	// without a second lookup.
	Miss Miss
}

// Miss is why a lookup found no live item under a key.
type Miss uint8

// Miss reasons, after memcached's item_get statuses.
const (
	MissNone    Miss = iota // a live item was found
	MissAbsent              // no item under the key (not_found)
	MissExpired             // an expired item was there, now removed (expired)
	MissFlushed             // a flushed item was there, now removed (flushed)
)

// GetOptions modify a lookup. A nil *GetOptions is a plain get.
type GetOptions struct {
	Touch         bool  // set Exptime to NewExptime (gat, mg T)
	NewExptime    int64 // absolute Unix seconds, 0 = never, <= now = expired
	NoBump        bool  // do not update LRU position, last access or fetched (mg u: still a get hit)
	Peek          bool  // an internal look (not a client's get): as NoBump, and counts no hit
	Vivify        bool  // on a miss create an empty item (meta N) and win its token
	VivifyExptime int64 // Exptime of a vivified item
	RecacheBelow  int64 // meta R: win the token if the remaining TTL (s) is below this; 0 = off
}

// SetOptions describe a storage command.
type SetOptions struct {
	Mode       Mode
	Flags      uint32
	Exptime    int64  // absolute Unix seconds, 0 = never, <= now = already expired
	CAS        uint64 // ModeCAS, or any mode when nonzero (meta C): compare first
	Invalidate bool   // meta I: a CAS older than the item's stores the item marked stale

	Vivify        bool  // append/prepend: on a miss store the value as a new item (meta ms N)
	VivifyExptime int64 // Exptime of that new item
}

// ArithOptions modify incr/decr.
type ArithOptions struct {
	CAS        uint64 // compare first when nonzero
	Vivify     bool   // create with Initial on a miss (meta ma N)
	Initial    uint64 // initial value of a vivified counter
	Exptime    int64  // Exptime of a vivified counter
	Touch      bool   // set Exptime to NewExptime on a hit (meta ma T)
	NewExptime int64
}

// Stats are the store's counters, named after memcached's stats.
type Stats struct {
	CurrItems                     uint64
	TotalItems                    uint64
	Bytes                         uint64 // bytes used by live items (key+value+header)
	LimitMaxbytes                 uint64
	TotalMalloced                 uint64 // bytes of pages handed out
	Evictions                     uint64
	Reclaimed                     uint64 // expired items whose memory was reused
	ExpiredUnfetched              uint64
	EvictedUnfetched              uint64
	EvictedActive                 uint64
	CasMisses, CasHits, CasBadval uint64
	TouchHits, TouchMisses        uint64
	IncrHits, IncrMisses          uint64
	DecrHits, DecrMisses          uint64
	DeleteHits, DeleteMisses      uint64
	GetExpired, GetFlushed        uint64
	OutOfMemory                   uint64
	SlabsMoved                    uint64
	SlabGlobalPagePool            uint64 // pages in the global pool
	SlabReassignRescues           uint64 // items copied off a page being moved
	SlabReassignEvictionsNomem    uint64 // live items evicted to empty a page
	SlabReassignInlineReclaim     uint64 // dead items reclaimed while emptying a page
	SlabReassignBusyItems         uint64 // items skipped (stripe busy) and retried
	SlabReassignRunning           bool
	LRUCrawlerRunning             bool
	LRUCrawlerStarts              uint64
	CrawlerReclaimed              uint64
	CrawlerItemsChecked           uint64
	HashPowerLevel                uint64
	HashBytes                     uint64
}

// ClassStats describe one slab class, for "stats slabs" and "stats items".
type ClassStats struct {
	ID             int
	ChunkSize      int
	ChunksPerPage  int
	TotalPages     int
	TotalChunks    int
	UsedChunks     int
	FreeChunks     int
	Items          int // live items in the class
	MemRequested   uint64
	Evicted        uint64
	EvictedNonzero uint64
	EvictedTime    int64  // seconds since last access of the last evicted item
	Expired        uint64 // "reclaimed"
	OutOfMemory    uint64
	OldestAge      int64 // seconds since the COLD tail was accessed ("age")

	CrawlerReclaimed    uint64
	CrawlerItemsChecked uint64
	ExpiredUnfetched    uint64
	EvictedUnfetched    uint64
	EvictedActive       uint64 // evicted while marked active (S3-FIFO: read)

	// The LRU lists (stats items). With S3-FIFO, HOT is the small FIFO
	// and COLD the main one; with the flat LRU every item is in COLD.
	NumberHot, NumberWarm, NumberCold int
	AgeHot, AgeWarm                   int64  // seconds since the list's tail was accessed
	MovesToCold                       uint64 // HOT/WARM -> COLD (S3-FIFO: small -> main)
	MovesToWarm                       uint64 // active HOT or COLD item -> WARM
	MovesWithinLRU                    uint64 // active WARM tail -> WARM head (S3-FIFO: main reinsertions)
	HitsToHot, HitsToWarm, HitsToCold uint64 // get hits by list
	HitsToTemp                        uint64 // get hits on TEMP items
	NumberTemp                        int    // items in the TEMP LRU (temporary_ttl)

	// Commands by class, as memcached's "stats slabs": each counts in the
	// class of the item it acted on. Get hits are the HitsTo* sum; a get
	// that touches (gat, mg T) is a TouchHit, not a get hit.
	CmdSet     uint64 // storage commands, in the class their new item has (stored or not)
	DeleteHits uint64 // deleted items (not md I, which keeps the item)
	IncrHits   uint64 // incremented items (numeric values, CAS matched)
	DecrHits   uint64 // decremented items
	CasHits    uint64 // CAS matches, in the class of the replaced item
	CasBadval  uint64 // CAS mismatches (cas command, or a CAS given to set/replace)
	TouchHits  uint64 // touched items: touch, gat/gats, mg T, binary touch/gat
}
