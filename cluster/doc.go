// Package cluster is gocached's client-side sharding library: memcached
// nodes never talk to each other, so the client alone decides which node
// owns a key. It builds on github.com/bradfitz/gomemcache.
//
// Two placements are offered, both usable as a plain
// memcache.ServerSelector (memcache.NewFromSelector(sel)):
//
//   - JumpSelector: Google's jump consistent hash. Perfectly balanced and
//     tiny, but nodes can only be added or removed at the end of the list.
//   - KetamaSelector: the MD5 ketama continuum exactly as libmemcached
//     (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED) and twemproxy
//     (distribution: ketama) build it, so a Go service agrees with PHP/C
//     clients or a twemproxy in front of the same nodes on every key.
//
// Client wraps a selector with twemproxy-style auto ejection: a node that
// fails FailureLimit times in a row is taken out for RetryTimeout, its keys
// go to a deterministic fallback node, and the other nodes' keys stay put.
// It has gomemcache's whole API, can keep each key on Options.Replicas
// nodes, and GetOrLoad and WriteThrough implement the lazy-loading and
// write-through cache patterns on top of it.
//
// Dial builds a Client from node names that it keeps resolving: literal
// addresses, "dns+" (A/AAAA), "dnssrv+" (SRV) and "ecdisc+" (ElastiCache
// auto discovery), swapping the selector atomically when the nodes change.
package cluster
