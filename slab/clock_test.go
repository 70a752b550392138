package slab

import (
	"testing"
	"time"
)

// TestCoarseClockKeepsTimeAsleep: the coarse clock goes to sleep when it
// is read rarely (coarseIdleAfter) and wakes when reads come often; asleep
// or awake, a reading is never more than a couple of ticks behind the
// system clock, nor ahead of it.
func TestCoarseClockKeepsTimeAsleep(t *testing.T) {
	var c CoarseClock
	check := func(phase string) {
		t.Helper()
		before := time.Now().UnixNano()
		got := c.Now()
		after := time.Now().UnixNano()
		if got < before-int64(3*coarseResolution) || got > after {
			t.Fatalf("%s: reading %d outside [%d, %d]", phase, got, before-int64(3*coarseResolution), after)
		}
	}
	check("first")
	// Rare reads, as an idle server's maintenance makes: the ticker sleeps
	// at the end of a whole window of them.
	slept := false
	for i := 0; i < 25; i++ {
		time.Sleep(coarseIdleAfter / 10)
		check("rare reads")
		slept = slept || coarseAsleep.Load()
	}
	if !slept {
		t.Fatal("the clock never slept under reads every 100 ms")
	}
	// A burst of reads in distinct milliseconds wakes it.
	for i := 0; i < 50; i++ {
		time.Sleep(time.Millisecond)
		check("busy reads")
	}
	time.Sleep(2 * coarseResolution)
	if coarseAsleep.Load() {
		t.Fatal("the clock still sleeps after 50 reads in distinct milliseconds")
	}
}
