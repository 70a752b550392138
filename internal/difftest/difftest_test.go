package difftest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/protocol"
	"github.com/gocached/gocached/server"
	"github.com/gocached/gocached/slab"
)

const (
	// sentinel follows every "send" step; its reply marks the end of the
	// step's replies (memcached 1.6 answers the meta no-op with MN).
	sentinel      = "mn\r\n"
	sentinelReply = "MN\r\n"
	// binSentinelOpaque marks the binary sentinel: a noop that follows
	// every "bsend" step, whose reply ends the step's replies.
	binSentinelOpaque = 0x5e9714e1
	// stepTimeout bounds the wait for one step's replies.
	stepTimeout = 3 * time.Second
)

var (
	binSentinel      = protocol.AppendBinRequest(nil, protocol.OpNoop, binSentinelOpaque, 0, nil, nil, nil)
	binSentinelReply = protocol.AppendBinHeader(nil, protocol.OpNoop, protocol.StatusOK, 0, 0, 0, binSentinelOpaque, 0)
)

// Environment switches.
var (
	// DIFFTEST_SELF=1 compares memcached with a second memcached: the
	// self-check that every case is deterministic after its masks.
	selfCheck = os.Getenv("DIFFTEST_SELF") != ""
	// DIFFTEST_VERBOSE=1 logs both replies of every step.
	verbose = os.Getenv("DIFFTEST_VERBOSE") != ""
)

func TestDifferential(t *testing.T) {
	testutil.RequireTool(t, "memcached")
	cases, err := loadCorpus("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("empty corpus")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.skipGo != "" && !selfCheck {
				t.Skipf("%s: not compared with gocached yet: %s", c.file, c.skipGo)
			}
			ref := testutil.StartMemcached(t, c.flags...)
			var other, otherName string
			if selfCheck {
				other, otherName = testutil.StartMemcached(t, c.flags...), "memcached#2"
			} else {
				mutate, err := configFromFlags(append(append([]string(nil), c.flags...), c.goFlags...))
				if err != nil {
					t.Fatalf("%s: %v", c.file, err)
				}
				other, otherName = testutil.StartGocached(t, mutate), "gocached"
			}
			runCase(t, c, [2]string{"memcached", otherName}, [2]string{ref, other})
		})
	}
}

// side is one server's connections during a case.
type side struct {
	name   string
	addr   string
	conns  map[int]net.Conn
	closed map[int]bool
}

func (s *side) conn(n int) (net.Conn, error) {
	if c, ok := s.conns[n]; ok {
		return c, nil
	}
	c, err := net.DialTimeout("tcp", s.addr, stepTimeout)
	if err != nil {
		return nil, err
	}
	s.conns[n] = c
	return c, nil
}

func (s *side) closeAll() {
	for _, c := range s.conns {
		c.Close()
	}
}

// do performs one request step on connection n and returns what came back,
// without the sentinel's reply, plus <EOF> when the server closed the
// connection and <TIMEOUT> when it neither answered nor closed in time.
func (s *side) do(n int, st step, req []byte) []byte {
	if s.closed[n] {
		return []byte("<connection already closed>")
	}
	c, err := s.conn(n)
	if err != nil {
		return []byte(fmt.Sprintf("<dial: %v>", err))
	}
	sentReply := []byte(sentinelReply)
	if st.binary {
		// One write of the requests and the sentinel, so that the server
		// reads them at once whatever the timing: memcached's replies to
		// pipelined binary requests depend on how it reads them.
		sentReply = binSentinelReply
		if st.kind == stepSend {
			req = append(req[:len(req):len(req)], binSentinel...)
		}
	}
	if _, err := c.Write(req); err != nil {
		s.closed[n] = true
		return []byte("<EOF>")
	}
	if st.kind == stepPart {
		return nil
	}
	var head []byte
	if st.kind == stepDump {
		// memcached hands the connection to its crawler thread for a
		// dump and back afterwards without reading what is already
		// buffered (conn_worker_readd waits for the next read event): a
		// sentinel sent with the request is only answered once more
		// bytes arrive. So read the whole dump first, then do the
		// sentinel, which also shows that nothing follows the dump.
		_ = c.SetReadDeadline(time.Now().Add(stepTimeout))
		var err error
		if head, err = readDump(c); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return append(head, "<TIMEOUT>"...)
			}
			s.closed[n] = true
			return append(head, "<EOF>"...)
		}
	}
	if (st.kind == stepSend || st.kind == stepDump) && !st.binary {
		if _, err := c.Write([]byte(sentinel)); err != nil {
			s.closed[n] = true
			return []byte("<EOF>")
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(stepTimeout))
	buf := head
	tmp := make([]byte, 64<<10)
	for {
		k, err := c.Read(tmp)
		buf = append(buf, tmp[:k]...)
		if st.kind != stepClose && bytes.HasSuffix(buf, sentReply) {
			return buf[:len(buf)-len(sentReply)]
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return append(buf, "<TIMEOUT>"...)
			}
			// EOF or a reset (memcached resets when it closes with
			// unread input): both are "the server closed".
			s.closed[n] = true
			return append(buf, "<EOF>"...)
		}
	}
}

// dumpEnds are the last lines of a dump's reply: the END of metadump and
// cachedump, the EN of mgdump, or a refusal instead of the dump.
var dumpEnds = regexp.MustCompile(`(?:^|\n)(?:END|EN|(?:ERROR|CLIENT_ERROR|SERVER_ERROR|BADCLASS|BUSY|NOTSTARTED)(?: [^\r\n]*)?)\r\n$`)

// readDump reads from c until what came is a whole dump (ends in one of
// dumpEnds) and returns it.
func readDump(c net.Conn) ([]byte, error) {
	var buf []byte
	tmp := make([]byte, 64<<10)
	for {
		k, err := c.Read(tmp)
		buf = append(buf, tmp[:k]...)
		if dumpEnds.Match(buf) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// runCase plays c's steps against both servers, step by step, and fails
// at the first step whose masked replies differ.
func runCase(t *testing.T, c *testCase, names, addrs [2]string) {
	sides := [2]*side{}
	for i := range sides {
		sides[i] = &side{name: names[i], addr: addrs[i], conns: map[int]net.Conn{}, closed: map[int]bool{}}
		defer sides[i].closeAll()
	}
	cur := 1
	for _, st := range c.steps {
		switch st.kind {
		case stepConn:
			cur = st.conn
			continue
		case stepSleep:
			time.Sleep(st.sleep)
			continue
		}
		req := []byte(expand(st.text, time.Now()))
		if st.binary {
			var err error
			if req, err = encodeBinary(string(req)); err != nil {
				t.Fatalf("%s:%d: %v", c.file, st.line, err)
			}
		}
		var got [2][]byte
		for i, s := range sides {
			reply := s.do(cur, st, req)
			if st.binary {
				// Compared in their decoded form, which shows every byte
				// but the masked fields.
				reply = decodeBinary(reply, c.bmasks)
			}
			got[i] = applyMasks(c.masks, reply)
			for _, re := range c.sorts {
				got[i] = sortRuns(re, got[i])
			}
		}
		where := fmt.Sprintf("%s (step at line %d, conn %d)", c.file, st.line, cur)
		if verbose {
			t.Logf("%s\nrequest:\n%s\n%s:\n%s\n%s:\n%s", where, indent(show(req, st.binary, true)),
				names[0], indent(show(got[0], st.binary, false)), names[1], indent(show(got[1], st.binary, false)))
		}
		if bytes.HasSuffix(got[0], []byte("<TIMEOUT>")) {
			t.Fatalf("%s: memcached neither answered nor closed within %v: the case eats its sentinel (use part: or close:)\nrequest:\n%s",
				where, stepTimeout, indent(show(req, st.binary, true)))
		}
		if !bytes.Equal(got[0], got[1]) {
			t.Fatalf("%s: replies differ (masked), first at byte %d\nrequest:\n%s\n%s",
				where, firstDiff(got[0], got[1]), indent(show(req, st.binary, true)), diff(names, got, st.binary))
		}
	}
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// diff is a unified diff of the two replies, one protocol line a line.
func diff(names [2]string, got [2][]byte, binary bool) string {
	ud := difflib.UnifiedDiff{
		A:        difflib.SplitLines(show(got[0], binary, false)),
		B:        difflib.SplitLines(show(got[1], binary, false)),
		FromFile: names[0],
		ToFile:   names[1],
		Context:  3,
	}
	s, err := difflib.GetUnifiedDiffString(ud)
	if err != nil {
		return err.Error()
	}
	return s
}

const maxShownLine = 200

// render shows bytes readably: one protocol line a line, with \r, \n and
// other control or non-ASCII bytes escaped, long lines cut.
func render(b []byte) string {
	if len(b) == 0 {
		return "(nothing)\n"
	}
	var out strings.Builder
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line = b[:i+1]
		}
		b = b[len(line):]
		shown := line
		if len(shown) > maxShownLine {
			shown = shown[:maxShownLine]
		}
		for _, ch := range shown {
			switch {
			case ch == '\r':
				out.WriteString(`\r`)
			case ch == '\n':
				out.WriteString(`\n`)
			case ch == '\\':
				out.WriteString(`\\`)
			case ch < 0x20 || ch >= 0x7f:
				fmt.Fprintf(&out, `\x%02x`, ch)
			default:
				out.WriteByte(ch)
			}
		}
		if len(line) > maxShownLine {
			fmt.Fprintf(&out, "...(%d bytes in all)", len(line))
		}
		out.WriteByte('\n')
	}
	return out.String()
}

// show is render for text steps; a binary step's replies are already
// decoded (decodeBinary) and its request is decoded here.
func show(b []byte, binary, request bool) string {
	switch {
	case !binary:
		return render(b)
	case request:
		return string(decodeBinary(b, []binMask{briefValue}))
	}
	return string(b)
}

// briefValue shows only the start of a long value (of a request).
func briefValue(p *binPacket) { p.brief = true }

// Markers that do appends to a reply.
var replyMarkers = []string{"<EOF>", "<TIMEOUT>", "<connection already closed>"}

// decodeBinary shows binary packets readably and losslessly, apart from
// what bmasks hide: each packet as a header line with every header field,
// then its extras in hex, its key and its value escaped (values in lines
// of 64 bytes). Bytes that do not form a packet are shown escaped; a
// marker of do (<EOF>...) ends the text as it ends the reply.
func decodeBinary(b []byte, bmasks []binMask) []byte {
	marker := ""
	if len(b) > 0 && b[len(b)-1] == '>' {
		for _, m := range replyMarkers {
			if bytes.HasSuffix(b, []byte(m)) {
				b, marker = b[:len(b)-len(m)], m
				break
			}
		}
	}
	if bytes.HasPrefix(b, []byte("<dial: ")) {
		return b
	}
	var out strings.Builder
	if len(b) == 0 {
		out.WriteString("(nothing)\n")
	}
	for len(b) > 0 {
		var p binPacket
		magic := b[0]
		if !protocol.ParseBinHeader(b, &p.hdr) || (magic != protocol.BinRequestMagic && magic != protocol.BinResponseMagic) ||
			len(b)-protocol.BinHeaderLen < int(p.hdr.BodyLen) || int(p.hdr.ExtLen)+int(p.hdr.KeyLen) > int(p.hdr.BodyLen) {
			out.WriteString("bytes ")
			writeQuoted(&out, b)
			out.WriteByte('\n')
			break
		}
		body := b[protocol.BinHeaderLen : protocol.BinHeaderLen+int(p.hdr.BodyLen)]
		b = b[protocol.BinHeaderLen+len(body):]
		p.extras = body[:p.hdr.ExtLen]
		p.key = body[p.hdr.ExtLen : int(p.hdr.ExtLen)+int(p.hdr.KeyLen)]
		p.value = body[int(p.hdr.ExtLen)+int(p.hdr.KeyLen):]
		for _, m := range bmasks {
			m(&p)
		}
		p.write(&out)
	}
	out.WriteString(marker)
	return []byte(out.String())
}

// binStatusNames are memcached's names of the reply statuses.
var binStatusNames = map[uint16]string{
	0x00: "OK", 0x01: "KEY_ENOENT", 0x02: "KEY_EEXISTS", 0x03: "E2BIG", 0x04: "EINVAL",
	0x05: "NOT_STORED", 0x06: "DELTA_BADVAL", 0x07: "NOT_MY_VBUCKET",
	0x20: "AUTH_ERROR", 0x21: "AUTH_CONTINUE", 0x81: "UNKNOWN_COMMAND",
	0x82: "ENOMEM", 0x83: "NOT_SUPPORTED", 0x84: "EINTERNAL", 0x85: "EBUSY",
	0x86: "ETMPFAIL",
}

func (p *binPacket) write(out *strings.Builder) {
	h := &p.hdr
	if h.Magic == protocol.BinRequestMagic {
		fmt.Fprintf(out, "request %s vbucket=%d", binOpName(h.Opcode), h.VBucket)
	} else {
		name := binStatusNames[h.VBucket]
		if name == "" {
			name = "?"
		}
		fmt.Fprintf(out, "reply %s status=0x%04x(%s)", binOpName(h.Opcode), h.VBucket, name)
	}
	fmt.Fprintf(out, " keylen=%d extlen=%d datatype=0x%02x", h.KeyLen, h.ExtLen, h.DataType)
	if p.maskValue {
		out.WriteString(" bodylen=#")
	} else {
		fmt.Fprintf(out, " bodylen=%d", h.BodyLen)
	}
	if p.maskOpaque {
		out.WriteString(" opaque=#")
	} else {
		fmt.Fprintf(out, " opaque=0x%08x", h.Opaque)
	}
	if p.maskCAS {
		out.WriteString(" cas=#\n")
	} else {
		fmt.Fprintf(out, " cas=%d\n", h.CAS)
	}
	if len(p.extras) > 0 {
		fmt.Fprintf(out, "  extras %x\n", p.extras)
	}
	if len(p.key) > 0 {
		out.WriteString("  key ")
		writeQuoted(out, p.key)
		out.WriteByte('\n')
	}
	switch {
	case p.maskValue:
		out.WriteString("  value #\n")
	case p.brief && len(p.value) > 64:
		out.WriteString("  value ")
		writeQuoted(out, p.value[:64])
		fmt.Fprintf(out, "...(%d bytes)\n", len(p.value))
	case len(p.value) > 0:
		const chunk = 64
		for off := 0; off < len(p.value); off += chunk {
			v := p.value[off:min(off+chunk, len(p.value))]
			if off == 0 {
				out.WriteString("  value ")
			} else {
				fmt.Fprintf(out, "  value@%d ", off)
			}
			writeQuoted(out, v)
			out.WriteByte('\n')
		}
	}
}

// writeQuoted writes b in double quotes, with \r, \n, \t, \\, \" and
// other control or non-ASCII bytes escaped.
func writeQuoted(out *strings.Builder, b []byte) {
	out.WriteByte('"')
	for _, ch := range b {
		switch {
		case ch == '\r':
			out.WriteString(`\r`)
		case ch == '\n':
			out.WriteString(`\n`)
		case ch == '\t':
			out.WriteString(`\t`)
		case ch == '\\' || ch == '"':
			out.WriteByte('\\')
			out.WriteByte(ch)
		case ch < 0x20 || ch >= 0x7f:
			fmt.Fprintf(out, `\x%02x`, ch)
		default:
			out.WriteByte(ch)
		}
	}
	out.WriteByte('"')
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ")
}

// configFromFlags turns the memcached flags of a case into the change of
// gocached's default configuration that means the same.
func configFromFlags(flags []string) (func(*server.Config), error) {
	var muts []func(*server.Config)
	for i := 0; i < len(flags); i++ {
		f := flags[i]
		arg := func() (string, error) {
			if i+1 >= len(flags) {
				return "", fmt.Errorf("flag %s wants a value", f)
			}
			i++
			return flags[i], nil
		}
		atoi := func() (int, error) {
			v, err := arg()
			if err != nil {
				return 0, err
			}
			return strconv.Atoi(v)
		}
		var m func(*server.Config)
		switch f {
		case "-M":
			m = func(c *server.Config) { c.Store.DisableEvictions = true }
		case "-C":
			m = func(c *server.Config) { c.Store.DisableCAS = true }
		case "-A":
			m = func(c *server.Config) { c.EnableShutdown = true }
		case "-F":
			m = func(c *server.Config) { c.DisableFlushAll = true }
		case "-X":
			m = func(c *server.Config) { c.DisableDumping = true }
		case "-v", "-vv", "-vvv":
			n := len(f) - 1
			m = func(c *server.Config) { c.Verbosity = n }
		case "-m", "-c", "-t", "-R", "-n", "-b":
			v, err := atoi()
			if err != nil {
				return nil, fmt.Errorf("%s: %v", f, err)
			}
			m = map[string]func(*server.Config){
				"-m": func(c *server.Config) { c.Store.MemoryLimit = int64(v) << 20 },
				"-c": func(c *server.Config) { c.MaxConns = v },
				"-t": func(c *server.Config) { c.Threads = v },
				"-R": func(c *server.Config) { c.ReqsPerEvent = v },
				"-n": func(c *server.Config) { c.Store.MinChunkSize = v },
				"-b": func(c *server.Config) { c.Backlog = v },
			}[f]
		case "-f":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			g, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("-f: %v", err)
			}
			m = func(c *server.Config) { c.Store.GrowthFactor = g }
		case "-I":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			size, err := parseSize(v)
			if err != nil {
				return nil, fmt.Errorf("-I: %v", err)
			}
			m = func(c *server.Config) { c.Store.MaxItemSize = size }
		case "-B":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			m = func(c *server.Config) { c.Protocol = v }
		case "-o":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			m = func(c *server.Config) {
				for _, kv := range strings.Split(v, ",") {
					k, val, _ := strings.Cut(kv, "=")
					c.Extended[k] = val
					switch k {
					case "idle_timeout":
						secs, _ := strconv.Atoi(val)
						c.IdleTimeout = time.Duration(secs) * time.Second
					case "slab_sizes":
						c.Store.SlabSizes = []int{}
						for _, f := range strings.Split(val, "-") {
							if n, err := strconv.Atoi(f); err == nil {
								c.Store.SlabSizes = append(c.Store.SlabSizes, n)
							}
						}
					case "slab_chunk_max":
						// memcached 1.6.18 reads bytes (gocached's command
						// line reads kilobytes, as memcached 1.6.24+).
						c.Store.SlabChunkMax, _ = strconv.Atoi(val)
					case "no_lru_maintainer":
						c.Store.NoLRUMaintainer = true
					case "lru_maintainer":
						c.Store.NoLRUMaintainer = false
					case "no_lru_crawler":
						c.Store.NoLRUCrawler = true
					case "lru_crawler":
						c.Store.NoLRUCrawler = false
					case "no_slab_reassign":
						c.Store.NoSlabReassign = true
					case "slab_reassign":
						c.Store.NoSlabReassign = false
					case "slab_automove":
						c.Store.Automove, _ = strconv.Atoi(val)
						if c.Store.Automove == 0 {
							c.Store.Automove = slab.AutomoveDisabled
						}
					case "eviction": // gocached's own (gocached-flags)
						c.Store.Eviction = val
					case "temporary_ttl":
						c.Store.TempLRU = true
						c.Store.TemporaryTTL, _ = strconv.Atoi(val)
					case "track_sizes":
						// As gocached's sizesArgOrder: memcached sets the
						// histogram up with the -I and -C read so far.
						if !c.Store.TrackSizes {
							c.Store.TrackSizesItemMax = c.Store.MaxItemSize
							c.Store.TrackSizesNoItems = !c.Store.DisableCAS // until a -C
						}
						c.Store.TrackSizes = true
					}
				}
			}
		default:
			return nil, fmt.Errorf("flag %s has no gocached translation in configFromFlags", f)
		}
		muts = append(muts, m)
	}
	return func(c *server.Config) {
		for _, m := range muts {
			m(c)
		}
		c.Store.TrackSizesNoItems = c.Store.TrackSizesNoItems && c.Store.DisableCAS
	}, nil
}

// parseSize reads memcached's -I argument: bytes with an optional k, m or
// g suffix.
func parseSize(s string) (int, error) {
	mul := 1
	switch strings.ToLower(s[len(s)-1:]) {
	case "k":
		mul = 1 << 10
	case "m":
		mul = 1 << 20
	case "g":
		mul = 1 << 30
	}
	if mul != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	return n * mul, err
}
