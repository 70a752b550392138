package server

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gocached/gocached/protocol"
)

// UDP (-U port; 0, the default, is off, as memcached since 1.5.6), after
// memcached's try_read_udp and transmit_udp.
//
// Every datagram starts with an 8-byte frame header: request id, sequence
// number, total datagrams in the message, reserved (big-endian 16-bit
// each). A request must fit in one datagram (a header that announces more
// is dropped). Its requests, text or binary (sniffed per datagram), are
// executed in order; each reply is a message of its own, cut into
// datagrams of at most 1400 bytes with the header, each headed by the
// request id, its sequence number and the message's datagram count. A
// multi-key get answers one message per key, the last carrying END, and
// a missed key's empty message is sent as a bare header unless it follows
// a message just sent (memcached's quirk, kept byte for byte).
//
// Reflection: UDP is off by default, it cannot be combined with -S or -Y,
// and gocached bounds what one datagram may return (udpReplyBudget): a
// datagram whose replies grow past it stops there, and a multi-key get
// that would pass it answers SERVER_ERROR instead of its values.

const (
	udpHeaderSize = 8
	// udpMaxDatagram is memcached's UDP_MAX_PAYLOAD_SIZE, which counts
	// the frame header.
	udpMaxDatagram = 1400
	udpMaxPayload  = udpMaxDatagram - udpHeaderSize
	// udpReadBufferSize is memcached's UDP_READ_BUFFER_SIZE.
	udpReadBufferSize = 65536
	// udpMaxReaders bounds the goroutines reading one socket.
	udpMaxReaders = 16
)

// udpState holds the UDP sockets, opened by Listen and served by Serve.
type udpState struct {
	pcs []net.PacketConn
}

// udpEnabled reports whether the configuration asks for UDP: -U other than
// 0 (memcached's -U -1 picks a free port) and no unix socket (-s disables
// UDP).
func (s *Server) udpEnabled() bool {
	return s.cfg.UDPPort != 0 && s.cfg.UnixSocket == ""
}

// initUDP refuses the combinations memcached refuses.
func (s *Server) initUDP() error {
	if s.udpEnabled() && s.cfg.SASL {
		return errors.New("ERROR: Cannot enable UDP while using binary SASL authentication.")
	}
	return nil
}

// initSecurity validates and loads what -Y, -Z and -U need at New.
func (s *Server) initSecurity() error {
	if err := s.initUDP(); err != nil {
		return err
	}
	if err := s.initASCIIAuth(); err != nil {
		return err
	}
	return s.initTLS()
}

// listenUDP opens a UDP socket on every -l interface (any port given there
// is for TCP) at the -U port.
func (s *Server) listenUDP() error {
	if !s.udpEnabled() {
		return nil
	}
	port := s.cfg.UDPPort
	if port < 0 {
		port = 0
	}
	hosts := []string{""}
	if len(s.cfg.Listen) > 0 {
		hosts = hosts[:0]
		for _, h := range s.cfg.Listen {
			h = strings.TrimPrefix(h, "notls:")
			if host, _, err := net.SplitHostPort(h); err == nil {
				h = host
			}
			hosts = append(hosts, h)
		}
	}
	for _, h := range hosts {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(h, strconv.Itoa(port)))
		if err != nil {
			for _, p := range s.udp.pcs {
				p.Close()
			}
			s.udp.pcs = nil
			return fmt.Errorf("failed to listen on UDP port %d: %w", s.cfg.UDPPort, err)
		}
		s.udp.pcs = append(s.udp.pcs, pc)
	}
	return nil
}

// UDPAddrs returns the addresses of the UDP sockets, after Listen.
func (s *Server) UDPAddrs() []net.Addr {
	addrs := make([]net.Addr, len(s.udp.pcs))
	for i, pc := range s.udp.pcs {
		addrs[i] = pc.LocalAddr()
	}
	return addrs
}

// serveUDP starts the readers of every UDP socket: like memcached's one
// UDP connection per worker thread, -t of them (at most udpMaxReaders),
// each a connection of its own for "stats" (curr_connections, stats conns).
func (s *Server) serveUDP() {
	n := min(max(s.cfg.Threads, 1), udpMaxReaders)
	for _, pc := range s.udp.pcs {
		for i := 0; i < n; i++ {
			c := newConn(s, &udpNetConn{pc: pc}, 0)
			if !s.track(c) {
				c.release()
				pc.Close()
				return
			}
			s.currConns.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				c.serveUDP(pc)
				c.release()
				s.untrack(c)
				s.currConns.Add(-1)
			}()
		}
	}
}

// udpReplyBudget bounds the reply bytes one datagram may cause: enough for
// the largest item and then some, far less than a datagram full of
// multi-key gets or stats could otherwise reflect.
func (s *Server) udpReplyBudget() int {
	return max(s.cfg.Store.MaxItemSize, 1<<20) + 64<<10
}

// udpResp is one reply message: wbuf[off:end], or nothing sent at all when
// skip (noreply, quiet binary commands).
type udpResp struct {
	off, end int
	skip     bool
}

// serveUDP reads and answers datagrams until shutdown.
func (c *conn) serveUDP(pc net.PacketConn) {
	defer pc.Close() // wakes the other readers of pc
	un := c.nc.(*udpNetConn)
	in := make([]byte, udpReadBufferSize)
	out := make([]byte, udpMaxDatagram)
	var resps []udpResp
	for !c.shutdown.Load() {
		n, addr, err := pc.ReadFrom(in)
		if err != nil {
			if c.shutdown.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				c.srv.log.Warn("UDP read failed", zap.Error(err))
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		// memcached ignores datagrams of a bare header or less, and
		// requests spread over several datagrams.
		if n <= udpHeaderSize {
			continue
		}
		atomic.AddUint64(&c.stats.bytesRead, uint64(n))
		if in[4] != 0 || in[5] != 1 {
			continue
		}
		c.lastCmd.Store(c.srv.now())
		resps = c.execDatagram(in[udpHeaderSize:n], resps[:0])
		replies := c.wbuf
		if len(un.flushed) > 0 {
			replies = append(un.flushed, c.wbuf...)
		}
		sent := c.sendUDP(pc, addr, in[0:2], out, replies, resps)
		// flush counted the bytes it handed over as written already.
		atomic.AddUint64(&c.stats.bytesWritten, uint64(max(sent-len(un.flushed), 0)))
		un.flushed = un.flushed[:0]
		if cap(un.flushed) > flushThreshold*2 {
			un.flushed = nil
		}
		c.wbuf = c.wbuf[:0]
		if cap(c.wbuf) > flushThreshold*2 {
			c.wbuf = make([]byte, 0, initialBufSize)
		}
	}
}

// udpPos is the length of the replies to the current datagram: those
// flush handed to the udpNetConn and those still in c.wbuf.
func (c *conn) udpPos() int {
	return len(c.nc.(*udpNetConn).flushed) + len(c.wbuf)
}

// udpTruncate drops the replies to the current datagram past pos.
func (c *conn) udpTruncate(pos int) {
	un := c.nc.(*udpNetConn)
	if pos >= len(un.flushed) {
		c.wbuf = c.wbuf[:pos-len(un.flushed)]
		return
	}
	un.flushed = un.flushed[:pos]
	c.wbuf = c.wbuf[:0]
}

// execDatagram executes the requests of one datagram's payload and returns
// their reply messages, as positions in the replies (see udpPos).
func (c *conn) execDatagram(payload []byte, resps []udpResp) []udpResp {
	c.rbuf, c.rpos, c.rend = payload, 0, len(payload)
	c.swallow, c.closing = 0, false
	c.wbuf = c.wbuf[:0]
	budget := c.srv.udpReplyBudget()
	for c.rpos < c.rend && !c.closing && c.udpPos() <= budget {
		if c.swallowInput() {
			continue
		}
		buf := c.rbuf[c.rpos:c.rend]
		start := c.udpPos()
		var need int
		var ok bool
		binary := buf[0] == binaryRequestMagic
		if binary {
			need, ok = c.execBinary(buf)
		} else if lineLen, keys, multi := c.udpMultiGet(buf); multi {
			resps = c.execUDPMultiGet(lineLen, keys, resps, budget)
			continue
		} else {
			need, ok = c.execText(buf)
		}
		if !ok {
			if need > 0 {
				// A value or body cut by the end of the datagram: memcached
				// waits for it in the next one and answers nothing now.
				return resps[:0]
			}
			break // an unfinished line: the requests before it are answered
		}
		// A text request without a reply (noreply) sends nothing; a binary
		// one (quiet commands) and one that ends the "connection" (quit)
		// send memcached's empty message.
		end := c.udpPos()
		resps = append(resps, udpResp{off: start, end: end, skip: start == end && !binary && !c.closing})
	}
	if c.swallow > 0 {
		return resps[:0] // memcached is still swallowing a refused value
	}
	return resps
}

// udpMultiGet reports whether buf starts with a get, gets, gat or gats line
// of several keys, which UDP answers one message a key.
func (c *conn) udpMultiGet(buf []byte) (lineLen int, keys [][]byte, multi bool) {
	r := &c.work.req
	n, err := protocol.ParseLine(buf, r, maxGetLine)
	if err != nil || len(r.Keys) < 2 {
		return 0, nil, false
	}
	switch r.Command {
	case protocol.CmdGet, protocol.CmdGets, protocol.CmdGat, protocol.CmdGats:
		return n, r.Keys, true
	}
	return 0, nil, false
}

// execUDPMultiGet runs a multi-key retrieval key by key, one message each,
// END closing the last. Past the reply budget it answers SERVER_ERROR, as
// memcached does when it cannot build a get's reply, and the rest of the
// datagram is ignored.
func (c *conn) execUDPMultiGet(lineLen int, keys [][]byte, resps []udpResp, budget int) []udpResp {
	r := &c.work.req
	c.rpos += lineLen
	first, pstart := len(resps), c.udpPos()
	for i := range keys {
		if c.udpPos() > budget {
			c.udpTruncate(pstart)
			c.wbuf = append(c.wbuf, "SERVER_ERROR out of memory writing get response\r\n"...)
			resps = append(resps[:first], udpResp{off: pstart, end: c.udpPos()})
			c.closing = true
			break
		}
		start := c.udpPos()
		r.Keys = keys[i : i+1]
		c.execRetrieval()
		if i < len(keys)-1 && bytes.HasSuffix(c.wbuf, protocol.ReplyEnd) {
			c.wbuf = c.wbuf[:len(c.wbuf)-len(protocol.ReplyEnd)]
		}
		resps = append(resps, udpResp{off: start, end: c.udpPos()})
	}
	r.Keys = keys
	return resps
}

// sendUDP sends the reply messages of one datagram to addr, as memcached's
// transmit_udp: each message in datagrams of at most udpMaxDatagram bytes
// numbered from 0; an empty message is a bare header with a count of 0,
// and is not sent at all right after a message that was. It returns the
// bytes sent.
func (c *conn) sendUDP(pc net.PacketConn, addr net.Addr, reqID, out, replies []byte, resps []udpResp) int {
	prevSent := false
	sent := 0
	for _, m := range resps {
		if m.skip {
			continue
		}
		data := replies[m.off:m.end]
		if len(data) == 0 && prevSent {
			continue
		}
		total := (len(data) + udpMaxPayload - 1) / udpMaxPayload
		if total > 0xffff {
			// memcached would wrap the sequence number; such a message
			// cannot be reassembled, so it is not sent.
			c.srv.log.Debug("UDP reply too large", zap.Int("bytes", len(data)))
			continue
		}
		for seq := 0; ; seq++ {
			n := min(len(data), udpMaxPayload)
			out = append(out[:0], reqID[0], reqID[1], byte(seq>>8), byte(seq), byte(total>>8), byte(total), 0, 0)
			out = append(out, data[:n]...)
			if _, err := pc.WriteTo(out, addr); err != nil {
				c.srv.log.Debug("UDP write failed", zap.Error(err))
			} else {
				sent += len(out)
			}
			data = data[n:]
			if len(data) == 0 {
				break
			}
		}
		prevSent = true
	}
	return sent
}

// udpNetConn stands for a UDP socket where the server expects a net.Conn:
// "stats conns" shows its address, shutdown's read deadline wakes its
// readers and a forced shutdown closes it. What the request code flushes
// mid-reply (big values) is kept in flushed, to be cut into datagrams with
// the rest.
type udpNetConn struct {
	pc      net.PacketConn
	flushed []byte
}

func (u *udpNetConn) Write(b []byte) (int, error) {
	u.flushed = append(u.flushed, b...)
	return len(b), nil
}

func (u *udpNetConn) Read([]byte) (int, error) {
	return 0, errors.New("gocached: read from a UDP reply stream")
}
func (u *udpNetConn) Close() error                       { return u.pc.Close() }
func (u *udpNetConn) LocalAddr() net.Addr                { return u.pc.LocalAddr() }
func (u *udpNetConn) RemoteAddr() net.Addr               { return u.pc.LocalAddr() }
func (u *udpNetConn) SetDeadline(t time.Time) error      { return u.pc.SetDeadline(t) }
func (u *udpNetConn) SetReadDeadline(t time.Time) error  { return u.pc.SetReadDeadline(t) }
func (u *udpNetConn) SetWriteDeadline(t time.Time) error { return u.pc.SetWriteDeadline(t) }
