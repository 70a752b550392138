package cluster

import (
	"sync/atomic"
	"time"
)

// Defaults follow twemproxy's server_failure_limit and server_retry_timeout
// so operators moving from nutcracker get the behaviour they know.
const (
	// DefaultFailureLimit is how many consecutive failures eject a node.
	DefaultFailureLimit = 2
	// DefaultRetryTimeout is how long an ejected node stays out.
	DefaultRetryTimeout = 30 * time.Second
)

// nodeHealth is one node's ejection state. It is lock-free because it is
// read on every key lookup.
type nodeHealth struct {
	fails     atomic.Int32 // consecutive failures
	until     atomic.Int64 // unix nanos until which the node is ejected; 0 = admitted
	probation atomic.Bool  // re-admitted lazily: the next failure ejects again
}

// health tracks which nodes a selector may route to. A selector always has
// one; it only changes state when a Client reports results, so a selector
// used directly with memcache.NewFromSelector never ejects anything.
type health struct {
	nodes []nodeHealth
	limit atomic.Int32
	retry atomic.Int64 // nanoseconds
	// lazy re-admits a node on the first lookup after its RetryTimeout
	// (twemproxy's behaviour). When a Client runs a background probe it
	// turns lazy off so that only a successful probe re-admits the node and
	// requests never pay for discovering that it is still dead.
	lazy atomic.Bool
	now  func() time.Time
}

func newHealth(n int) *health {
	h := &health{nodes: make([]nodeHealth, n), now: time.Now}
	h.limit.Store(DefaultFailureLimit)
	h.retry.Store(int64(DefaultRetryTimeout))
	h.lazy.Store(true)
	return h
}

// alive reports whether node i may receive keys now, lazily re-admitting it
// when its retry timeout has passed.
func (h *health) alive(i int) bool {
	n := &h.nodes[i]
	u := n.until.Load()
	if u == 0 {
		return true
	}
	if !h.lazy.Load() || h.now().UnixNano() < u {
		return false
	}
	if n.until.CompareAndSwap(u, 0) {
		n.fails.Store(0)
		n.probation.Store(true)
	}
	return true
}

// failure records a failed operation on node i and reports whether this
// failure ejected it.
func (h *health) failure(i int) bool {
	n := &h.nodes[i]
	if n.until.Load() != 0 {
		return false
	}
	f := n.fails.Add(1)
	if f < h.limit.Load() && !n.probation.Load() {
		return false
	}
	if !n.until.CompareAndSwap(0, h.now().Add(time.Duration(h.retry.Load())).UnixNano()) {
		return false
	}
	n.fails.Store(0)
	n.probation.Store(false)
	return true
}

// success records a successful round trip to node i, which resets its run
// of consecutive failures.
func (h *health) success(i int) {
	n := &h.nodes[i]
	if n.fails.Load() != 0 {
		n.fails.Store(0)
	}
	if n.probation.Load() {
		n.probation.Store(false)
	}
}

// readmit puts node i back at once (a probe saw it answer).
func (h *health) readmit(i int) {
	n := &h.nodes[i]
	n.fails.Store(0)
	n.probation.Store(false)
	n.until.Store(0)
}

// extend keeps node i out for another retry period (a probe failed).
func (h *health) extend(i int) {
	h.nodes[i].until.Store(h.now().Add(time.Duration(h.retry.Load())).UnixNano())
}

// due reports whether node i is ejected and its retry time has come, i.e.
// whether a probe should check it.
func (h *health) due(i int) bool {
	u := h.nodes[i].until.Load()
	return u != 0 && h.now().UnixNano() >= u
}

// ejected reports whether node i is currently out, without re-admitting it.
func (h *health) ejected(i int) bool {
	u := h.nodes[i].until.Load()
	return u != 0 && (!h.lazy.Load() || h.now().UnixNano() < u)
}

// copyNode gives node i the ejection state node j has in from, so a node
// that stays through a membership change keeps its failure count and
// ejection.
func (h *health) copyNode(i int, from *health, j int) {
	src, dst := &from.nodes[j], &h.nodes[i]
	dst.fails.Store(src.fails.Load())
	dst.until.Store(src.until.Load())
	dst.probation.Store(src.probation.Load())
}
