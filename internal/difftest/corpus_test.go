package difftest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A testCase is one request script of the corpus.
type testCase struct {
	name   string
	file   string // file:line of its "case:" line
	flags  []string
	masks  []masker
	steps  []step
	skipGo string // reason not to compare against gocached yet
}

type stepKind int

const (
	stepSend  stepKind = iota // write, then the sentinel; read up to its reply
	stepPart                  // write only; the next step completes the request
	stepClose                 // write, then read until the server closes
	stepSleep                 // wait
	stepConn                  // later steps use another connection
)

type step struct {
	kind  stepKind
	text  string // request, still with its {{...}} macros; escapes decoded
	sleep time.Duration
	conn  int
	line  int
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
		case "skip-gocached":
			cur.skipGo = val
		case "send", "part", "close":
			text, err := unescape(val)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", where, err)
			}
			kind := map[string]stepKind{"send": stepSend, "part": stepPart, "close": stepClose}[key]
			cur.steps = append(cur.steps, step{kind: kind, text: text, line: n})
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
