// Package server runs gocached's listeners and connections: it reads
// requests, executes them against the slab store and writes memcached's
// replies.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gocached/gocached/slab"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("gocached: server closed")

// Version is the memcached version gocached reports on the wire: clients
// use it to detect features, so it names the memcached release whose
// behaviour gocached matches.
const Version = "1.6.18"

// defaultReadBufMemLimit bounds the grown read and write buffers of all
// connections together when -o read_buf_mem_limit is not given (or -m/8,
// when larger). Text and meta values never grow them (values.go): what
// does is long multiget lines and binary-protocol values and replies.
// memcached leaves them unbounded; gocached keeps what clients can make it
// allocate beyond -m bounded.
const defaultReadBufMemLimit = 64 << 20

// Server is a memcached-compatible server.
type Server struct {
	cfg     Config
	log     *zap.Logger
	store   *slab.Store
	clock   slab.Clock
	started int64 // Unix seconds at New

	verbosity atomic.Int32 // "verbosity" command and -v

	mu        sync.Mutex // guards listeners, conns, closing, retired
	listeners []net.Listener
	conns     map[*conn]struct{}
	closing   bool
	retired   connStats // counters of closed connections

	bigBufs  bufBudget   // grown read buffers of all connections
	prefixes prefixStats // "stats detail"

	// Without maxconns_fast, accepting pauses at the connection limit
	// (memcached's listen_disabled) until a connection closes.
	slotFreed      chan struct{}
	acceptPaused   atomic.Bool
	listenDisabled atomic.Uint64

	currConns     atomic.Int64
	totalConns    atomic.Uint64
	rejectedConns atomic.Uint64

	done     chan struct{} // closed by Shutdown or the shutdown command
	doneOnce sync.Once
	wg       sync.WaitGroup // accept loops and connections

	tls  tlsState  // -Z certificates (tls.go)
	udp  udpState  // -U sockets (udp.go)
	auth authState // -Y credentials (asciiauth.go)

	watch watchHub // watch command (watch.go)

	idle  idleSet      // connections parked without a goroutine (park.go)
	wgate writeGate    // lets the poller run between large writes (writegate.go)
	parks atomic.Int64 // connections parked since the sweeper's last pass

	discovery discoveryState // ElastiCache auto-discovery (clustercfg.go)
}

// New validates cfg and builds the store. It opens no sockets.
func New(cfg Config) (*Server, error) {
	def := DefaultConfig()
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = def.MaxConns
	}
	if cfg.Protocol == "" {
		cfg.Protocol = def.Protocol
	}
	switch cfg.Protocol {
	case "auto", "ascii", "binary":
	default:
		return nil, fmt.Errorf("invalid protocol %q: want ascii, binary or auto", cfg.Protocol)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Store.Clock == nil {
		cfg.Store.Clock = slab.CoarseClock{}
	}
	if cfg.Extended == nil {
		cfg.Extended = map[string]string{}
	}
	store, err := slab.New(cfg.Store)
	if err != nil {
		return nil, err
	}
	cfg.Store = store.Config()
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		store:     store,
		clock:     cfg.Store.Clock,
		conns:     map[*conn]struct{}{},
		done:      make(chan struct{}),
		slotFreed: make(chan struct{}, 1),
	}
	s.started = s.now()
	s.bigBufs.limit = cfg.ReadBufMemLimit
	if s.bigBufs.limit <= 0 {
		s.bigBufs.limit = max(defaultReadBufMemLimit, cfg.Store.MemoryLimit/8)
	}
	s.verbosity.Store(int32(cfg.Verbosity))
	s.prefixes.delimiter = ':'
	if cfg.PrefixDelimiter != 0 {
		// -D turns detail stats on, as in memcached.
		s.prefixes.delimiter = cfg.PrefixDelimiter
		s.prefixes.enabled.Store(true)
	}
	if err := s.initSecurity(); err != nil {
		return nil, err
	}
	if err := s.loadClusterConfig(true); err != nil {
		return nil, err
	}
	return s, nil
}

// Store returns the server's item store.
func (s *Server) Store() *slab.Store { return s.store }

// now returns the store's time in Unix seconds: its seconds turn over at
// the store's own phase, so TTLs and last-access ages agree with items'.
func (s *Server) now() int64 { return s.store.Now() }

// Listen opens every listener the config asks for. A unix socket disables
// TCP, as in memcached.
func (s *Server) Listen() error {
	if s.cfg.UnixSocket != "" {
		return s.listenUnix()
	}
	if s.cfg.Port == 0 && len(s.cfg.Listen) == 0 {
		return s.listenUDP()
	}
	hosts := s.cfg.Listen
	if len(hosts) == 0 {
		hosts = []string{""}
	}
	for _, spec := range hosts {
		h := strings.TrimPrefix(spec, "notls:")
		addr := h
		if _, _, err := net.SplitHostPort(h); err != nil {
			addr = net.JoinHostPort(h, strconv.Itoa(s.cfg.Port))
		}
		lc := net.ListenConfig{}
		l, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("failed to listen on TCP port %s: %w", addr, err)
		}
		s.addListener(s.wrapTLS(l, spec))
	}
	if err := s.listenUDP(); err != nil {
		s.closeListeners()
		return err
	}
	return nil
}

func (s *Server) listenUnix() error {
	path := s.cfg.UnixSocket
	// A socket left behind by a previous run would make bind fail; memcached
	// removes it too, but never a regular file.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("failed to listen on unix socket %s: %w", path, err)
	}
	mask := s.cfg.UnixMask
	if mask == 0 {
		mask = 0o700
	}
	if err := os.Chmod(path, os.FileMode(mask)); err != nil {
		l.Close()
		return err
	}
	s.addListener(l)
	return nil
}

func (s *Server) addListener(l net.Listener) {
	s.totalConns.Add(1) // memcached counts its listening sockets as connections
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		l.Close()
	}
}

// Addrs returns the addresses being listened on, after Listen.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	addrs := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		addrs[i] = l.Addr()
	}
	return addrs
}

// Serve accepts connections on the opened listeners until Shutdown (or the
// shutdown command) and then returns ErrServerClosed.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	// Held while the loops start, so their wg.Add never meets a zero
	// counter that a concurrent Shutdown is already waiting on.
	s.wg.Add(1)
	ls := append([]net.Listener(nil), s.listeners...)
	s.mu.Unlock()
	if len(ls) == 0 && len(s.udp.pcs) == 0 {
		s.wg.Done()
		return errors.New("gocached: no listeners: call Listen first")
	}
	for _, l := range ls {
		s.wg.Add(1)
		go s.acceptLoop(l)
	}
	if s.parksIdle() {
		s.wg.Add(1)
		go s.sweepIdle()
	}
	s.serveUDP()
	s.wg.Done()
	<-s.done
	return ErrServerClosed
}

// Done is closed when the server starts shutting down, including by the
// "shutdown" command.
func (s *Server) Done() <-chan struct{} { return s.done }

func (s *Server) acceptLoop(l net.Listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		if !s.waitForSlot() {
			return
		}
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and similar: back off like net/http.
				if backoff == 0 {
					backoff = 5 * time.Millisecond
				} else if backoff *= 2; backoff > time.Second {
					backoff = time.Second
				}
				s.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
				time.Sleep(backoff)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Error("accept failed", zap.Error(err))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		backoff = 0
		id := s.totalConns.Add(1)
		if s.currConns.Add(1) > int64(s.cfg.MaxConns) {
			s.currConns.Add(-1)
			s.rejectedConns.Add(1)
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = nc.Write([]byte("ERROR Too many open connections\r\n"))
			nc.Close()
			continue
		}
		c := newConn(s, nc, id)
		if !s.track(c) {
			s.currConns.Add(-1)
			nc.Close()
			return
		}
		s.wg.Add(1)
		if s.verbosity.Load() > 2 { // -vvv: connection state, as memcached
			s.log.Debug("new client connection", zap.Uint64("conn", c.id), zap.Stringer("client", nc.RemoteAddr()))
		}
		if c.io.raw != nil && s.parksIdle() {
			// Parked until its first input: a client that connects and
			// waits costs no goroutine.
			c.parking.started, c.parking.fresh = true, true
			s.watch.connNew(c)
			if c.park() {
				continue
			}
		}
		go s.runConn(c)
	}
}

// runConn serves c on the calling goroutine until it closes or parks.
func (s *Server) runConn(c *conn) {
	if c.serve() {
		return // parked: counted, tracked and waited for until it closes
	}
	s.untrack(c)
	s.currConns.Add(-1)
	select {
	case s.slotFreed <- struct{}{}:
	default:
	}
	if s.verbosity.Load() > 2 {
		s.log.Debug("connection closed", zap.Uint64("conn", c.id))
	}
	s.wg.Done()
}

// waitForSlot holds the accept loop at the connection limit when
// maxconns_fast is off, so new clients wait in the listen backlog instead
// of being refused; false once the server shuts down.
func (s *Server) waitForSlot() bool {
	if s.cfg.MaxConnsFast || s.currConns.Load() < int64(s.cfg.MaxConns) {
		return true
	}
	s.listenDisabled.Add(1)
	s.acceptPaused.Store(true)
	defer s.acceptPaused.Store(false)
	// Several listeners may wait; a short recheck covers the wake-up each
	// freed slot sends to only one of them.
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for s.currConns.Load() >= int64(s.cfg.MaxConns) {
		select {
		case <-s.slotFreed:
		case <-t.C:
		case <-s.done:
			return false
		}
	}
	return true
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	st := s.retireStatsLocked(c)
	s.mu.Unlock()
	putStats(st)
}

// beginShutdown stops accepting and wakes every connection blocked in a
// read, so each finishes the replies it has in flight and closes.
func (s *Server) beginShutdown() {
	s.doneOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		for _, l := range s.listeners {
			l.Close()
		}
		for c := range s.conns {
			c.wake()
		}
		s.mu.Unlock()
		close(s.done)
	})
}

// Shutdown stops accepting, lets connections finish the replies in flight,
// closes them and waits for them, or until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginShutdown()
	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
	if s.cfg.UnixSocket != "" {
		_ = os.Remove(s.cfg.UnixSocket)
	}
	s.idle.close()
	s.wgate.close()
	s.store.Close() // the page mover and crawler
	return nil
}

// absExptime turns a protocol exptime into the store's absolute Unix
// seconds, as memcached's realtime(): 0 never expires, up to 30 days is
// relative, larger is a Unix time, negative is already expired.
func (s *Server) absExptime(exp, now int64) int64 {
	const maxDelta = 60 * 60 * 24 * 30
	switch {
	case exp == 0:
		return 0
	case exp < 0:
		return -1
	case exp <= maxDelta:
		return now + exp
	default:
		return exp
	}
}
