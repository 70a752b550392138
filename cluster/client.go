package cluster

import (
	"errors"
	"fmt"
	"net"
	"sync"
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

// Options configures a Client. The zero value gives twemproxy's defaults.
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
	// TTLJitter shortens each TTL set by GetOrLoad/WriteThrough by a random
	// fraction in [0, TTLJitter), so keys loaded together do not expire
	// together and stampede the backend. 0 means 0.1; negative disables.
	TTLJitter float64
}

// Client is a sharded memcached client with failover. It routes each key
// through its Selector, talks to each node with its own gomemcache client
// (so a failure is charged to exactly the node that produced it) and ejects
// nodes that keep failing. It is safe for concurrent use.
type Client struct {
	sel    Selector
	h      *health
	nodes  []*memcache.Client
	jitter float64
	flight flight

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// New returns a Client over sel. It configures sel's ejection state, so a
// selector should be used by one Client.
func New(sel Selector, opt Options) *Client {
	c := &Client{sel: sel, h: sel.health(), jitter: opt.TTLJitter, stop: make(chan struct{})}
	if c.jitter == 0 {
		c.jitter = 0.1
	}
	limit := opt.FailureLimit
	if limit <= 0 {
		limit = DefaultFailureLimit
	}
	if opt.NoEject {
		limit = 1 << 30
	}
	retry := opt.RetryTimeout
	if retry <= 0 {
		retry = DefaultRetryTimeout
	}
	c.h.limit.Store(int32(limit))
	c.h.retry.Store(int64(retry))
	c.h.lazy.Store(opt.ProbeInterval <= 0)
	for _, a := range sel.Nodes() {
		mc := memcache.NewFromSelector(singleNode{a})
		mc.Timeout = opt.Timeout
		mc.MaxIdleConns = opt.MaxIdleConns
		c.nodes = append(c.nodes, mc)
	}
	if opt.ProbeInterval > 0 {
		c.wg.Add(1)
		go c.probe(opt.ProbeInterval)
	}
	return c
}

// Close stops the background probe and closes idle connections.
func (c *Client) Close() error {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
	for _, n := range c.nodes {
		_ = n.Close()
	}
	return nil
}

// Selector returns the selector the client routes with.
func (c *Client) Selector() Selector { return c.sel }

// Node returns the node key is routed to now.
func (c *Client) Node(key string) (net.Addr, error) { return c.sel.PickServer(key) }

// Ejected returns the nodes currently out of rotation.
func (c *Client) Ejected() []net.Addr {
	var out []net.Addr
	for i, a := range c.sel.Nodes() {
		if c.h.ejected(i) {
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
func (c *Client) observe(i int, err error) error {
	if !isNodeFailure(err) {
		c.h.success(i)
		return err
	}
	ej := c.h.failure(i)
	return &NodeError{Addr: c.sel.Nodes()[i], Ejected: ej, Err: err}
}

func (c *Client) do(key string, fn func(*memcache.Client) error) error {
	i, err := c.sel.Pick(key)
	if err != nil {
		return err
	}
	return c.observe(i, fn(c.nodes[i]))
}

// Get fetches key. A miss is memcache.ErrCacheMiss; an unreachable owner is
// a *NodeError (ErrNodeDown); with every node ejected it is ErrNoLiveNodes.
func (c *Client) Get(key string) (*memcache.Item, error) {
	var it *memcache.Item
	err := c.do(key, func(mc *memcache.Client) (err error) {
		it, err = mc.Get(key)
		return err
	})
	return it, err
}

// GetMulti fetches keys from all their nodes in parallel. Misses are simply
// absent from the map. When some nodes fail, the items from the others are
// still returned together with the first error.
func (c *Client) GetMulti(keys []string) (map[string]*memcache.Item, error) {
	byNode := map[int][]string{}
	for _, k := range keys {
		i, err := c.sel.Pick(k)
		if err != nil {
			return nil, err
		}
		byNode[i] = append(byNode[i], k)
	}
	var (
		mu    sync.Mutex
		out   = make(map[string]*memcache.Item, len(keys))
		first error
		wg    sync.WaitGroup
	)
	for i, ks := range byNode {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := c.nodes[i].GetMulti(ks)
			err = c.observe(i, err)
			mu.Lock()
			defer mu.Unlock()
			for k, v := range m {
				out[k] = v
			}
			if err != nil && first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	return out, first
}

// Set stores item on its key's node.
func (c *Client) Set(item *memcache.Item) error {
	return c.do(item.Key, func(mc *memcache.Client) error { return mc.Set(item) })
}

// Add stores item only if its key is absent (memcache.ErrNotStored if not).
func (c *Client) Add(item *memcache.Item) error {
	return c.do(item.Key, func(mc *memcache.Client) error { return mc.Add(item) })
}

// Delete removes key; a missing key is memcache.ErrCacheMiss.
func (c *Client) Delete(key string) error {
	return c.do(key, func(mc *memcache.Client) error { return mc.Delete(key) })
}

// Touch updates key's expiration in seconds (memcached conventions).
func (c *Client) Touch(key string, seconds int32) error {
	return c.do(key, func(mc *memcache.Client) error { return mc.Touch(key, seconds) })
}

// probe re-admits ejected nodes once they answer `version` again.
func (c *Client) probe(every time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		for i, mc := range c.nodes {
			if !c.h.due(i) {
				continue
			}
			if mc.Ping() == nil {
				c.h.readmit(i)
			} else {
				c.h.extend(i)
			}
		}
	}
}

// singleNode is a one-address memcache.ServerSelector. memcache.New would
// resolve the name once at construction and silently keep an empty list if
// that failed; this defers resolution to each dial.
type singleNode struct{ addr net.Addr }

func (s singleNode) PickServer(string) (net.Addr, error) { return s.addr, nil }
func (s singleNode) Each(f func(net.Addr) error) error   { return f(s.addr) }
