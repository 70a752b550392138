package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gocached/gocached/server"
	"github.com/gocached/gocached/slab"
)

// compatVersion is the memcached release whose command line, defaults and
// messages gocached follows. "gocached -V" prints "gocached <compatVersion>"
// so scripts that take the second word of "memcached -V" keep working.
const compatVersion = "1.6.18"

// action is what the command line asks for.
type action int

const (
	actRun     action = iota // serve
	actHelp                  // -h: print usage, exit 0
	actVersion               // -V: print version, exit 0
	actLicense               // -i: print license, exit 0
)

// options is the parsed command line: the server's Config plus what the
// main package itself acts on.
type options struct {
	cfg server.Config

	user        string // -u
	daemon      bool   // -d
	pidFile     string // -P
	coreDumps   bool   // -r
	lockMemory  bool   // -k
	largePages  bool   // -L
	delimiter   string // -D
	memoryFile  string // -e
	napiIDs     int    // -N
	positionals []string

	// notImplemented lists options accepted but not acted on, each as the
	// user wrote it ("-L", "-o hashpower=20"); logged at warn level.
	notImplemented []string
	// notices are messages memcached prints to stderr at startup even
	// without -v (e.g. the -t > 64 warning); printed as they are.
	notices []string
}

// exitError is a command-line error: the message memcached prints (without
// trailing newline) and its exit status.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitErr(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// Exit statuses memcached uses (sysexits.h).
const (
	exUsage  = 64
	exNoUser = 67
	exOSErr  = 71
)

// item size limits (memcached's ITEM_SIZE_MAX_LOWER_LIMIT/UPPER_LIMIT).
const (
	itemSizeMin = 1024
	itemSizeMax = 1024 * 1024 * 1024
)

func init() {
	// urfave/cli answers its own HelpFlag (--help/-h) before running the
	// action, even with HideHelp; gocached prints memcached's usage itself.
	cli.HelpFlag = nil
}

// parseArgs turns a gocached command line (args[0] is the program name)
// into options, validating it as memcached 1.6.18 does and with its
// messages. It opens nothing and starts nothing.
func parseArgs(args []string) (*options, action, error) {
	prog := "gocached"
	if len(args) > 0 {
		args = args[1:]
	}
	// The official memcached image's command is "memcached -m 64 ..."; with
	// gocached as the entrypoint the word "memcached" arrives first.
	if len(args) > 0 && args[0] == "memcached" {
		args = args[1:]
	}
	norm, positional, err := normalize(prog, args)
	if err != nil {
		return nil, actRun, err
	}

	// Count -v here: urfave's BoolFlag.Count is off by its alias count.
	verbosity := 0
	for _, a := range norm {
		if a == "--verbose" {
			verbosity++
		}
	}
	var (
		listen   = cli.NewStringSlice()
		extended = cli.NewStringSlice()
		result   *options
		act      = actRun
	)
	app := &cli.App{
		Name:                      prog,
		HideHelp:                  true,
		HideVersion:               true,
		DisableSliceFlagSeparator: true,
		Writer:                    io.Discard,
		ErrWriter:                 io.Discard,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return exitErr(exUsage, "%s: %v", prog, err)
		},
		Flags: []cli.Flag{
			numFlag("port", "p", 11211, 10),
			numFlag("udp-port", "U", 0, 10),
			&cli.StringFlag{Name: "unix-socket", Aliases: []string{"s"}},
			numFlag("unix-mask", "a", 0o700, 8),
			&cli.BoolFlag{Name: "enable-shutdown", Aliases: []string{"A"}},
			&cli.StringSliceFlag{Name: "listen", Aliases: []string{"l"}, Destination: listen},
			&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}},
			&cli.BoolFlag{Name: "enable-coredumps", Aliases: []string{"r"}},
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}},
			numFlag("memory-limit", "m", 64, 10),
			&cli.BoolFlag{Name: "disable-evictions", Aliases: []string{"M"}},
			numFlag("conn-limit", "c", 1024, 10),
			&cli.BoolFlag{Name: "lock-memory", Aliases: []string{"k"}},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}},
			&cli.BoolFlag{Name: "help", Aliases: []string{"h"}},
			&cli.BoolFlag{Name: "license", Aliases: []string{"i"}},
			&cli.BoolFlag{Name: "version", Aliases: []string{"V"}},
			&cli.StringFlag{Name: "pidfile", Aliases: []string{"P"}},
			&cli.Float64Flag{Name: "slab-growth-factor", Aliases: []string{"f"}, Value: 1.25},
			numFlag("slab-min-size", "n", 48, 10),
			&cli.BoolFlag{Name: "enable-largepages", Aliases: []string{"L"}},
			&cli.StringFlag{Name: "D"},
			numFlag("threads", "t", 4, 10),
			numFlag("max-reqs-per-event", "R", 20, 10),
			&cli.BoolFlag{Name: "disable-cas", Aliases: []string{"C"}},
			numFlag("listen-backlog", "b", 1024, 10),
			&cli.StringFlag{Name: "protocol", Aliases: []string{"B"}, Value: "auto"},
			&cli.StringFlag{Name: "max-item-size", Aliases: []string{"I"}, Value: "1m"},
			&cli.BoolFlag{Name: "enable-sasl", Aliases: []string{"S"}},
			&cli.BoolFlag{Name: "disable-flush-all", Aliases: []string{"F"}},
			&cli.BoolFlag{Name: "disable-dumping", Aliases: []string{"X"}},
			&cli.BoolFlag{Name: "disable-watch", Aliases: []string{"W"}},
			&cli.StringFlag{Name: "auth-file", Aliases: []string{"Y"}},
			&cli.StringFlag{Name: "memory-file", Aliases: []string{"e"}},
			&cli.BoolFlag{Name: "enable-ssl", Aliases: []string{"Z"}},
			&cli.StringSliceFlag{Name: "extended", Aliases: []string{"o"}, Destination: extended},
			numFlag("napi-ids", "N", 0, 10),
		},
		Action: func(c *cli.Context) error {
			switch {
			case c.Bool("help"):
				act = actHelp
			case c.Bool("license"):
				act = actLicense
			case c.Bool("version"):
				act = actVersion
			}
			o, err := buildOptions(c, verbosity, listen.Value(), extended.Value(), act == actRun)
			result = o
			return err
		},
	}
	// normalize leaves only "--name[=value]" words; "--" keeps urfave from
	// reading anything else as a flag.
	argv := append([]string{prog}, norm...)
	if err := app.Run(argv); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return nil, actRun, ee
		}
		return nil, actRun, exitErr(exUsage, "%s: %v", prog, err)
	}
	if result != nil {
		result.positionals = positional
		sizesArgOrder(&result.cfg.Store, norm)
	}
	return result, act, nil
}

// buildOptions translates the parsed flags into options. Checks memcached
// makes while reading its arguments always run; those it makes after the
// loop (item size, TLS port) run only when the server is to start.
func buildOptions(c *cli.Context, verbosity int, listen, extended []string, run bool) (*options, error) {
	o := &options{cfg: server.DefaultConfig()}
	cfg := &o.cfg
	ni := func(s string) { o.notImplemented = append(o.notImplemented, s) }

	cfg.Port = int(num(c, "port"))
	cfg.UDPPort = int(num(c, "udp-port"))
	cfg.UnixSocket = c.String("unix-socket")
	mask := int(num(c, "unix-mask"))
	if mask < 0 || mask > 0o7777 {
		return nil, exitErr(exUsage, "Invalid unix socket mask %o", mask)
	}
	cfg.UnixMask = uint32(mask)
	cfg.EnableShutdown = c.Bool("enable-shutdown")
	for _, l := range listen {
		// memcached joins repeated -l with commas and splits on ",;".
		for _, a := range strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ';' }) {
			cfg.Listen = append(cfg.Listen, a)
		}
	}
	o.daemon = c.Bool("daemon")
	o.coreDumps = c.Bool("enable-coredumps")
	o.user = c.String("user")
	memMB := num(c, "memory-limit")
	cfg.Store.MemoryLimit = memMB << 20
	cfg.Store.DisableEvictions = c.Bool("disable-evictions")
	cfg.MaxConns = int(num(c, "conn-limit"))
	if cfg.MaxConns <= 0 {
		return nil, exitErr(1, "Maximum connections must be greater than 0")
	}
	o.lockMemory = c.Bool("lock-memory")
	cfg.Verbosity = verbosity
	o.pidFile = c.String("pidfile")
	cfg.Store.GrowthFactor = c.Float64("slab-growth-factor")
	if cfg.Store.GrowthFactor <= 1.0 {
		return nil, exitErr(1, "Factor must be greater than 1")
	}
	cfg.Store.MinChunkSize = int(num(c, "slab-min-size"))
	if cfg.Store.MinChunkSize <= 0 {
		return nil, exitErr(1, "Chunk size must be greater than 0")
	}
	// -L: memcached preallocates -m in large pages; gocached asks for
	// transparent huge pages on its item memory as it maps it.
	o.largePages = c.Bool("enable-largepages")
	cfg.Store.LargePages = o.largePages
	if c.IsSet("D") {
		o.delimiter = c.String("D")
		if o.delimiter == "" {
			return nil, exitErr(1, "No delimiter specified")
		}
		cfg.PrefixDelimiter = o.delimiter[0]
	}
	cfg.Threads = int(num(c, "threads"))
	if cfg.Threads <= 0 {
		return nil, exitErr(1, "Number of threads must be greater than 0")
	}
	if cfg.Threads > 64 {
		o.notices = append(o.notices, "WARNING: Setting a high number of workerthreads is not recommended.\n"+
			" Set this value to the number of cores in your machine or less.")
	}
	cfg.ReqsPerEvent = int(num(c, "max-reqs-per-event"))
	if cfg.ReqsPerEvent <= 0 {
		return nil, exitErr(1, "Number of requests per event must be greater than 0")
	}
	cfg.Store.DisableCAS = c.Bool("disable-cas")
	cfg.Backlog = int(num(c, "listen-backlog"))
	cfg.Protocol = c.String("protocol")
	switch cfg.Protocol {
	case "auto", "binary", "ascii":
	default:
		return nil, exitErr(exUsage, "Invalid value for binding protocol: %s\n"+
			" -- should be one of auto, binary, or ascii", cfg.Protocol)
	}
	itemSize := parseItemSize(c.String("max-item-size"))
	cfg.SASL = c.Bool("enable-sasl")
	cfg.DisableFlushAll = c.Bool("disable-flush-all")
	cfg.DisableDumping = c.Bool("disable-dumping")
	cfg.DisableWatch = c.Bool("disable-watch")
	cfg.AuthFile = c.String("auth-file")
	o.memoryFile = c.String("memory-file")
	cfg.Store.MemoryFile = o.memoryFile
	cfg.TLS = c.Bool("enable-ssl")
	if c.IsSet("napi-ids") {
		o.napiIDs = int(num(c, "napi-ids"))
		if o.napiIDs <= 0 {
			return nil, exitErr(1, "Maximum number of NAPI IDs must be greater than 0")
		}
		ni("-N " + strconv.Itoa(o.napiIDs))
	}

	// -o, in order; a later key overrides an earlier one.
	slabChunkMax, slabChunkChanged := 512*1024, false
	slabSizes, haveSlabSizes := "", false
	for _, arg := range extended {
		items, err := parseExtended(arg)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			cfg.Extended[it.key] = it.value
			switch it.key {
			case "idle_timeout":
				n, _ := strconv.ParseInt(it.value, 10, 64)
				cfg.IdleTimeout = time.Duration(n) * time.Second
			case "slab_automove":
				n, _ := strconv.Atoi(it.value)
				cfg.Store.Automove = n
				if n == 0 {
					cfg.Store.Automove = slab.AutomoveDisabled
				}
			case "no_lru_crawler":
				cfg.Store.NoLRUCrawler = true
			case "lru_crawler":
				cfg.Store.NoLRUCrawler = false
			case "eviction":
				cfg.Store.Eviction = it.value
			case "cluster_config":
				cfg.AutoDiscovery = true
				cfg.ClusterConfigFile = it.value
			case "lru_maintainer":
				cfg.Store.NoLRUMaintainer = false
			case "no_lru_maintainer":
				cfg.Store.NoLRUMaintainer = true
			case "track_sizes":
				cfg.Store.TrackSizes = true
			case "temporary_ttl":
				// memcached: atoi, any value turns the TEMP LRU on.
				cfg.Store.TempLRU = true
				cfg.Store.TemporaryTTL = int(int32(atoi(it.value)))
			case "hot_lru_pct":
				cfg.Store.HotLRUPct, _ = strconv.Atoi(it.value)
			case "warm_lru_pct":
				cfg.Store.WarmLRUPct, _ = strconv.Atoi(it.value)
			case "hot_max_factor":
				cfg.Store.HotMaxFactor, _ = strconv.ParseFloat(it.value, 64)
			case "warm_max_factor":
				cfg.Store.WarmMaxFactor, _ = strconv.ParseFloat(it.value, 64)
			case "lru_crawler_sleep":
				cfg.Store.CrawlerSleep, _ = strconv.Atoi(it.value)
			case "lru_crawler_tocrawl":
				cfg.Store.CrawlerToCrawl, _ = strconv.Atoi(it.value)
			case "read_buf_mem_limit":
				n, _ := strconv.ParseInt(it.value, 10, 64)
				cfg.ReadBufMemLimit = n << 20
			case "maxconns_fast":
				cfg.MaxConnsFast = true
			case "no_maxconns_fast":
				cfg.MaxConnsFast = false
			case "slab_chunk_max":
				// In kilobytes, as -h says and memcached 1.6.24+ reads
				// it (1.6.18 read bytes, against its own help text).
				kb, _ := strconv.Atoi(it.value)
				slabChunkMax = kb * 1024
				slabChunkChanged = true
			case "slab_sizes":
				// memcached parses the list after all options, against
				// the final -n and slab_chunk_max.
				slabSizes, haveSlabSizes = it.value, true
			case "slab_reassign":
				cfg.Store.NoSlabReassign = false
			case "no_slab_reassign":
				cfg.Store.NoSlabReassign = true
			case "resp_obj_mem_limit":
				o.notices = append(o.notices, "DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,")
			}
			if !implementedSubopts[it.key] {
				s := "-o " + it.key
				if it.hasValue {
					s += "=" + it.value
				}
				ni(s)
			}
		}
	}
	if !run {
		return o, nil
	}

	// Checks memcached makes after reading all arguments, in its order.
	pageSize := cfg.Store.PageSize
	switch {
	case itemSize < itemSizeMin:
		return nil, exitErr(exUsage, "Item max size cannot be less than 1024 bytes.")
	case int64(itemSize) > cfg.Store.MemoryLimit/2:
		return nil, exitErr(exUsage, "Cannot set item size limit higher than 1/2 of memory max.")
	case itemSize > itemSizeMax:
		return nil, exitErr(exUsage, "Cannot set item size limit higher than a gigabyte.")
	}
	if itemSize > 1024*1024 && !slabChunkChanged {
		slabChunkMax = pageSize / 2
	}
	switch {
	case slabChunkMax <= 0:
		return nil, exitErr(exUsage, "slab_chunk_max (bytes: %d) must be greater than 0", slabChunkMax)
	case slabChunkMax > itemSize:
		return nil, exitErr(exUsage, "slab_chunk_max (bytes: %d) cannot be larger than -I (item_size_max %d)", slabChunkMax, itemSize)
	case itemSize%slabChunkMax != 0:
		return nil, exitErr(exUsage, "-I (item_size_max: %d) must be evenly divisible by slab_chunk_max (bytes: %d)", itemSize, slabChunkMax)
	case pageSize%slabChunkMax != 0:
		return nil, exitErr(exUsage, "slab_chunk_max (bytes: %d) must divide evenly into %d (slab_page_size)", slabChunkMax, pageSize)
	}
	cfg.Store.MaxItemSize = itemSize
	cfg.Store.SlabChunkMax = slabChunkMax
	if haveSlabSizes {
		sizes, err := parseSlabSizes(slabSizes, cfg.Store.MinChunkSize, slabChunkMax)
		if err != nil {
			return nil, err
		}
		cfg.Store.SlabSizes = sizes
	}
	if cfg.Store.TempLRU && cfg.Store.NoLRUMaintainer {
		return nil, exitErr(exUsage, "temporary_ttl requires lru_maintainer to be enabled")
	}
	// memcached's SASL is binary only: -S binds binary unless -B names
	// another protocol, which is an error (even -B auto). cfg.Protocol
	// stays as given: the server binds SASL connections binary itself,
	// and -Y's check (server.initASCIIAuth) sees only an explicit -B
	// binary, as memcached's, which runs before this one.
	if cfg.SASL && c.IsSet("protocol") && cfg.Protocol != "binary" {
		return nil, exitErr(exUsage, "ERROR: You cannot allow the ASCII protocol while using SASL.")
	}
	if cfg.TLS && cfg.Port == 0 {
		return nil, exitErr(exUsage, "ERROR: You cannot enable SSL without a TCP port.")
	}
	return o, nil
}

// parseSlabSizes reads -o slab_sizes as memcached's _parse_slab_sizes:
// sizes separated by dashes (empty fields skipped, as strtok does), each
// at least -n (minChunk) and at most slab_chunk_max, each more than 8
// bytes above the one before, at most slab.MaxSlabSizes of them. A list
// with no size at all ("-") is valid and leaves only the chunk-max class;
// an empty value fails without a message.
func parseSlabSizes(v string, minChunk, chunkMax int) ([]int, error) {
	if v == "" {
		return nil, exitErr(exUsage, "")
	}
	sizes := []int{}
	last := uint32(0)
	for _, f := range strings.Split(v, "-") {
		if f == "" {
			continue
		}
		size, ok := strtoul32(f)
		if !ok || int64(size) < int64(minChunk) || int64(size) > int64(chunkMax) {
			return nil, exitErr(exUsage, "slab size %d is out of valid range", size)
		}
		if last >= size {
			return nil, exitErr(exUsage, "slab size %d cannot be lower than or equal to a previous class size", size)
		}
		if size <= last+8 {
			return nil, exitErr(exUsage, "slab size %d must be at least 8 bytes larger than previous class", size)
		}
		sizes = append(sizes, int(size))
		last = size
		if len(sizes) >= slab.MaxSlabSizes+1 {
			return nil, exitErr(exUsage, "too many slab classes specified")
		}
	}
	return sizes, nil
}

// strtoul32 is memcached's safe_strtoul: leading white space and a plus
// sign allowed, digits, then the end or white space; a value past 64 bits
// fails and a larger than 32-bit one wraps (so "4294967400" reads as
// 104). A failure reads as 0, which memcached then reports.
func strtoul32(f string) (uint32, bool) {
	i := 0
	for i < len(f) && isSpace(f[i]) {
		i++
	}
	if i < len(f) && f[i] == '+' {
		i++
	}
	start := i
	var n uint64
	for ; i < len(f) && f[i] >= '0' && f[i] <= '9'; i++ {
		d := uint64(f[i] - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if i == start || i < len(f) && !isSpace(f[i]) {
		return 0, false
	}
	return uint32(n), true
}

func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// sizesArgOrder applies memcached's reading of -o track_sizes in argument
// order (norm, from normalize): it sets the histogram up when it meets the
// option, sized for the -I read so far, and counting CAS values as they
// are then, so that a later -C leaves it counting nothing.
func sizesArgOrder(cfg *slab.Config, norm []string) {
	if !cfg.TrackSizes {
		return
	}
	itemMax, noCAS := 1<<20, false
	for _, w := range norm {
		name, val, _ := strings.Cut(w, "=")
		switch name {
		case "--disable-cas":
			noCAS = true
		case "--max-item-size":
			itemMax = parseItemSize(val)
		case "--extended":
			items, _ := parseExtended(val)
			for _, it := range items {
				if it.key == "track_sizes" {
					cfg.TrackSizesItemMax = itemMax
					cfg.TrackSizesNoItems = cfg.DisableCAS && !noCAS
					return
				}
			}
		}
	}
}

// parseItemSize reads -I as memcached does: a trailing k/K or m/M
// multiplies by 1024 or 1024², anything else is atoi's reading of the text
// (leading digits; garbage is 0, which the size check then rejects).
// gocached also takes g/G (1g = 1024m, the upper limit).
func parseItemSize(s string) int {
	if s == "" {
		return 0
	}
	mult := 1
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n := atoi(s)
	// Saturate rather than overflow: both ends are rejected anyway.
	if n < 0 {
		return -1
	}
	if n > itemSizeMax*2/int64(mult) {
		return itemSizeMax * 2
	}
	return int(n) * mult
}

// atoi is C's atoi: optional leading space and sign, then digits up to the
// first non-digit; no digits reads as 0.
func atoi(s string) int64 {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var n int64
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int64(s[i]-'0')
		if n > 1<<40 {
			break
		}
	}
	if neg {
		return -n
	}
	return n
}

// numValue is an integer flag value read in a fixed base: urfave/cli's
// IntFlag hands the text to the flag package, which reads "011211" as
// octal; memcached reads decimal (and -a in octal).
type numValue struct {
	n    int64
	base int
}

func (v *numValue) Set(s string) error {
	n, err := strconv.ParseInt(s, v.base, 64)
	if err != nil {
		if v.base == 8 {
			return errors.New("not an octal number")
		}
		return errors.New("not a number")
	}
	v.n = n
	return nil
}

func (v *numValue) String() string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(v.n, v.base)
}

func numFlag(name, alias string, def int64, base int) cli.Flag {
	return &cli.GenericFlag{Name: name, Aliases: []string{alias}, Value: &numValue{n: def, base: base}}
}

// num reads a numFlag.
func num(c *cli.Context, name string) int64 {
	return c.Generic(name).(*numValue).n
}
