package difftest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gocached/gocached/protocol"
)

// A testCase is one request script of the corpus.
type testCase struct {
	name   string
	file   string // file:line of its "case:" line
	flags  []string
	masks  []masker
	sorts  []*regexp.Regexp // runs of lines to sort in every reply
	bmasks []binMask        // masks of decoded binary replies
	steps  []step
	skipGo string // reason not to compare against gocached yet
	// goFlags are gocached's own flags for the case, after flags (e.g.
	// "-o eviction=lru" where the case pins memcached's segmented LRU).
	goFlags []string
}

type stepKind int

const (
	stepSend  stepKind = iota // write, then the sentinel; read up to its reply
	stepPart                  // write only; the next step completes the request
	stepClose                 // write, then read until the server closes
	stepDump                  // write; read a whole key dump, then do the sentinel
	stepSleep                 // wait
	stepConn                  // later steps use another connection
)

type step struct {
	kind  stepKind
	text  string // request, still with its {{...}} macros; escapes decoded
	sleep time.Duration
	conn  int
	line  int
	// binary: text is a list of binary requests (bsend, bpart, bclose),
	// encoded by encodeBinary once its macros are expanded
	binary bool
}

// defaultFlags are the memcached flags of a case without "flags:".
var defaultFlags = []string{"-m", "64"}

// maskAliases are the masks every case may name with "@".
var maskAliases = map[string]string{
	// the CAS unique of a gets/gats VALUE line
	"cas": `^VALUE \S+ \d+ \d+ (\d+)\r$`,
	// every stats value; the names and their order stay compared
	"stats": `^STAT \S+ ([^\r\n]*)\r$`,
	// the version number
	"version": `^VERSION ([^\r\n]*)\r$`,
	// stats conns: file descriptors and values
	"conns": `^STAT (\d+):\S+ ([^\r\n]*)\r$`,
	// the c<cas> and t<ttl> return flags of meta replies
	"metacas": `^(?:HD|VA \d+|EX|NF|NS|EN)\b.*? c(\d+)`,
	// la, cls and size of metadump lines: see testdata/dumps.txt
	"metadump": `^key=\S+ exp=\S+ la=(\d+) cas=\d+ fetch=\S+ cls=(\d+) size=(\d+)$`,
}

// loadCorpus parses every testdata/*.txt file.
func loadCorpus(dir string) ([]*testCase, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, err
	}
	var all []*testCase
	seen := map[string]string{}
	for _, f := range files {
		if filepath.Base(f) == "README.txt" {
			continue
		}
		cases, err := parseFile(f)
		if err != nil {
			return nil, err
		}
		for _, c := range cases {
			if prev, ok := seen[c.name]; ok {
				return nil, fmt.Errorf("%s: case %q already defined at %s", c.file, c.name, prev)
			}
			seen[c.name] = c.file
			all = append(all, c)
		}
	}
	return all, nil
}

var caseName = regexp.MustCompile(`^[a-z0-9_]+$`)

func parseFile(path string) ([]*testCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		cases []*testCase
		cur   *testCase
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		where := fmt.Sprintf("%s:%d", filepath.Base(path), n)
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s: want \"directive: value\", got %q", where, line)
		}
		val = strings.TrimPrefix(val, " ")
		if key == "case" {
			if !caseName.MatchString(val) {
				return nil, fmt.Errorf("%s: case name %q: use [a-z0-9_]", where, val)
			}
			cur = &testCase{name: val, file: where, flags: defaultFlags}
			cases = append(cases, cur)
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("%s: %q before the first case:", where, key)
		}
		switch key {
		case "flags":
			cur.flags = strings.Fields(val)
		case "mask":
			expr := val
			if strings.HasPrefix(val, "@") {
				if expr, ok = maskAliases[val[1:]]; !ok {
					return nil, fmt.Errorf("%s: unknown mask alias %s", where, val)
				}
			}
			re, err := regexp.Compile("(?m)" + expr)
			if err != nil {
				return nil, fmt.Errorf("%s: mask: %v", where, err)
			}
			cur.masks = append(cur.masks, regexpMask(re))
		case "mask-stats", "mask-stats-except":
			names := map[string]bool{}
			for _, n := range strings.Fields(val) {
				names[n] = true
			}
			cur.masks = append(cur.masks, statsMask(names, key == "mask-stats-except"))
			cur.bmasks = append(cur.bmasks, binStatsMask(names, key == "mask-stats-except"))
		case "bmask":
			for _, f := range strings.Fields(val) {
				m, ok := binMaskNames[f]
				if !ok {
					return nil, fmt.Errorf("%s: unknown bmask %q", where, f)
				}
				cur.bmasks = append(cur.bmasks, m)
			}
		case "sort":
			re, err := regexp.Compile(val)
			if err != nil {
				return nil, fmt.Errorf("%s: sort: %v", where, err)
			}
			cur.sorts = append(cur.sorts, re)
		case "skip-gocached":
			cur.skipGo = val
		case "gocached-flags":
			cur.goFlags = strings.Fields(val)
		case "send", "part", "close", "dump":
			text, err := unescape(val)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", where, err)
			}
			kind := map[string]stepKind{"send": stepSend, "part": stepPart, "close": stepClose, "dump": stepDump}[key]
			cur.steps = append(cur.steps, step{kind: kind, text: text, line: n})
		case "bsend", "bpart", "bclose":
			// Encoded once now to report mistakes at load time; sent
			// encoded again, with the macros of the moment.
			if _, err := encodeBinary(expand(val, time.Now())); err != nil {
				return nil, fmt.Errorf("%s: %v", where, err)
			}
			kind := map[string]stepKind{"bsend": stepSend, "bpart": stepPart, "bclose": stepClose}[key]
			cur.steps = append(cur.steps, step{kind: kind, text: val, line: n, binary: true})
		case "sleep":
			d, err := time.ParseDuration(val)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", where, err)
			}
			cur.steps = append(cur.steps, step{kind: stepSleep, sleep: d, line: n})
		case "conn":
			c, err := strconv.Atoi(val)
			if err != nil || c < 1 {
				return nil, fmt.Errorf("%s: conn wants a number from 1", where)
			}
			cur.steps = append(cur.steps, step{kind: stepConn, conn: c, line: n})
		default:
			return nil, fmt.Errorf("%s: unknown directive %q", where, key)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, c := range cases {
		if len(c.steps) == 0 {
			return nil, fmt.Errorf("%s: case %s has no steps", c.file, c.name)
		}
	}
	return cases, nil
}

// unescape decodes \r \n \t \0 \\ \xHH and \s (a space, for ends of lines).
// Macros {{...}} are left for expand.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("trailing backslash")
		}
		switch s[i] {
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '0':
			b.WriteByte(0)
		case 's':
			b.WriteByte(' ')
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+2 >= len(s) {
				return "", fmt.Errorf("short \\x escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("bad \\x escape: %v", err)
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

var (
	repeatMacro = regexp.MustCompile(`\{\{([^{}]*)\*(\d+)\}\}`)
	nowMacro    = regexp.MustCompile(`\{\{now([+-]\d+)?\}\}`)
)

// expand replaces the macros of a request: {{UNIT*N}} is UNIT repeated N
// times (innermost first, so they nest), {{now}}, {{now+N}} and {{now-N}}
// are the current unix time plus or minus N seconds.
func expand(s string, now time.Time) string {
	s = nowMacro.ReplaceAllStringFunc(s, func(m string) string {
		off := 0
		if sub := nowMacro.FindStringSubmatch(m); sub[1] != "" {
			off, _ = strconv.Atoi(sub[1])
		}
		return strconv.FormatInt(now.Unix()+int64(off), 10)
	})
	for repeatMacro.MatchString(s) {
		s = repeatMacro.ReplaceAllStringFunc(s, func(m string) string {
			sub := repeatMacro.FindStringSubmatch(m)
			n, _ := strconv.Atoi(sub[2])
			return strings.Repeat(sub[1], n)
		})
	}
	return s
}

// A masker hides the parts of a reply that may legitimately differ.
type masker func([]byte) []byte

func applyMasks(masks []masker, b []byte) []byte {
	for _, m := range masks {
		b = m(b)
	}
	return b
}

// sortRuns sorts, in b, every run of consecutive lines (each up to and
// with its '\n') that re matches, bytewise: the order of a key dump's
// lines depends on each server's LRU and hash layout, not on the protocol.
func sortRuns(re *regexp.Regexp, b []byte) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && len(lines[j]) > 0 && re.Match(lines[j]) {
			j++
		}
		if j == i {
			i++
			continue
		}
		slices.SortFunc(lines[i:j], bytes.Compare)
		i = j
	}
	return bytes.Join(lines, nil)
}

var statLine = regexp.MustCompile(`(?m)^STAT (\S+) ([^\r\n]*)\r$`)

// statsMask hides the values of the STAT lines named in names (or, with
// except, of all the others). A name matches a stat's whole name or its
// part after the last colon ("number" matches "items:1:number").
func statsMask(names map[string]bool, except bool) masker {
	return func(b []byte) []byte {
		return statLine.ReplaceAllFunc(b, func(line []byte) []byte {
			sub := statLine.FindSubmatch(line)
			name := string(sub[1])
			short := name[strings.LastIndexByte(name, ':')+1:]
			if (names[name] || names[short]) == except {
				return line
			}
			return []byte("STAT " + name + " #\r")
		})
	}
}

// regexpMask replaces what re matches with '#': its capture groups when it
// has some, else the whole match.
func regexpMask(re *regexp.Regexp) masker {
	return func(b []byte) []byte {
		locs := re.FindAllSubmatchIndex(b, -1)
		if locs == nil {
			return b
		}
		var out []byte
		last := 0
		for _, loc := range locs {
			spans := [][2]int{{loc[0], loc[1]}}
			if len(loc) > 2 {
				spans = spans[:0]
				for g := 2; g < len(loc); g += 2 {
					if loc[g] >= 0 {
						spans = append(spans, [2]int{loc[g], loc[g+1]})
					}
				}
			}
			for _, sp := range spans {
				out = append(out, b[last:sp[0]]...)
				out = append(out, '#')
				last = sp[1]
			}
		}
		return append(out, b[last:]...)
	}
}

// Binary requests (bsend, bpart, bclose): one or more requests separated by
// a lone ";", each an opcode name followed by NAME=VALUE fields; see
// testdata/README.txt.

// binOps names the opcodes of the binary protocol.
var binOps = map[string]uint8{
	"get": protocol.OpGet, "set": protocol.OpSet, "add": protocol.OpAdd,
	"replace": protocol.OpReplace, "delete": protocol.OpDelete,
	"incr": protocol.OpIncrement, "decr": protocol.OpDecrement,
	"quit": protocol.OpQuit, "flush": protocol.OpFlush, "getq": protocol.OpGetQ,
	"noop": protocol.OpNoop, "version": protocol.OpVersion, "getk": protocol.OpGetK,
	"getkq": protocol.OpGetKQ, "append": protocol.OpAppend, "prepend": protocol.OpPrepend,
	"stat": protocol.OpStat, "setq": protocol.OpSetQ, "addq": protocol.OpAddQ,
	"replaceq": protocol.OpReplaceQ, "deleteq": protocol.OpDeleteQ,
	"incrq": protocol.OpIncrementQ, "decrq": protocol.OpDecrementQ,
	"quitq": protocol.OpQuitQ, "flushq": protocol.OpFlushQ, "appendq": protocol.OpAppendQ,
	"prependq": protocol.OpPrependQ, "verbosity": protocol.OpVerbosity,
	"touch": protocol.OpTouch, "gat": protocol.OpGAT, "gatq": protocol.OpGATQ,
	"sasl_list_mechs": protocol.OpSASLListMechs, "sasl_auth": protocol.OpSASLAuth,
	"sasl_step": protocol.OpSASLStep, "gatk": protocol.OpGATK, "gatkq": protocol.OpGATKQ,
}

// binOpName is the name of an opcode in binOps, or its hex value.
func binOpName(op uint8) string {
	for n, o := range binOps {
		if o == op {
			return n
		}
	}
	return fmt.Sprintf("0x%02x", op)
}

// binFields are the fields a binary request may set; the number fields
// take decimal or 0x hex.
var binFields = map[string]bool{
	"key": true, "value": true, "extras": true, // BYTES, BYTES, hex
	"flags": true, "exptime": true, "delta": true, "initial": true, "level": true,
	"cas": true, "opaque": true,
	"magic": true, "keylen": true, "extlen": true, "bodylen": true,
	"datatype": true, "vbucket": true, "cut": true, "skip": true,
	"data": true, // BYTES of a raw pseudo-request
}

// encodeBinary encodes the binary requests of a step (macros expanded).
func encodeBinary(spec string) ([]byte, error) {
	var out []byte
	var group []string
	nreq := 0
	flush := func() error {
		if len(group) == 0 {
			return fmt.Errorf("empty binary request (two ';' in a row?)")
		}
		nreq++
		b, err := encodeBinRequest(group, nreq)
		out = append(out, b...)
		group = group[:0]
		return err
	}
	for _, tok := range strings.Fields(spec) {
		if tok == ";" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		group = append(group, tok)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// encodeBinRequest encodes one request; n is its position in its step,
// its default opaque.
func encodeBinRequest(toks []string, n int) ([]byte, error) {
	opName := toks[0]
	fields := map[string]string{}
	for _, t := range toks[1:] {
		k, v, ok := strings.Cut(t, "=")
		if !ok || !binFields[k] {
			return nil, fmt.Errorf("%s: want NAME=VALUE with a known NAME, got %q", opName, t)
		}
		if _, dup := fields[k]; dup {
			return nil, fmt.Errorf("%s: %s given twice", opName, k)
		}
		fields[k] = v
	}
	num := func(name string, def uint64, bits int) (uint64, error) {
		v, ok := fields[name]
		if !ok {
			return def, nil
		}
		x, err := strconv.ParseUint(v, 0, bits)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %v", opName, name, err)
		}
		return x, nil
	}
	bytesField := func(name string) ([]byte, error) {
		s, err := unescape(fields[name])
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", opName, name, err)
		}
		return []byte(s), nil
	}
	if opName == "raw" {
		for k := range fields {
			if k != "data" {
				return nil, fmt.Errorf("raw takes only data=")
			}
		}
		return bytesField("data")
	}
	var op uint8
	if o, ok := binOps[opName]; ok {
		op = o
	} else if v, err := strconv.ParseUint(opName, 0, 8); err == nil && strings.HasPrefix(opName, "0x") {
		op = uint8(v)
	} else {
		return nil, fmt.Errorf("unknown binary opcode %q", opName)
	}
	key, err := bytesField("key")
	if err != nil {
		return nil, err
	}
	value, err := bytesField("value")
	if err != nil {
		return nil, err
	}
	// The numbers of the default extras.
	var nums [6]uint64
	for i, f := range []struct {
		name string
		def  uint64
		bits int
	}{{"flags", 0, 32}, {"exptime", 0, 32}, {"delta", 1, 64}, {"initial", 0, 64}, {"level", 0, 32}, {"cas", 0, 64}} {
		if nums[i], err = num(f.name, f.def, f.bits); err != nil {
			return nil, err
		}
	}
	flags, exptime, delta, initial, level, cas := nums[0], nums[1], nums[2], nums[3], nums[4], nums[5]
	var extras []byte
	if hexs, ok := fields["extras"]; ok {
		if extras, err = hex.DecodeString(hexs); err != nil {
			return nil, fmt.Errorf("%s: extras: %v", opName, err)
		}
	} else {
		switch op {
		case protocol.OpSet, protocol.OpSetQ, protocol.OpAdd, protocol.OpAddQ, protocol.OpReplace, protocol.OpReplaceQ:
			extras = binary.BigEndian.AppendUint32(extras, uint32(flags))
			extras = binary.BigEndian.AppendUint32(extras, uint32(exptime))
		case protocol.OpIncrement, protocol.OpIncrementQ, protocol.OpDecrement, protocol.OpDecrementQ:
			extras = binary.BigEndian.AppendUint64(extras, delta)
			extras = binary.BigEndian.AppendUint64(extras, initial)
			extras = binary.BigEndian.AppendUint32(extras, uint32(exptime))
		case protocol.OpTouch, protocol.OpGAT, protocol.OpGATQ, protocol.OpGATK, protocol.OpGATKQ:
			extras = binary.BigEndian.AppendUint32(extras, uint32(exptime))
		case protocol.OpFlush, protocol.OpFlushQ:
			if _, ok := fields["exptime"]; ok {
				extras = binary.BigEndian.AppendUint32(extras, uint32(exptime))
			}
		case protocol.OpVerbosity:
			extras = binary.BigEndian.AppendUint32(extras, uint32(level))
		}
	}
	opaque, err := num("opaque", uint64(n), 32)
	if err != nil {
		return nil, err
	}
	b := protocol.AppendBinRequest(nil, op, uint32(opaque), cas, extras, key, value)
	// Header overrides, for malformed requests.
	for _, o := range []struct {
		name       string
		off, width int
	}{{"magic", 0, 1}, {"keylen", 2, 2}, {"extlen", 4, 1}, {"datatype", 5, 1}, {"vbucket", 6, 2}, {"bodylen", 8, 4}} {
		if _, ok := fields[o.name]; !ok {
			continue
		}
		v, err := num(o.name, 0, o.width*8)
		if err != nil {
			return nil, err
		}
		for i := o.width - 1; i >= 0; i-- {
			b[o.off+i] = byte(v)
			v >>= 8
		}
	}
	skip, err := num("skip", 0, 31)
	if err != nil {
		return nil, err
	}
	cut, err := num("cut", uint64(len(b)), 31)
	if err != nil {
		return nil, err
	}
	if skip > cut || cut > uint64(len(b)) {
		return nil, fmt.Errorf("%s: skip=%d cut=%d of a %d-byte request", opName, skip, cut, len(b))
	}
	return b[skip:cut], nil
}

// A binPacket is one decoded binary reply (or request, for display).
type binPacket struct {
	hdr                 protocol.BinHeader
	extras, key, value  []byte
	maskCAS, maskOpaque bool
	maskValue           bool // the value and the body length are shown as #
	brief               bool // a long value is shown cut (requests only)
}

// A binMask hides fields of a decoded binary reply.
type binMask func(*binPacket)

// binMaskNames are the masks "bmask:" names.
var binMaskNames = map[string]binMask{
	"cas":    func(p *binPacket) { p.maskCAS = true },
	"opaque": func(p *binPacket) { p.maskOpaque = true },
	// the version string of a version reply
	"version": func(p *binPacket) {
		if p.hdr.Opcode == protocol.OpVersion && p.hdr.VBucket == 0 {
			p.maskValue = true
		}
	},
	// every stat value; stat names and their order stay compared
	"stats": binStatsMask(nil, true),
}

// binStatsMask is statsMask for binary stat replies: the value (and body
// length) of the stat packets named in names, or with except of the
// others.
func binStatsMask(names map[string]bool, except bool) binMask {
	return func(p *binPacket) {
		if p.hdr.Opcode != protocol.OpStat || p.hdr.VBucket != 0 || len(p.key) == 0 {
			return
		}
		name := string(p.key)
		short := name[strings.LastIndexByte(name, ':')+1:]
		if (names[name] || names[short]) != except {
			p.maskValue = true
		}
	}
}
