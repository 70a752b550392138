package slab

import "runtime"

// Item pages live outside the Go heap, in anonymous memory mapped in
// arenas of arenaPages pages (Linux; elsewhere, and in race-detector
// builds, which see only heap memory, they are ordinary heap slices).
// Why: the garbage collector lets the heap grow to twice what is live
// before it collects. With -m of pages on the heap, a server whose
// connections come and go (each leaves a few KB of garbage) would grow
// towards twice -m; off the heap, the collector's goal follows the few MB
// of live Go objects. The kernel backs arena memory only as pages are
// first written, so an arena larger than what is used costs address space,
// not memory. Arenas are unmapped when the store is garbage-collected
// (tests create many); a running server keeps its pages, as memcached does.

// arenaPages is how many pages one mapping holds.
const arenaPages = 64

// arenas hands out page memory. Its fields are guarded by Store.pageMu
// (release runs only once the store, and so every caller, is gone).
type arenas struct {
	huge bool     // advise transparent huge pages (-L)
	free []byte   // the unused rest of the newest arena
	all  [][]byte // every arena, to unmap
}

// newArenas returns the page source of a store; it unmaps the arenas once
// owner is unreachable.
func newArenas(owner *Store, huge bool) *arenas {
	a := &arenas{huge: huge}
	runtime.AddCleanup(owner, (*arenas).release, a)
	return a
}

// page returns size bytes of zeroed memory. pageMu held.
func (a *arenas) page(size int) []byte {
	if offHeapPages && len(a.free) < size {
		if m, err := mmapAnon(size * arenaPages); err == nil {
			if a.huge {
				adviseHuge(m)
			}
			a.all = append(a.all, m)
			a.free = m
		}
	}
	if len(a.free) < size {
		return make([]byte, size) // no mapping: the heap
	}
	p := a.free[:size:size]
	a.free = a.free[size:]
	return p
}

// release unmaps every arena (the store is gone).
func (a *arenas) release() {
	for _, m := range a.all {
		munmap(m) //nolint:errcheck // nothing to do about it
	}
	a.all, a.free = nil, nil
}
