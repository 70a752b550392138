package server

import "github.com/gocached/gocached/slab"

// Persist saves the item store for a warm restart (-e, memcached's
// restartable cache: SIGUSR1). Call it after Shutdown; it fails when no
// memory file is configured.
func (s *Server) Persist() error { return s.store.Persist() }

// Restore reports whether the store's items were restored from the memory
// file at startup, or why it started empty.
func (s *Server) Restore() slab.RestoreInfo { return s.store.Restore() }
