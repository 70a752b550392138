//go:build !linux

package server

import "net"

// idleSet is a stub where idle connections cannot give their goroutines
// back (no epoll): they keep them.
type idleSet struct{}

const canParkIdle = false

func (s *idleSet) add(*conn) bool { return false }
func (s *idleSet) remove(*conn)   {}
func (s *idleSet) close()         {}
func (s *idleSet) shrink()        {}

func peerGone(int32) bool { return false }

// Connections never park here, so they are never detached.
func (c *conn) detach() bool  { return false }
func (c *conn) attach() bool  { return true }
func detachedFD(net.Conn) int { return -1 }
