//go:build !race

package slab

const offHeapPages = mmapAnonSupported
