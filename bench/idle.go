package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// IdleOptions configures the idle-connections mode.
type IdleOptions struct {
	Servers []ServerSpec
	Conns   int           // idle connections to open
	Settle  time.Duration // wait after the last one connected before measuring
	After   time.Duration // wait after they all closed before measuring again
	Reps    int
	Log     io.Writer
	Failed  map[string]string
}

// IdleRun is one server's run: RSS before, with Conns idle connections, and
// After their close.
type IdleRun struct {
	Server        string  `json:"server"`
	Rep           int     `json:"rep"`
	Version       string  `json:"version,omitempty"`
	OK            bool    `json:"ok"`
	Error         string  `json:"error,omitempty"`
	Conns         int     `json:"conns"`          // connections the server counted (curr_connections - 1)
	RSSBefore     uint64  `json:"rss_before"`     // fresh server, one connection served
	RSSConnected  uint64  `json:"rss_connected"`  // with the idle connections
	RSSAfter      uint64  `json:"rss_after"`      // After the connections closed
	BytesPerConn  float64 `json:"bytes_per_conn"` // (RSSConnected - RSSBefore) / Conns
	AfterVsBefore float64 `json:"after_vs_before"`
	// RSS every second after the close, to see how fast memory comes back.
	RSSTrail []uint64 `json:"rss_trail,omitempty"`
}

// IdleSummary is the median of one server's runs.
type IdleSummary struct {
	Server        string  `json:"server"`
	OK            bool    `json:"ok"`
	Reason        string  `json:"reason,omitempty"`
	BytesPerConn  float64 `json:"bytes_per_conn"`
	RSSBefore     float64 `json:"rss_before"`
	RSSConnected  float64 `json:"rss_connected"`
	RSSAfter      float64 `json:"rss_after"`
	AfterVsBefore float64 `json:"after_vs_before"`
}

// IdleReport is the idle-connections mode's output.
type IdleReport struct {
	Env     Env            `json:"env"`
	Options map[string]any `json:"options"`
	Servers []IdleSummary  `json:"servers"`
	Runs    []IdleRun      `json:"runs"`
}

// RaiseFileLimit raises this process's open-file limit to its hard limit
// (servers it starts inherit it) and returns the new soft limit.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}

// Idle opens Conns connections to each fresh server, each sending one
// "version" and then staying idle; it reports RSS growth per connection
// after Settle, and RSS After all of them closed, against the level before.
func Idle(ctx context.Context, o IdleOptions) *IdleReport {
	rep := &IdleReport{}
	for r := 0; r < o.Reps; r++ {
		order := repOrder(o.Servers, r)
		for _, spec := range order {
			ir := IdleRun{Server: spec.Name, Rep: r + 1}
			if reason, bad := o.Failed[spec.Name]; bad {
				ir.Error = reason
			} else {
				idleRun(ctx, spec, o, &ir)
			}
			if o.Log != nil {
				if ir.OK {
					fmt.Fprintf(o.Log, "idle %-10s rep %d: %d conns, RSS %s -> %s (%.2f KB/conn), %s after close -> %s (%.2fx)\n",
						spec.Name, r+1, ir.Conns, mib(float64(ir.RSSBefore)), mib(float64(ir.RSSConnected)), ir.BytesPerConn/1024,
						o.After, mib(float64(ir.RSSAfter)), ir.AfterVsBefore)
				} else {
					fmt.Fprintf(o.Log, "idle %-10s rep %d FAILED: %s\n", spec.Name, r+1, ir.Error)
				}
			}
			rep.Runs = append(rep.Runs, ir)
		}
	}
	for _, spec := range o.Servers {
		s := IdleSummary{Server: spec.Name, OK: true}
		var bpc, before, conn, after, ratio []float64
		for _, r := range rep.Runs {
			if r.Server != spec.Name {
				continue
			}
			if !r.OK {
				s.OK = false
				if s.Reason == "" {
					s.Reason = r.Error
				}
				continue
			}
			bpc = append(bpc, r.BytesPerConn)
			before = append(before, float64(r.RSSBefore))
			conn = append(conn, float64(r.RSSConnected))
			after = append(after, float64(r.RSSAfter))
			ratio = append(ratio, r.AfterVsBefore)
		}
		if len(bpc) == 0 && s.OK {
			s.OK, s.Reason = false, "not run"
		}
		if s.OK {
			s.BytesPerConn, s.RSSBefore, s.RSSConnected = Median(bpc), Median(before), Median(conn)
			s.RSSAfter, s.AfterVsBefore = Median(after), Median(ratio)
		}
		rep.Servers = append(rep.Servers, s)
	}
	return rep
}

func idleRun(ctx context.Context, spec ServerSpec, o IdleOptions, ir *IdleRun) {
	// Room for the connections in both servers' limits (-c).
	spec.Extra = append(append([]string(nil), spec.Extra...), "-c", strconv.Itoa(o.Conns+64))
	srv, err := StartServer(ctx, spec)
	if err != nil {
		ir.Error = err.Error()
		return
	}
	defer srv.Stop()
	ir.Version = srv.Version
	time.Sleep(500 * time.Millisecond)
	s0, err := srv.Sample()
	if err != nil {
		ir.Error = err.Error()
		return
	}
	conns, err := openIdle(ctx, srv.Addr, o.Conns)
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	defer closeAll()
	if err != nil {
		ir.Error = fmt.Sprintf("after %d connections: %v", len(conns), err)
		return
	}
	select {
	case <-ctx.Done():
		ir.Error = ctx.Err().Error()
		return
	case <-time.After(o.Settle):
	}
	s1, err := srv.Sample()
	if err != nil {
		ir.Error = err.Error()
		return
	}
	st, err := Stats(srv.Addr, 5*time.Second)
	if err != nil {
		ir.Error = "stats: " + err.Error()
		return
	}
	ir.Conns = int(statInt(st, "curr_connections")) - 1 // not the stats connection
	if ir.Conns < o.Conns*9/10 {
		ir.Error = fmt.Sprintf("curr_connections %s with %d open", st["curr_connections"], len(conns))
		return
	}
	closeAll()
	start := time.Now()
	var last ProcSample
	for time.Since(start) < o.After {
		select {
		case <-ctx.Done():
			ir.Error = ctx.Err().Error()
			return
		case <-time.After(time.Second):
		}
		if last, err = srv.Sample(); err != nil {
			ir.Error = err.Error()
			return
		}
		ir.RSSTrail = append(ir.RSSTrail, last.RSS)
	}
	if !srv.Alive() {
		ir.Error = "server exited: " + srv.Stderr()
		return
	}
	ir.RSSBefore, ir.RSSConnected, ir.RSSAfter = s0.RSS, s1.RSS, last.RSS
	ir.BytesPerConn = float64(int64(s1.RSS)-int64(s0.RSS)) / float64(ir.Conns)
	ir.AfterVsBefore = Ratio(float64(last.RSS), float64(s0.RSS))
	ir.OK = true
}

// openIdle opens n connections to addr, 32 at a time; each sends
// "version" and reads the reply, so the server has served it once.
func openIdle(ctx context.Context, addr string, n int) ([]net.Conn, error) {
	var (
		mu    sync.Mutex
		conns = make([]net.Conn, 0, n)
		first error
		wg    sync.WaitGroup
	)
	next := make(chan struct{})
	d := net.Dialer{Timeout: 10 * time.Second}
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for range next {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err = io.WriteString(c, "version\r\n"); err == nil {
						var line string
						line, err = bufio.NewReader(io.LimitReader(c, int64(len(buf)))).ReadString('\n')
						if err == nil && len(line) < 8 {
							err = fmt.Errorf("version: %q", line)
						}
					}
					_ = c.SetDeadline(time.Time{})
				}
				mu.Lock()
				if err != nil {
					if c != nil {
						c.Close()
					}
					if first == nil {
						first = err
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return conns, first
}

// WriteIdleTable prints the idle-connections mode's summary.
func WriteIdleTable(w io.Writer, r *IdleReport, after time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "server\tRSS before\twith conns\tKB/conn\tRSS %s after close\tafter/before\t\n", after)
	for _, s := range r.Servers {
		if !s.OK {
			fmt.Fprintf(tw, "%s\tFAILED: %s\t\t\t\t\t\n", s.Server, oneLine(s.Reason, 70))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%.2f\t\n", s.Server, mib(s.RSSBefore), mib(s.RSSConnected),
			s.BytesPerConn/1024, mib(s.RSSAfter), s.AfterVsBefore)
	}
	tw.Flush()
	if len(r.Servers) == 2 && r.Servers[0].OK && r.Servers[1].OK {
		fmt.Fprintf(w, "ratio %s/%s: KB/conn %.2f\n", r.Servers[0].Server, r.Servers[1].Server,
			Ratio(r.Servers[0].BytesPerConn, r.Servers[1].BytesPerConn))
	}
}

// ServerVersion is RunRecord's.
func (r IdleRun) ServerVersion() (string, string) { return r.Server, r.Version }
