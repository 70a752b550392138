//go:build race

package slab

// The race detector watches only Go heap memory: under it item pages stay
// on the heap, so races on item bytes are still found.
const offHeapPages = false
