package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// Loader fetches a key's value from the source of truth on a cache miss.
type Loader func(ctx context.Context, key string) ([]byte, error)

// GetOrLoad is the lazy-loading (cache-aside) pattern: return key from the
// cache, or on a miss call load, store the result with ttl (shortened by the
// client's TTL jitter) and return it.
//
// Concurrent misses for the same key in this process share one load
// (single-flight), so a stampede on a hot key costs the backend one query.
// The load runs detached from any single caller's cancellation, so one
// impatient caller does not fail the others; each caller still stops
// waiting when its own ctx ends.
//
// A down cache node is treated like a miss: the value is loaded and
// returned, and the cache write is skipped or lands on the fallback node.
// The returned slice may be shared with other callers; do not modify it.
func (c *Client) GetOrLoad(ctx context.Context, key string, ttl time.Duration, load Loader) ([]byte, error) {
	it, err := c.Get(key)
	if err == nil {
		return it.Value, nil
	}
	if !cacheUnavailable(err) {
		return nil, err
	}
	return c.flight.do(ctx, key, func() ([]byte, error) {
		// Another caller's load may have filled the key between our miss
		// and our turn as leader; re-check so it is not loaded twice.
		if it, err := c.Get(key); err == nil {
			return it.Value, nil
		}
		v, err := load(context.WithoutCancel(ctx), key)
		if err != nil {
			return nil, err
		}
		_ = c.Set(&memcache.Item{Key: key, Value: v, Expiration: c.expiration(ttl)})
		return v, nil
	})
}

// WriteThrough is the write-through pattern: save value to the source of
// truth first, then to the cache, so the cache never holds a value the
// source rejected. If the cache write fails the key is deleted (best
// effort) so a stale copy is not served, and the cache error is returned:
// the source is updated even then, so do not blindly retry save on it.
func (c *Client) WriteThrough(ctx context.Context, key string, value []byte, ttl time.Duration,
	save func(ctx context.Context, key string, value []byte) error) error {
	if err := save(ctx, key, value); err != nil {
		return err
	}
	if err := c.Set(&memcache.Item{Key: key, Value: value, Expiration: c.expiration(ttl)}); err != nil {
		_ = c.Delete(key)
		return err
	}
	return nil
}

// cacheUnavailable reports whether err means "no usable cached value" as
// opposed to a caller error such as a malformed key.
func cacheUnavailable(err error) bool {
	return errors.Is(err, memcache.ErrCacheMiss) || errors.Is(err, ErrNodeDown) || errors.Is(err, ErrNoLiveNodes)
}

// maxRelativeTTL is memcached's limit: larger expirations are read as an
// absolute unix time.
const maxRelativeTTL = 30 * 24 * time.Hour

// expiration converts ttl to memcached's expiration field, applying jitter.
// Jitter only shortens the TTL because the caller's TTL is a staleness
// bound.
func (c *Client) expiration(ttl time.Duration) int32 {
	if ttl <= 0 {
		return 0
	}
	if c.jitter > 0 {
		ttl -= time.Duration(rand.Float64() * c.jitter * float64(ttl))
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	if time.Duration(secs)*time.Second > maxRelativeTTL {
		return int32(time.Now().Unix() + secs)
	}
	return int32(secs)
}

// flight is a minimal per-key single-flight group (golang.org/x/sync is not
// a dependency of this module).
type flight struct {
	mu    sync.Mutex
	calls map[string]*flightCall
}

type flightCall struct {
	done chan struct{}
	val  []byte
	err  error
}

// do runs fn once for all concurrent callers with the same key. fn runs in
// its own goroutine so every caller, the first included, can give up on its
// ctx without abandoning the others.
func (f *flight) do(ctx context.Context, key string, fn func() ([]byte, error)) ([]byte, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]*flightCall{}
	}
	call, ok := f.calls[key]
	if !ok {
		call = &flightCall{done: make(chan struct{})}
		f.calls[key] = call
		go func() {
			defer func() {
				if r := recover(); r != nil {
					call.err = fmt.Errorf("cluster: loader for %q panicked: %v", key, r)
				}
				f.mu.Lock()
				delete(f.calls, key)
				f.mu.Unlock()
				close(call.done)
			}()
			call.val, call.err = fn()
		}()
	}
	f.mu.Unlock()
	select {
	case <-call.done:
		return call.val, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
