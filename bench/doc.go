// Package bench is gocached's load generator and comparison harness: it
// drives any memcached-compatible server over the text, meta or binary
// protocol, checks every reply, measures throughput, latency (HDR
// histograms, coordinated-omission-correct in open-loop mode), the server's
// CPU time per operation and RSS from /proc, and runs gocached and memcached
// side by side, alternating, to report medians and ratios. Memory and
// hit-ratio modes compare bytes per item and miss ratios at equal -m.
package bench
