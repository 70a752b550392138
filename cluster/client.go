package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// ErrNodeDown marks an error caused by the node owning the key being
// unreachable (refused, reset, timed out, garbled reply), as opposed to an
// answer from a healthy node such as memcache.ErrCacheMiss. Test for it with
// errors.Is; the concrete error is a *NodeError. Callers of a cache usually
// treat it like a miss and go to the source of truth, which is what
// GetOrLoad does.
var ErrNodeDown = errors.New("cluster: node down")

// NodeError is returned when a node fails an operation. errors.Is(err,
// ErrNodeDown) holds for it, and errors.Is/As also reach the network error.
type NodeError struct {
	// Addr is the node that failed.
	Addr net.Addr
	// Ejected is true when this failure took the node out of rotation.
	Ejected bool
	// Err is the underlying error.
	Err error
}

func (e *NodeError) Error() string {
	s := fmt.Sprintf("cluster: node %s down: %v", e.Addr, e.Err)
	if e.Ejected {
		s += " (ejected)"
	}
	return s
}

// Unwrap exposes both ErrNodeDown and the cause.
func (e *NodeError) Unwrap() []error { return []error{ErrNodeDown, e.Err} }

// Options configures a Client. The zero value gives twemproxy's defaults,
// ketama placement for Dial, one copy of each key and re-resolution every
// 10 s.
type Options struct {
	// FailureLimit is how many consecutive failed operations eject a node
	// (twemproxy server_failure_limit). 0 means DefaultFailureLimit.
	FailureLimit int
	// RetryTimeout is how long an ejected node stays out before it is tried
	// again (twemproxy server_retry_timeout). 0 means DefaultRetryTimeout.
	RetryTimeout time.Duration
	// NoEject turns ejection off (twemproxy auto_eject_hosts: false): a dead
	// node's keys then fail instead of moving, which keeps every client's
	// view identical at the cost of availability.
	NoEject bool
	// ProbeInterval, when > 0, runs a background probe that sends `version`
	// to ejected nodes whose RetryTimeout has passed and re-admits them only
	// when they answer, so requests never see a still-dead node again. When
	// 0, a node is re-admitted lazily on the first request after
	// RetryTimeout (twemproxy's way) and one more failure ejects it again.
	ProbeInterval time.Duration
	// Timeout is the per-operation socket timeout; it is also what bounds
	// the cost of a frozen node. 0 means memcache.DefaultTimeout.
	Timeout time.Duration
	// MaxIdleConns is kept per node; 0 means memcache.DefaultMaxIdleConns.
	MaxIdleConns int
	// DialContext, when set, opens every connection to a node (and to an
	// "ecdisc+" endpoint): use a tls.Dialer's for TLS, or a net.Dialer
	// with its own Resolver. nil means a net.Dialer with Timeout.
	DialContext func(ctx context.Context, network, address string) (net.Conn, error)
	// TTLJitter shortens each TTL set by GetOrLoad/WriteThrough by a random
	// fraction in [0, TTLJitter), so keys loaded together do not expire
	// together and stampede the backend. 0 means 0.1; negative disables.
	TTLJitter float64

	// Replicas is how many distinct nodes hold each key: the first Replicas
	// live nodes in the key's ring order. Writes go to all of them, reads
	// to the first that answers, deletes to all. 0 or 1 means one copy (no
	// replication); it is capped at the number of nodes. See the README
	// for the consistency this gives and what it costs.
	Replicas int

	// The fields below are used by Dial only.

	// Distribution is Dial's placement; the default is Ketama.
	Distribution Distribution
	// KeyHash is the key hash of Dial's ketama continuum. The zero value is
	// HashMD5, libmemcached's ketama; twemproxy's default is HashFNV1a64.
	KeyHash KeyHash
	// ResolveInterval is how often Dial's names are looked up again. 0
	// means DefaultResolveInterval (10 s); negative resolves only at Dial.
	ResolveInterval time.Duration
	// ResolveTimeout bounds one round of lookups. 0 means 5 s.
	ResolveTimeout time.Duration
	// Resolver does the DNS lookups of "dns+" and "dnssrv+" names (and of
	// an "ecdisc+" endpoint's host). nil means net.DefaultResolver; tests
	// pass a *net.Resolver whose Dial reaches a DNS server of their own.
	Resolver Resolver
	// Identify, when set, names each node found through a "dns+" name's
	// A/AAAA records (which are addresses, and change when a container is
	// replaced) with a stable identity: ketama places the node's points by
	// it and jump orders nodes by it, so a node that comes back under a new
	// address with its cache restored (-e) keeps its keys. It could ask
	// reverse DNS or the node itself. An error fails that name's lookup,
	// which keeps its last good node list. nil: the address is the identity.
	Identify func(ctx context.Context, addr string) (string, error)
	// Logger receives failed lookups (Warn) and membership changes (Info).
	// nil means slog.Default().
	Logger *slog.Logger
}

// Client is a sharded memcached client with failover. It routes each key
// through its Selector, talks to each node with its own gomemcache client
// (so a failure is charged to exactly the node that produced it) and ejects
// nodes that keep failing. A Client made by Dial also follows its nodes'
// names as they change. It is safe for concurrent use.
type Client struct {
	// ring is swapped whole when discovery changes the membership, so an
	// operation routes and talks to one consistent set of nodes.
	ring     atomic.Pointer[ring]
	opt      Options
	replicas int
	jitter   float64
	flight   flight
	disc     *discovery // nil for New

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// ring is one membership: a selector, its ejection state and one
// gomemcache client per node, indexed like sel.Nodes().
type ring struct {
	sel   Selector
	h     *health
	nodes []*memcache.Client
}

// New returns a Client over sel. It configures sel's ejection state, so a
// selector should be used by one Client.
func New(sel Selector, opt Options) *Client {
	c := newClient(opt)
	r := &ring{sel: sel, h: sel.health()}
	c.configureHealth(r.h)
	for _, a := range sel.Nodes() {
		r.nodes = append(r.nodes, c.newNodeClient(a))
	}
	c.ring.Store(r)
	c.startProbe()
	return c
}

func newClient(opt Options) *Client {
	c := &Client{opt: opt, jitter: opt.TTLJitter, replicas: max(opt.Replicas, 1), stop: make(chan struct{})}
	if c.jitter == 0 {
		c.jitter = 0.1
	}
	return c
}

func (c *Client) startProbe() {
	if c.opt.ProbeInterval > 0 {
		c.wg.Add(1)
		go c.tick(c.opt.ProbeInterval, c.probe)
	}
}

// configureHealth applies the ejection options to a ring's health state.
func (c *Client) configureHealth(h *health) {
	limit := c.opt.FailureLimit
	if limit <= 0 {
		limit = DefaultFailureLimit
	}
	if c.opt.NoEject {
		limit = 1 << 30
	}
	retry := c.opt.RetryTimeout
	if retry <= 0 {
		retry = DefaultRetryTimeout
	}
	h.limit.Store(int32(limit))
	h.retry.Store(int64(retry))
	h.lazy.Store(c.opt.ProbeInterval <= 0)
}

func (c *Client) newNodeClient(a net.Addr) *memcache.Client {
	mc := memcache.NewFromSelector(singleNode{a})
	mc.Timeout = c.opt.Timeout
	mc.MaxIdleConns = c.opt.MaxIdleConns
	mc.DialContext = c.opt.DialContext
	return mc
}

// Close stops the background probe and re-resolution and closes idle
// connections.
func (c *Client) Close() error {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
	for _, n := range c.ring.Load().nodes {
		_ = n.Close()
	}
	if c.disc != nil {
		c.disc.closeRetired()
	}
	return nil
}

// Selector returns the selector the client routes with now. A Client made
// by Dial replaces it when the membership changes.
func (c *Client) Selector() Selector { return c.ring.Load().sel }

// Node returns the node key is routed to now (its first replica).
func (c *Client) Node(key string) (net.Addr, error) { return c.ring.Load().sel.PickServer(key) }

// Replicas returns the nodes holding key now, in the order reads try them:
// Options.Replicas live nodes (fewer when fewer are live).
func (c *Client) Replicas(key string) ([]net.Addr, error) {
	r := c.ring.Load()
	idx, err := r.targets(key, c.replicas, nil)
	if err != nil {
		return nil, err
	}
	out := make([]net.Addr, len(idx))
	for j, i := range idx {
		out[j] = r.sel.Nodes()[i]
	}
	return out, nil
}

// Ejected returns the nodes currently out of rotation.
func (c *Client) Ejected() []net.Addr {
	r := c.ring.Load()
	var out []net.Addr
	for i, a := range r.sel.Nodes() {
		if r.h.ejected(i) {
			out = append(out, a)
		}
	}
	return out
}

// isNodeFailure tells a broken node from a healthy node's answer. Only
// connection-level trouble counts, as in twemproxy: a miss, a failed CAS or
// a SERVER_ERROR (e.g. out of memory) come from a node that works.
func isNodeFailure(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, memcache.ErrCacheMiss),
		errors.Is(err, memcache.ErrCASConflict),
		errors.Is(err, memcache.ErrNotStored),
		errors.Is(err, memcache.ErrMalformedKey),
		errors.Is(err, memcache.ErrServerError),
		errors.Is(err, memcache.ErrNoStats):
		return false
	}
	return true
}

// observe records the outcome of an operation on node i and wraps node
// failures.
func (r *ring) observe(i int, err error) error {
	if !isNodeFailure(err) {
		r.h.success(i)
		return err
	}
	ej := r.h.failure(i)
	return &NodeError{Addr: r.sel.Nodes()[i], Ejected: ej, Err: err}
}

// targets appends to dst the nodes key is stored on now: its first n live
// nodes in ring order (with n = 1, the node Pick chooses).
func (r *ring) targets(key string, n int, dst []int) ([]int, error) {
	if n <= 1 {
		i, err := r.sel.Pick(key)
		if err != nil {
			return dst, err
		}
		return append(dst, i), nil
	}
	dst = r.sel.replicas(key, n, dst)
	if len(dst) == 0 {
		return dst, ErrNoLiveNodes
	}
	return dst, nil
}

// first runs fn on key's replicas in order until one answers (anything
// but a node failure) and returns that answer and the node that gave it;
// when none answers, the first failure.
func (c *Client) first(key string, fn func(*memcache.Client) error) (*ring, []int, int, error) {
	r := c.ring.Load()
	var buf [4]int
	idx, err := r.targets(key, c.replicas, buf[:0])
	if err != nil {
		return r, nil, -1, err
	}
	var failed error
	for j, i := range idx {
		err := r.observe(i, fn(r.nodes[i]))
		if !errors.Is(err, ErrNodeDown) {
			return r, idx, j, err
		}
		if failed == nil {
			failed = err
		}
	}
	return r, idx, -1, failed
}

// read runs fn on the first of key's replicas that answers.
func (c *Client) read(key string, fn func(*memcache.Client) error) error {
	_, _, _, err := c.first(key, fn)
	return err
}

// all runs fn on every replica of key at once and returns the answer of
// the first replica (in ring order) that answered, or the first failure
// when none did. Each replica's fn call gets its own index so results can
// be kept apart.
func (c *Client) all(key string, fn func(j int, mc *memcache.Client) error) error {
	r := c.ring.Load()
	var buf [4]int
	idx, err := r.targets(key, c.replicas, buf[:0])
	if err != nil {
		return err
	}
	if len(idx) == 1 {
		return r.observe(idx[0], fn(0, r.nodes[idx[0]]))
	}
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for j, i := range idx[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[j+1] = r.observe(i, fn(j+1, r.nodes[i]))
		}()
	}
	errs[0] = r.observe(idx[0], fn(0, r.nodes[idx[0]]))
	wg.Wait()
	return firstAnswer(errs)
}

// firstAnswer picks the first result that is not a node failure, else the
// first failure.
func firstAnswer(errs []error) error {
	for _, err := range errs {
		if !errors.Is(err, ErrNodeDown) {
			return err
		}
	}
	return errs[0]
}

// conditional runs a conditional store (add, replace, cas) on the first
// replica that answers, which decides the outcome; when it stored the item
// the other replicas get a plain set of it so they converge on the value.
func (c *Client) conditional(item *memcache.Item, fn func(*memcache.Client) error) error {
	r, idx, j, err := c.first(item.Key, fn)
	if err != nil || len(idx) <= 1 {
		return err
	}
	c.copyTo(r, idx, j, func(mc *memcache.Client) error { return mc.Set(item) })
	return nil
}

// copyTo runs fn on every replica in idx but the j-th, in parallel; their
// failures only count against the nodes (the caller already has its answer).
func (c *Client) copyTo(r *ring, idx []int, j int, fn func(*memcache.Client) error) {
	var wg sync.WaitGroup
	for k, i := range idx {
		if k == j {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.observe(i, fn(r.nodes[i]))
		}()
	}
	wg.Wait()
}

// Get fetches key from the first of its replicas that answers. A miss is
// memcache.ErrCacheMiss; an unreachable owner is a *NodeError
// (ErrNodeDown); with every node ejected it is ErrNoLiveNodes.
func (c *Client) Get(key string) (*memcache.Item, error) {
	var it *memcache.Item
	err := c.read(key, func(mc *memcache.Client) (err error) {
		it, err = mc.Get(key)
		return err
	})
	return it, err
}

// GetAndTouch fetches key and sets its expiration (memcached's gat) on the
// first replica that answers, then touches the other replicas.
func (c *Client) GetAndTouch(key string, expiration int32) (*memcache.Item, error) {
	var it *memcache.Item
	r, idx, j, err := c.first(key, func(mc *memcache.Client) (err error) {
		it, err = mc.GetAndTouch(key, expiration)
		return err
	})
	if err == nil && len(idx) > 1 {
		c.copyTo(r, idx, j, func(mc *memcache.Client) error { return mc.Touch(key, expiration) })
	}
	return it, err
}

// GetMulti fetches keys from all their nodes in parallel. Misses are simply
// absent from the map. With replicas, the keys of a node that fails are
// asked of their next replica. When some keys could not be fetched from any
// replica, the items found are still returned, with the first error.
func (c *Client) GetMulti(keys []string) (map[string]*memcache.Item, error) {
	r := c.ring.Load()
	out := make(map[string]*memcache.Item, len(keys))
	// routes[k] lists key k's replicas; next[k] is the one to ask now.
	routes := make([][]int, len(keys))
	next := make([]int, len(keys))
	pending := make([]int, len(keys))
	for k, key := range keys {
		idx, err := r.targets(key, c.replicas, nil)
		if err != nil {
			return nil, err
		}
		routes[k] = idx
		pending[k] = k
	}
	var first error
	for len(pending) > 0 {
		byNode := map[int][]int{}
		for _, k := range pending {
			i := routes[k][next[k]]
			byNode[i] = append(byNode[i], k)
		}
		var (
			mu     sync.Mutex
			failed []int
			wg     sync.WaitGroup
		)
		for i, ks := range byNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				names := make([]string, len(ks))
				for j, k := range ks {
					names[j] = keys[k]
				}
				m, err := r.nodes[i].GetMulti(names)
				err = r.observe(i, err)
				mu.Lock()
				defer mu.Unlock()
				maps.Copy(out, m)
				if err == nil {
					return
				}
				if first == nil {
					first = err
				}
				if errors.Is(err, ErrNodeDown) {
					failed = append(failed, ks...)
				}
			}()
		}
		wg.Wait()
		pending = pending[:0]
		for _, k := range failed {
			if next[k]++; next[k] < len(routes[k]) {
				pending = append(pending, k)
			}
		}
	}
	if first != nil && len(out) == len(keys) {
		first = nil // every key was found after all
	}
	return out, first
}

// Set stores item on every replica of its key.
func (c *Client) Set(item *memcache.Item) error {
	return c.all(item.Key, func(_ int, mc *memcache.Client) error { return mc.Set(item) })
}

// Add stores item only if its key is absent (memcache.ErrNotStored if
// not). The first replica that answers decides; the others then get the
// item too.
func (c *Client) Add(item *memcache.Item) error {
	return c.conditional(item, func(mc *memcache.Client) error { return mc.Add(item) })
}

// Replace stores item only if its key is present (memcache.ErrNotStored if
// not). The first replica that answers decides; the others then get the
// item too.
func (c *Client) Replace(item *memcache.Item) error {
	return c.conditional(item, func(mc *memcache.Client) error { return mc.Replace(item) })
}

// CompareAndSwap stores item only if it is unchanged since item was read
// (memcache.ErrCASConflict if it changed, ErrCacheMiss if it is gone). The
// CAS token belongs to the node item was read from, which is the first
// replica that answers; the others then get the item too.
func (c *Client) CompareAndSwap(item *memcache.Item) error {
	return c.conditional(item, func(mc *memcache.Client) error { return mc.CompareAndSwap(item) })
}

// Append appends item's value to the existing value on every replica
// (memcache.ErrNotStored where the key is absent).
func (c *Client) Append(item *memcache.Item) error {
	return c.all(item.Key, func(_ int, mc *memcache.Client) error { return mc.Append(item) })
}

// Prepend prepends item's value to the existing value on every replica.
func (c *Client) Prepend(item *memcache.Item) error {
	return c.all(item.Key, func(_ int, mc *memcache.Client) error { return mc.Prepend(item) })
}

// Increment adds delta to key's decimal value on every replica and returns
// the new value of the first replica that answered.
func (c *Client) Increment(key string, delta uint64) (uint64, error) {
	return c.incrDecr(key, func(mc *memcache.Client) (uint64, error) { return mc.Increment(key, delta) })
}

// Decrement subtracts delta (stopping at 0) from key's value on every
// replica and returns the new value of the first replica that answered.
func (c *Client) Decrement(key string, delta uint64) (uint64, error) {
	return c.incrDecr(key, func(mc *memcache.Client) (uint64, error) { return mc.Decrement(key, delta) })
}

func (c *Client) incrDecr(key string, fn func(*memcache.Client) (uint64, error)) (uint64, error) {
	var vals [4]uint64
	var more []uint64
	if c.replicas > len(vals) {
		more = make([]uint64, c.replicas)
	}
	var got int = -1
	var mu sync.Mutex
	err := c.all(key, func(j int, mc *memcache.Client) error {
		v, err := fn(mc)
		if err == nil {
			mu.Lock()
			if more != nil {
				more[j] = v
			} else {
				vals[j] = v
			}
			if got < 0 || j < got {
				got = j
			}
			mu.Unlock()
		}
		return err
	})
	if err != nil || got < 0 {
		return 0, err
	}
	if more != nil {
		return more[got], nil
	}
	return vals[got], nil
}

// Delete removes key from every replica; a key no replica had is
// memcache.ErrCacheMiss.
func (c *Client) Delete(key string) error {
	var deleted atomic.Bool
	err := c.all(key, func(_ int, mc *memcache.Client) error {
		err := mc.Delete(key)
		if err == nil {
			deleted.Store(true)
		}
		return err
	})
	if deleted.Load() {
		return nil
	}
	return err
}

// Touch updates key's expiration in seconds (memcached conventions) on
// every replica.
func (c *Client) Touch(key string, seconds int32) error {
	return c.all(key, func(_ int, mc *memcache.Client) error { return mc.Touch(key, seconds) })
}

// DeleteAll deletes every item on every node (flush_all on each; gomemcache
// spells it this way too).
func (c *Client) DeleteAll() error {
	return c.every(func(mc *memcache.Client) error { return mc.DeleteAll() })
}

// FlushAll is DeleteAll: flush_all on every node.
func (c *Client) FlushAll() error {
	return c.every(func(mc *memcache.Client) error { return mc.FlushAll() })
}

// Ping checks that every node answers; the error names each node that does
// not.
func (c *Client) Ping() error {
	return c.every(func(mc *memcache.Client) error { return mc.Ping() })
}

// every runs fn on all nodes of the ring in parallel, ejected ones too,
// and joins their errors.
func (c *Client) every(fn func(*memcache.Client) error) error {
	r := c.ring.Load()
	if len(r.nodes) == 0 {
		return ErrNoLiveNodes
	}
	errs := make([]error, len(r.nodes))
	var wg sync.WaitGroup
	for i, mc := range r.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.observe(i, fn(mc))
			if err != nil && !errors.Is(err, ErrNodeDown) {
				err = fmt.Errorf("cluster: node %s: %w", r.sel.Nodes()[i], err)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// probe re-admits ejected nodes once they answer `version` again.
func (c *Client) probe() {
	r := c.ring.Load()
	for i, mc := range r.nodes {
		if !r.h.due(i) {
			continue
		}
		if mc.Ping() == nil {
			r.h.readmit(i)
		} else {
			r.h.extend(i)
		}
	}
}

// tick runs fn every d until the client closes; the caller has counted
// it in c.wg.
func (c *Client) tick(d time.Duration, fn func()) {
	defer c.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			fn()
		}
	}
}

// singleNode is a one-address memcache.ServerSelector. memcache.New would
// resolve the name once at construction and silently keep an empty list if
// that failed; this defers resolution to each dial.
type singleNode struct{ addr net.Addr }

func (s singleNode) PickServer(string) (net.Addr, error) { return s.addr, nil }
func (s singleNode) Each(f func(net.Addr) error) error   { return f(s.addr) }
