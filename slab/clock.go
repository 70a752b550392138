package slab

import (
	"sync"
	"sync/atomic"
	"time"
)

// coarseResolution is how often CoarseClock's reading advances. Expiry has
// one-second granularity in memcached's protocol, so a few milliseconds of
// staleness is invisible to clients.
const coarseResolution = 5 * time.Millisecond

// coarseIdleAfter is the window after which a clock read in fewer than
// one tick in coarseBusyShare goes to sleep, so an idle server does not
// wake 200 times a second (the store's maintenance reads it every 100 ms:
// one tick in 20); readers then read the system clock until they come
// often enough to wake it.
const (
	coarseIdleAfter = time.Second
	coarseBusyShare = 10
)

var (
	coarseNow  atomic.Int64
	coarseOnce sync.Once
	// coarseRead is set by readers and cleared by the ticker: a tick
	// that finds it clear counts toward sleeping.
	coarseRead atomic.Bool
	// coarseAsleep is set while the ticker sleeps; coarseWake wakes it.
	coarseAsleep atomic.Bool
	coarseWake   = make(chan struct{}, 1)
	// coarseWindow (ns), coarseLastMs and coarseMillis count the
	// milliseconds in which a sleeping clock was read.
	coarseWindow atomic.Int64
	coarseLastMs atomic.Int64
	coarseMillis atomic.Int32
)

// A sleeping clock wakes when it is read in more than coarseWakeMillis
// distinct milliseconds within coarseWakeWindow: a server taking requests
// again.
const (
	coarseWakeMillis = 3
	coarseWakeWindow = 100 * time.Millisecond
)

// CoarseClock is the wall clock read from a value that one background
// goroutine refreshes every few milliseconds, as memcached keeps its own
// current_time. Reading the system clock costs 50–100 ns on virtual
// machines, more than a whole get on the hot path.
type CoarseClock struct{}

// Now implements Clock.
func (CoarseClock) Now() int64 {
	coarseOnce.Do(startCoarseClock)
	if coarseAsleep.Load() {
		// The reading may be old: read the real clock. Reads in more than
		// coarseWakeMillis distinct milliseconds of a coarseWakeWindow
		// wake the ticker for the readers after them; the store's
		// maintenance, a burst of reads every 100 ms, leaves it asleep.
		// (Races between readers only blur the count.)
		now := time.Now().UnixNano()
		if now-coarseWindow.Load() > int64(coarseWakeWindow) {
			coarseWindow.Store(now)
			coarseMillis.Store(0)
		}
		if ms := now / int64(time.Millisecond); coarseLastMs.Swap(ms) != ms && coarseMillis.Add(1) > coarseWakeMillis {
			select {
			case coarseWake <- struct{}{}:
			default:
			}
		}
		advanceCoarse(now)
		return now
	}
	if !coarseRead.Load() { // a load, not a store, on every call: no shared cache line written
		coarseRead.Store(true)
	}
	return coarseNow.Load()
}

func startCoarseClock() {
	coarseNow.Store(time.Now().UnixNano())
	go func() {
		t := time.NewTicker(coarseResolution)
		ticks, read := 0, 0 // in the current window of coarseIdleAfter
		for now := range t.C {
			advanceCoarse(now.UnixNano())
			if coarseRead.Swap(false) {
				read++
			}
			if ticks++; time.Duration(ticks)*coarseResolution < coarseIdleAfter {
				continue
			}
			busy := read >= ticks/coarseBusyShare
			ticks, read = 0, 0
			if busy {
				continue
			}
			t.Stop()
			coarseAsleep.Store(true)
			<-coarseWake
			advanceCoarse(time.Now().UnixNano())
			coarseAsleep.Store(false)
			t.Reset(coarseResolution)
		}
	}()
}

// advanceCoarse moves the reading forward to ns, never back: readers of a
// sleeping clock and the ticker store concurrently.
func advanceCoarse(ns int64) {
	for {
		cur := coarseNow.Load()
		if ns <= cur || coarseNow.CompareAndSwap(cur, ns) {
			return
		}
	}
}
