package server

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// writeGate lets the poller run while connections write large replies.
//
// Why: Go's scheduler asks the poller for ready connections only when its
// run queues are empty (or from its monitor thread, every 10 ms). Writers
// that merely yield between turns (runtime.Gosched) stay in the run queue,
// so while a few hundred connections fill their sockets with megabyte
// replies a normal client's request, though it has arrived, is not even
// seen for tens of milliseconds. Every gateInterval a writer instead parks
// at the gate, and so does every other writer at the start of its next
// turn; with the queues empty the scheduler polls, and the gate's own
// goroutine, woken by a byte in a pipe through that same poll, lets the
// writers go on behind whatever requests the poll found. memcached gets the
// same from libevent: each epoll_wait serves every ready connection once.
type writeGate struct {
	once    sync.Once
	r, w    *os.File     // the pipe; nil if it could not be made (then: Gosched)
	last    atomic.Int64 // when the gate last opened, ns since start
	start   time.Time
	pending atomic.Bool // a byte is in the pipe and writers wait
	// contending counts connections whose write has yielded at least once
	// and neither completed nor waits for its socket (conn.yieldWrite).
	contending atomic.Int32

	mu      sync.Mutex
	waiters []chan struct{}
	spare   []chan struct{}
	closed  bool
}

// gateInterval is how long writers go on yielding to each other only,
// without letting the poller run: about the longest a request that has
// arrived waits behind large replies being written. Measured with 200
// clients that pipeline 1 MB gets and never read (gocached-bench values,
// nonreading; memcached's p99 0.19-0.35 ms and its longest wait about
// 90-160 ms in the same runs), a normal client's p99 was 1.1 ms at 1 ms,
// 0.45-0.49 ms at 250 µs and 0.43 ms at 100 µs with 256 KB turns, and
// with contended turns of 32 KB (connio.go) 0.34-0.48 ms at 250 µs and
// 0.28-0.34 ms at 100 µs, its longest wait 1.3-3.5 ms. Writers that do
// not take turns never meet the gate.
const gateInterval = 100 * time.Microsecond

// init makes the pipe and starts the gate's goroutine.
func (g *writeGate) init() {
	g.start = time.Now()
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	g.r, g.w = r, w
	go g.run()
}

// now is the time since the gate started, in ns.
func (g *writeGate) now() int64 { return int64(time.Since(g.start)) }

// yield ends a write turn of a connection with more to write: usually a
// Gosched; a wait at the gate when gateInterval has passed since it last
// opened, or when another writer already waits there. ch is the
// connection's wake-up channel (buffered, 1).
func (g *writeGate) yield(ch chan struct{}) {
	g.once.Do(g.init)
	if g.w == nil {
		runtime.Gosched()
		return
	}
	if !g.due() {
		runtime.Gosched()
	}
	// Writers released by the gate, or back from Gosched, check again:
	// once one waits, the others stop at the start of their next turn,
	// and the run queue empties for the poller.
	for g.due() && g.wait(ch) {
	}
}

// turnMax is how many bytes a connection writes before it yields: short
// turns while two or more writers take turns (connio.go, Write turns).
func (g *writeGate) turnMax() int {
	if g.contending.Load() >= 2 {
		return contendedTurn
	}
	return writeTurnMax
}

// callMax is the most bytes one write system call is given, likewise.
func (g *writeGate) callMax() int {
	if g.contending.Load() >= 2 {
		return contendedTurn
	}
	return writeCallMax
}

// due reports whether writers should wait at the gate.
func (g *writeGate) due() bool {
	return g.pending.Load() || g.now()-g.last.Load() >= int64(gateInterval)
}

// waitPending waits at the gate if a writer already waits there: a
// connection about to start writing a large reply checks it first.
func (g *writeGate) waitPending(ch chan struct{}) {
	for g.pending.Load() && g.wait(ch) {
	}
}

// wait waits for the gate to open; false if it is closed.
func (g *writeGate) wait(ch chan struct{}) bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.waiters = append(g.waiters, ch)
	if !g.pending.Load() {
		g.pending.Store(true)
		if _, err := g.w.Write([]byte{0}); err != nil {
			g.closeLocked()
		}
	}
	g.mu.Unlock()
	<-ch
	return true
}

// run opens the gate each time the poller finds the pipe's byte.
func (g *writeGate) run() {
	var b [16]byte
	for {
		if _, err := g.r.Read(b[:]); err != nil {
			g.mu.Lock()
			g.closeLocked()
			g.mu.Unlock()
			return
		}
		// The requests the same poll found run first: they went to the run
		// queue, this goroutine goes behind them.
		runtime.Gosched()
		g.mu.Lock()
		ws := g.waiters
		g.waiters, g.spare = g.spare[:0], nil
		g.pending.Store(false)
		g.last.Store(g.now())
		g.mu.Unlock()
		for i, ch := range ws {
			ch <- struct{}{}
			ws[i] = nil
		}
		g.mu.Lock()
		g.spare = ws[:0]
		g.mu.Unlock()
	}
}

// closeLocked releases every writer for good. mu held.
func (g *writeGate) closeLocked() {
	g.closed = true
	for _, ch := range g.waiters {
		ch <- struct{}{}
	}
	g.waiters = nil
	g.pending.Store(false)
}

// close stops the gate (the server is shutting down): writers no longer
// wait at it.
func (g *writeGate) close() {
	g.once.Do(func() {}) // a gate never used stays unmade
	if g.w != nil {
		g.w.Close()
	}
}
