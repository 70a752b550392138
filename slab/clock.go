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

var (
	coarseNow  atomic.Int64
	coarseOnce sync.Once
)

// CoarseClock is the wall clock read from a value that one background
// goroutine refreshes every few milliseconds, as memcached keeps its own
// current_time. Reading the system clock costs 50–100 ns on virtual
// machines, more than a whole get on the hot path.
type CoarseClock struct{}

// Now implements Clock.
func (CoarseClock) Now() int64 {
	coarseOnce.Do(startCoarseClock)
	return coarseNow.Load()
}

func startCoarseClock() {
	coarseNow.Store(time.Now().UnixNano())
	go func() {
		t := time.NewTicker(coarseResolution)
		for now := range t.C {
			coarseNow.Store(now.UnixNano())
		}
	}()
}
