package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/schollz/progressbar/v3"
)

// Config describes one load-generation run.
type Config struct {
	Network  string        `json:"network"`            // "tcp" or "unix"
	Addr     string        `json:"addr"`               // host:port or socket path
	Conns    int           `json:"conns"`              // connections (default 16)
	Keys     uint64        `json:"keys"`               // key space size (default 10000)
	Dist     Dist          `json:"dist"`               // key distribution
	ValueMin int           `json:"value_min"`          // value size, bytes
	ValueMax int           `json:"value_max"`          // = ValueMin for a fixed size
	GetRatio float64       `json:"get_ratio"`          // fraction of requests that are gets
	Pipeline int           `json:"pipeline"`           // requests written before reading replies
	Batch    int           `json:"batch"`              // keys per get (multiget when > 1)
	Proto    Protocol      `json:"protocol"`           // text, meta or binary
	Duration time.Duration `json:"duration"`           // run length (when Ops is 0)
	Ops      int64         `json:"ops,omitempty"`      // requests to send (overrides Duration)
	Rate     float64       `json:"rate,omitempty"`     // requests/s over all connections; 0 = closed loop
	Lazy     bool          `json:"lazy,omitempty"`     // cache-aside: a missed get is followed by a set
	Timeout  time.Duration `json:"timeout"`            // a reply later than this is an error (default 2s)
	Seed     uint64        `json:"seed"`               // random seed
	Progress io.Writer     `json:"-"`                  // progress bar destination; nil = none
	Label    string        `json:"label,omitempty"`    // progress bar description
	Preload  bool          `json:"preload,omitempty"`  // informative: whether the caller preloaded
	KeyScan  uint64        `json:"key_scan,omitempty"` // first scan key offset beyond Keys (internal)
	KeyBase  uint64        `json:"key_base,omitempty"` // added to every key id: runs with different bases use different keys
	// OOMOK makes a set refused with SERVER_ERROR out of memory a counted
	// outcome rather than an error (filling a server past its -m).
	OOMOK bool `json:"oom_ok,omitempty"`
}

// Defaults fills the zero fields with the defaults.
func (c *Config) Defaults() {
	if c.Network == "" {
		c.Network = "tcp"
	}
	if c.Conns <= 0 {
		c.Conns = 16
	}
	if c.Keys == 0 {
		c.Keys = 10000
	}
	if c.Dist.Kind == "" {
		c.Dist.Kind = "uniform"
	}
	if c.ValueMin <= 0 {
		c.ValueMin = 32
	}
	if c.ValueMax < c.ValueMin {
		c.ValueMax = c.ValueMin
	}
	if c.Pipeline <= 0 {
		c.Pipeline = 1
	}
	if c.Batch <= 0 {
		c.Batch = 1
	}
	if c.Duration <= 0 && c.Ops <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
}

func (c *Config) validate() error {
	if c.Addr == "" {
		return errors.New("no server address")
	}
	if c.GetRatio < 0 || c.GetRatio > 1 {
		return fmt.Errorf("get ratio %g not in [0,1]", c.GetRatio)
	}
	if c.Keys >= 1e8 {
		return fmt.Errorf("key space %d too large (max 1e8)", c.Keys)
	}
	if c.ValueMax > 1<<20 {
		return fmt.Errorf("value size %d over 1 MB", c.ValueMax)
	}
	if c.Batch > 1000 {
		return fmt.Errorf("multiget of %d keys over 1000", c.Batch)
	}
	return nil
}

// Latency percentiles in microseconds.
type Latency struct {
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
	Mean float64 `json:"mean_us"`
}

// LatencyOf summarizes a histogram of nanoseconds.
func LatencyOf(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	us := func(v int64) float64 { return float64(v) / 1e3 }
	return Latency{
		P50: us(h.ValueAtQuantile(50)), P90: us(h.ValueAtQuantile(90)),
		P99: us(h.ValueAtQuantile(99)), P999: us(h.ValueAtQuantile(99.9)),
		Max: us(h.Max()), Mean: h.Mean() / 1e3,
	}
}

// NewHistogram returns a histogram of latencies in ns, 1 ns to 60 s, 3 digits.
func NewHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60e9, 3) }

// Result is what a run measured on the client side.
type Result struct {
	Requests     int64    `json:"requests"` // completed without error
	Gets         int64    `json:"gets"`     // get requests (a multiget is one)
	Sets         int64    `json:"sets"`
	Hits         int64    `json:"hits"` // keys found
	Misses       int64    `json:"misses"`
	Errors       int64    `json:"errors"` // wrong, missing or late replies
	ErrorSamples []string `json:"error_samples,omitempty"`
	ElapsedSec   float64  `json:"elapsed_s"`
	OpsPerSec    float64  `json:"ops_per_s"`  // requests/s
	KeysPerSec   float64  `json:"keys_per_s"` // keys read or written per second
	MissRatio    float64  `json:"miss_ratio"`
	Latency      Latency  `json:"latency"`

	Hist *hdrhistogram.Histogram `json:"-"`
}

// req is one request of a pipelined batch.
type req struct {
	set   bool
	first int32 // index into worker.ids
	n     int32
}

type worker struct {
	cfg   *Config
	idx   int
	codec codec
	conn  net.Conn
	rd    *reader
	wbuf  []byte
	ids   []uint64
	reqs  []req
	res   getResult
	pend  []uint64 // lazy mode: missed keys to set next
	gen   *keyGen
	rng   *rand.Rand
	hist  *hdrhistogram.Histogram
	done  atomic.Int64 // requests finished, for the progress bar
	deadl time.Time

	gets, sets, hits, misses, errs int64
	oom                            int64 // sets refused for memory (OOMOK)
	samples                        []string
}

func (w *worker) errorf(err error) {
	w.errs++
	if len(w.samples) < 3 {
		w.samples = append(w.samples, err.Error())
	}
}

func (w *worker) dial() error {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
	c, err := net.DialTimeout(w.cfg.Network, w.cfg.Addr, w.cfg.Timeout)
	if err != nil {
		return err
	}
	w.conn = c
	w.rd.reset(c)
	w.deadl = time.Time{}
	return nil
}

func newWorker(cfg *Config, idx int, vals *values) *worker {
	w := &worker{
		cfg:  cfg,
		idx:  idx,
		rd:   newReader(nil, 64<<10),
		wbuf: make([]byte, 0, cfg.Pipeline*(cfg.Batch*(keyLen+24)+cfg.ValueMax+64)+64),
		ids:  make([]uint64, cfg.Pipeline*cfg.Batch),
		reqs: make([]req, 0, cfg.Pipeline),
		pend: make([]uint64, 0, 4*cfg.Pipeline*cfg.Batch),
		rng:  rand.New(rand.NewPCG(cfg.Seed, uint64(idx)+1)),
		hist: NewHistogram(),
	}
	w.res.missed = make([]uint64, 0, cfg.Batch)
	w.codec = codec{proto: cfg.Proto, vals: vals, vmin: cfg.ValueMin, vmax: cfg.ValueMax, rd: w.rd}
	w.gen = newKeyGen(cfg.Dist, cfg.Keys, w.rng, cfg.KeyScan+uint64(idx)*1e8/uint64(cfg.Conns+1))
	w.gen.base = cfg.KeyBase
	w.gen.shift = newShifter(cfg.Dist, cfg.Conns)
	return w
}

// valueSize returns the size of key id's value: uniform between ValueMin
// and ValueMax over the keys, and the same on every set of the key, as an
// object's size is in real caches (a size drawn anew on each set would move
// a key between slab classes at random, which no workload does, and would
// credit a class with the returns of another's keys).
func (w *worker) valueSize(id uint64) int {
	if w.cfg.ValueMax == w.cfg.ValueMin {
		return w.cfg.ValueMin
	}
	return w.cfg.ValueMin + int(mix64(id)%uint64(w.cfg.ValueMax-w.cfg.ValueMin+1))
}

// mix64 is splitmix64's finalizer: a key id's well-spread hash.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// build fills wbuf with n requests.
func (w *worker) build(n int) {
	w.wbuf = w.wbuf[:0]
	w.reqs = w.reqs[:0]
	k := int32(0)
	for i := 0; i < n; i++ {
		if len(w.pend) > 0 {
			id := w.pend[len(w.pend)-1]
			w.pend = w.pend[:len(w.pend)-1]
			w.ids[k] = id
			w.reqs = append(w.reqs, req{set: true, first: k, n: 1})
			w.wbuf = w.codec.appendSet(w.wbuf, id, w.valueSize(id))
			k++
			continue
		}
		if w.cfg.GetRatio >= 1 || (w.cfg.GetRatio > 0 && w.rng.Float64() < w.cfg.GetRatio) {
			b := int32(w.cfg.Batch)
			ids := w.ids[k : k+b]
			for j := range ids {
				ids[j] = w.gen.next()
			}
			w.reqs = append(w.reqs, req{first: k, n: b})
			w.wbuf = w.codec.appendGet(w.wbuf, ids)
			k += b
			continue
		}
		id := w.gen.next()
		w.ids[k] = id
		w.reqs = append(w.reqs, req{set: true, first: k, n: 1})
		w.wbuf = w.codec.appendSet(w.wbuf, id, w.valueSize(id))
		k++
	}
}

// exchange writes the batch and reads every reply, recording latencies from
// intended. It returns false when the connection had to be dropped.
func (w *worker) exchange(intended time.Time) bool {
	if intended.Add(w.cfg.Timeout / 2).After(w.deadl) {
		w.deadl = intended.Add(w.cfg.Timeout)
		w.conn.SetDeadline(w.deadl)
	}
	if _, err := w.conn.Write(w.wbuf); err != nil {
		w.fail(0, protoErr("write: %v", err))
		return false
	}
	for i, r := range w.reqs {
		var err error
		if r.set {
			err = w.codec.readSet()
			if err == nil {
				w.sets++
			} else if w.cfg.OOMOK && !isProtoErr(err) && strings.Contains(err.Error(), "out of memory") {
				w.oom++
				err = nil
			}
		} else {
			w.res.hits = 0
			w.res.missed = w.res.missed[:0]
			err = w.codec.readGet(w.ids[r.first:r.first+r.n], &w.res)
			if err == nil || !isProtoErr(err) {
				w.gets++
				w.hits += int64(w.res.hits)
				w.misses += int64(len(w.res.missed))
				if w.cfg.Lazy {
					for _, id := range w.res.missed {
						if len(w.pend) < cap(w.pend) {
							w.pend = append(w.pend, id)
						}
					}
				}
			}
		}
		if err != nil {
			if isProtoErr(err) {
				w.fail(i, err)
				return false
			}
			w.errorf(err)
			continue
		}
		lat := w.rd.now.Sub(intended).Nanoseconds()
		if lat < 1 {
			lat = 1
		} else if lat > 60e9 {
			lat = 60e9
		}
		_ = w.hist.RecordValue(lat)
	}
	w.done.Add(int64(len(w.reqs)))
	return true
}

// fail counts requests from i on as errors and drops the connection.
func (w *worker) fail(i int, err error) {
	w.errorf(fmt.Errorf("%v (%d request(s) lost, reconnecting)", err, len(w.reqs)-i))
	w.errs += int64(len(w.reqs)-i) - 1
	w.done.Add(int64(len(w.reqs)))
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

type runState struct {
	stop      atomic.Bool
	remaining atomic.Int64 // ops mode
	opsMode   bool
	end       time.Time
}

// claim returns how many requests to send next (0 = stop).
func (s *runState) claim(p int, now time.Time) int {
	if s.stop.Load() {
		return 0
	}
	if !s.opsMode {
		if !now.Before(s.end) {
			return 0
		}
		return p
	}
	r := s.remaining.Add(-int64(p))
	if r >= 0 {
		return p
	}
	if r+int64(p) > 0 {
		return int(r + int64(p))
	}
	return 0
}

func (w *worker) run(st *runState, start time.Time) {
	var interval time.Duration
	if w.cfg.Rate > 0 {
		perConn := w.cfg.Rate / float64(w.cfg.Conns)
		interval = time.Duration(float64(w.cfg.Pipeline) / perConn * 1e9)
	}
	next := start.Add(interval * time.Duration(w.idx) / time.Duration(w.cfg.Conns))
	for {
		now := time.Now()
		intended := now
		if interval > 0 {
			if d := next.Sub(now); d > 0 {
				// A late wake-up counts as latency (the request was due):
				// timer slack is part of what rate mode reports. Spinning
				// instead would starve the network poller.
				time.Sleep(d)
				now = time.Now()
			}
			intended = next
			next = next.Add(interval)
		}
		n := st.claim(w.cfg.Pipeline, now)
		if n == 0 {
			return
		}
		if w.conn == nil {
			if err := w.dial(); err != nil {
				w.errorf(fmt.Errorf("connect: %v", err))
				w.errs += int64(n) - 1
				w.done.Add(int64(n))
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		w.build(n)
		w.exchange(intended)
	}
}

// Run generates load as cfg says and returns what it measured. It returns an
// error only when the run could not take place at all; wrong replies are
// counted in Result.Errors.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.Defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	vals := newValues(cfg.ValueMax)
	ws := make([]*worker, cfg.Conns)
	for i := range ws {
		ws[i] = newWorker(&cfg, i, vals)
		if err := ws[i].dial(); err != nil {
			for _, w := range ws[:i] {
				w.conn.Close()
			}
			return nil, fmt.Errorf("connect %s %s: %w", cfg.Network, cfg.Addr, err)
		}
	}
	st := &runState{opsMode: cfg.Ops > 0}
	st.remaining.Store(cfg.Ops)
	start := time.Now()
	st.end = start.Add(cfg.Duration)

	stopWatch := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			st.stop.Store(true)
		case <-stopWatch:
		}
	}()
	bar := newBar(&cfg, ws, start, stopWatch)

	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(st, start)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopWatch)
	if bar != nil {
		<-bar
	}

	res := &Result{Hist: NewHistogram(), ElapsedSec: elapsed.Seconds()}
	for _, w := range ws {
		if w.conn != nil {
			w.conn.Close()
		}
		res.Gets += w.gets
		res.Sets += w.sets
		res.Hits += w.hits
		res.Misses += w.misses
		res.Errors += w.errs
		for _, s := range w.samples {
			if len(res.ErrorSamples) < 5 {
				res.ErrorSamples = append(res.ErrorSamples, s)
			}
		}
		res.Hist.Merge(w.hist)
	}
	res.Requests = res.Gets + res.Sets
	if s := elapsed.Seconds(); s > 0 {
		res.OpsPerSec = float64(res.Requests) / s
		res.KeysPerSec = float64(res.Hits+res.Misses+res.Sets) / s
	}
	if res.Hits+res.Misses > 0 {
		res.MissRatio = float64(res.Misses) / float64(res.Hits+res.Misses)
	}
	res.Latency = LatencyOf(res.Hist)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

// newBar shows progress on cfg.Progress for runs of more than 3 s (or 1M
// requests); the returned channel closes when the bar is finished.
func newBar(cfg *Config, ws []*worker, start time.Time, stop <-chan struct{}) <-chan struct{} {
	if cfg.Progress == nil || (cfg.Ops == 0 && cfg.Duration <= 3*time.Second) || (cfg.Ops > 0 && cfg.Ops < 1e6) {
		return nil
	}
	max := cfg.Ops
	if max == 0 {
		max = cfg.Duration.Milliseconds()
	}
	desc := cfg.Label
	if desc == "" {
		desc = "load"
	}
	bar := progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(cfg.Progress),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionClearOnFinish(),
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				_ = bar.Finish()
				return
			case <-t.C:
				if cfg.Ops > 0 {
					var n int64
					for _, w := range ws {
						n += w.done.Load()
					}
					_ = bar.Set64(min(n, max))
				} else {
					_ = bar.Set64(min(time.Since(start).Milliseconds(), max))
				}
			}
		}
	}()
	return done
}

// Preload stores every key of the key space once (sets pipelined by 100 over
// cfg.Conns connections). It fails if any set fails.
func Preload(ctx context.Context, cfg Config) error {
	cfg.Defaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	vals := newValues(cfg.ValueMax)
	pcfg := cfg
	pcfg.Pipeline = 100
	pcfg.Batch = 1
	per := (cfg.Keys + uint64(cfg.Conns) - 1) / uint64(cfg.Conns)
	errs := make([]error, cfg.Conns)
	var wg sync.WaitGroup
	for i := 0; i < cfg.Conns; i++ {
		lo := uint64(i) * per
		hi := min(lo+per, cfg.Keys)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = preloadRange(ctx, &pcfg, i, vals, lo, hi)
		}()
	}
	wg.Wait()
	var first error
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 1 {
		return fmt.Errorf("%w (and %d more connection(s) failed)", first, failed-1)
	}
	return first
}

func preloadRange(ctx context.Context, cfg *Config, idx int, vals *values, lo, hi uint64) error {
	w := newWorker(cfg, idx, vals)
	if err := w.dial(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		if w.conn != nil {
			w.conn.Close()
		}
	}()
	for id := lo; id < hi; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.wbuf = w.wbuf[:0]
		w.reqs = w.reqs[:0]
		for k := 0; k < cfg.Pipeline && id < hi; k++ {
			w.ids[k] = id
			w.reqs = append(w.reqs, req{set: true, first: int32(k), n: 1})
			w.wbuf = w.codec.appendSet(w.wbuf, id, w.valueSize(id))
			id++
		}
		if !w.exchange(time.Now()) || w.errs > 0 {
			return fmt.Errorf("%d error(s): %v", w.errs, w.samples)
		}
	}
	return nil
}
