package main

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/server"
)

// parse runs parseArgs on a command line given as words after the program
// name.
func parse(t *testing.T, args ...string) (*options, action, error) {
	t.Helper()
	return parseArgs(append([]string{"gocached"}, args...))
}

func mustParse(t *testing.T, args ...string) *options {
	t.Helper()
	o, act, err := parse(t, args...)
	if err != nil {
		t.Fatalf("parseArgs(%q): %v", args, err)
	}
	if act != actRun {
		t.Fatalf("parseArgs(%q): action %v, want run", args, act)
	}
	return o
}

func TestDefaults(t *testing.T) {
	for _, args := range [][]string{nil, {"memcached"}} {
		o := mustParse(t, args...)
		want := server.DefaultConfig()
		if !reflect.DeepEqual(o.cfg, want) {
			t.Errorf("%q: config\n got %+v\nwant %+v", args, o.cfg, want)
		}
		if o.user != "" || o.daemon || o.pidFile != "" || o.coreDumps || o.lockMemory ||
			len(o.notImplemented) != 0 || len(o.notices) != 0 || len(o.positionals) != 0 {
			t.Errorf("%q: non-default options %+v", args, o)
		}
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args  []string
		check func(o *options) bool
	}{
		{[]string{"-p", "11311"}, func(o *options) bool { return o.cfg.Port == 11311 }},
		{[]string{"--port=0"}, func(o *options) bool { return o.cfg.Port == 0 }},
		{[]string{"-p11312"}, func(o *options) bool { return o.cfg.Port == 11312 }},
		{[]string{"--port", "011211"}, func(o *options) bool { return o.cfg.Port == 11211 }}, // decimal, like atoi
		{[]string{"-U", "11211"}, func(o *options) bool { return o.cfg.UDPPort == 11211 }},
		{[]string{"--udp-port=5"}, func(o *options) bool { return o.cfg.UDPPort == 5 }},
		{[]string{"-l", "127.0.0.1"}, func(o *options) bool { return reflect.DeepEqual(o.cfg.Listen, []string{"127.0.0.1"}) }},
		{[]string{"-l", "127.0.0.1,::1", "--listen=notls:10.0.0.1:11212"}, func(o *options) bool {
			return reflect.DeepEqual(o.cfg.Listen, []string{"127.0.0.1", "::1", "notls:10.0.0.1:11212"})
		}},
		{[]string{"-l", "a;b"}, func(o *options) bool { return reflect.DeepEqual(o.cfg.Listen, []string{"a", "b"}) }},
		{[]string{"-s", "/tmp/mc.sock"}, func(o *options) bool { return o.cfg.UnixSocket == "/tmp/mc.sock" }},
		{[]string{"--unix-socket=/x"}, func(o *options) bool { return o.cfg.UnixSocket == "/x" }},
		{[]string{"-a", "0777"}, func(o *options) bool { return o.cfg.UnixMask == 0o777 }},
		{[]string{"--unix-mask=755"}, func(o *options) bool { return o.cfg.UnixMask == 0o755 }},
		{[]string{"-A"}, func(o *options) bool { return o.cfg.EnableShutdown }},
		{[]string{"--enable-shutdown"}, func(o *options) bool { return o.cfg.EnableShutdown }},
		{[]string{"-d"}, func(o *options) bool { return o.daemon }},
		{[]string{"--daemon"}, func(o *options) bool { return o.daemon }},
		{[]string{"-r"}, func(o *options) bool { return o.coreDumps }},
		{[]string{"--enable-coredumps"}, func(o *options) bool { return o.coreDumps }},
		{[]string{"-u", "nobody"}, func(o *options) bool { return o.user == "nobody" }},
		{[]string{"-unobody"}, func(o *options) bool { return o.user == "nobody" }},
		{[]string{"--user=nobody"}, func(o *options) bool { return o.user == "nobody" }},
		{[]string{"-m", "1024"}, func(o *options) bool { return o.cfg.Store.MemoryLimit == 1<<30 }},
		{[]string{"--memory-limit=8"}, func(o *options) bool { return o.cfg.Store.MemoryLimit == 8<<20 }},
		{[]string{"-M"}, func(o *options) bool { return o.cfg.Store.DisableEvictions }},
		{[]string{"--disable-evictions"}, func(o *options) bool { return o.cfg.Store.DisableEvictions }},
		{[]string{"-c", "10"}, func(o *options) bool { return o.cfg.MaxConns == 10 }},
		{[]string{"--conn-limit=4096"}, func(o *options) bool { return o.cfg.MaxConns == 4096 }},
		{[]string{"-k"}, func(o *options) bool { return o.lockMemory }},
		{[]string{"--lock-memory"}, func(o *options) bool { return o.lockMemory }},
		{[]string{"-P", "/run/gc.pid"}, func(o *options) bool { return o.pidFile == "/run/gc.pid" }},
		{[]string{"--pidfile=/p"}, func(o *options) bool { return o.pidFile == "/p" }},
		{[]string{"-f", "1.5"}, func(o *options) bool { return o.cfg.Store.GrowthFactor == 1.5 }},
		{[]string{"--slab-growth-factor=2"}, func(o *options) bool { return o.cfg.Store.GrowthFactor == 2 }},
		{[]string{"-n", "96"}, func(o *options) bool { return o.cfg.Store.MinChunkSize == 96 }},
		{[]string{"--slab-min-size=32"}, func(o *options) bool { return o.cfg.Store.MinChunkSize == 32 }},
		{[]string{"-L"}, func(o *options) bool { return o.cfg.Store.LargePages && !hasNI(o, "-L") }},
		{[]string{"--enable-largepages"}, func(o *options) bool { return o.largePages }},
		{[]string{"-D", ":"}, func(o *options) bool { return o.delimiter == ":" && o.cfg.PrefixDelimiter == ':' && !hasNI(o, "-D :") }},
		{[]string{"-D/"}, func(o *options) bool { return o.delimiter == "/" }},
		{[]string{"-t", "8"}, func(o *options) bool { return o.cfg.Threads == 8 && len(o.notices) == 0 }},
		{[]string{"--threads=65"}, func(o *options) bool {
			return o.cfg.Threads == 65 && len(o.notices) == 1 && strings.HasPrefix(o.notices[0], "WARNING: Setting a high number of workerthreads")
		}},
		{[]string{"-R", "5"}, func(o *options) bool { return o.cfg.ReqsPerEvent == 5 }},
		{[]string{"--max-reqs-per-event=7"}, func(o *options) bool { return o.cfg.ReqsPerEvent == 7 }},
		{[]string{"-C"}, func(o *options) bool { return o.cfg.Store.DisableCAS }},
		{[]string{"--disable-cas"}, func(o *options) bool { return o.cfg.Store.DisableCAS }},
		{[]string{"-b", "0"}, func(o *options) bool { return o.cfg.Backlog == 0 }},
		{[]string{"--listen-backlog=4096"}, func(o *options) bool { return o.cfg.Backlog == 4096 }},
		{[]string{"-B", "ascii"}, func(o *options) bool { return o.cfg.Protocol == "ascii" }},
		{[]string{"--protocol=binary"}, func(o *options) bool { return o.cfg.Protocol == "binary" }},
		{[]string{"-B", "auto"}, func(o *options) bool { return o.cfg.Protocol == "auto" }},
		{[]string{"-I", "2m"}, func(o *options) bool { return o.cfg.Store.MaxItemSize == 2<<20 }},
		{[]string{"--max-item-size=4m"}, func(o *options) bool { return o.cfg.Store.MaxItemSize == 4<<20 }},
		{[]string{"-S"}, func(o *options) bool { return o.cfg.SASL }},
		{[]string{"--enable-sasl"}, func(o *options) bool { return o.cfg.SASL }},
		{[]string{"-S", "-B", "binary"}, func(o *options) bool { return o.cfg.SASL && o.cfg.Protocol == "binary" }},
		{[]string{"-F"}, func(o *options) bool { return o.cfg.DisableFlushAll }},
		{[]string{"--disable-flush-all"}, func(o *options) bool { return o.cfg.DisableFlushAll }},
		{[]string{"-X"}, func(o *options) bool { return o.cfg.DisableDumping }},
		{[]string{"--disable-dumping"}, func(o *options) bool { return o.cfg.DisableDumping }},
		{[]string{"-W"}, func(o *options) bool { return o.cfg.DisableWatch }},
		{[]string{"--disable-watch"}, func(o *options) bool { return o.cfg.DisableWatch }},
		{[]string{"-Y", "/etc/auth"}, func(o *options) bool { return o.cfg.AuthFile == "/etc/auth" }},
		{[]string{"--auth-file=/a"}, func(o *options) bool { return o.cfg.AuthFile == "/a" }},
		{[]string{"-e", "/dev/shm/mc"}, func(o *options) bool {
			return o.memoryFile == "/dev/shm/mc" && o.cfg.Store.MemoryFile == "/dev/shm/mc" && !hasNI(o, "-e /dev/shm/mc")
		}},
		{[]string{"--memory-file=/m"}, func(o *options) bool { return o.memoryFile == "/m" }},
		{[]string{"-Z"}, func(o *options) bool { return o.cfg.TLS }},
		{[]string{"--enable-ssl"}, func(o *options) bool { return o.cfg.TLS }},
		{[]string{"-N", "4"}, func(o *options) bool { return o.napiIDs == 4 && hasNI(o, "-N 4") }},
		{[]string{"--napi-ids=2"}, func(o *options) bool { return o.napiIDs == 2 }},
		// verbosity: memcached's -v, -vv, -vvv and repeats
		{[]string{"-v"}, func(o *options) bool { return o.cfg.Verbosity == 1 }},
		{[]string{"-vv"}, func(o *options) bool { return o.cfg.Verbosity == 2 }},
		{[]string{"-vvv"}, func(o *options) bool { return o.cfg.Verbosity == 3 }},
		{[]string{"-v", "-v"}, func(o *options) bool { return o.cfg.Verbosity == 2 }},
		{[]string{"--verbose", "-vv"}, func(o *options) bool { return o.cfg.Verbosity == 3 }},
		{[]string{"--verb"}, func(o *options) bool { return o.cfg.Verbosity == 1 }}, // unique prefix
		// clustered short options, as getopt reads them
		{[]string{"-vvdA"}, func(o *options) bool { return o.cfg.Verbosity == 2 && o.daemon && o.cfg.EnableShutdown }},
		{[]string{"-dp1234"}, func(o *options) bool { return o.daemon && o.cfg.Port == 1234 }},
		{[]string{"-Mm", "128"}, func(o *options) bool { return o.cfg.Store.DisableEvictions && o.cfg.Store.MemoryLimit == 128<<20 }},
		// temporary_ttl is atoi'd; any value turns the TEMP LRU on.
		{[]string{"-o", "temporary_ttl=10"}, func(o *options) bool { return o.cfg.Store.TempLRU && o.cfg.Store.TemporaryTTL == 10 }},
		{[]string{"-o", "temporary_ttl=abc"}, func(o *options) bool { return o.cfg.Store.TempLRU && o.cfg.Store.TemporaryTTL == 0 }},
		{[]string{"-o", "temporary_ttl=-5"}, func(o *options) bool { return o.cfg.Store.TempLRU && o.cfg.Store.TemporaryTTL == -5 }},
		{[]string{"-o", "track_sizes"}, func(o *options) bool { return o.cfg.Store.TrackSizes }},
		{[]string{}, func(o *options) bool { return !o.cfg.Store.TrackSizes }},
		// memcached sets the histogram up as it reads -o track_sizes
		{[]string{"-I", "2m", "-o", "track_sizes", "-I", "4m"}, func(o *options) bool {
			return o.cfg.Store.TrackSizesItemMax == 2<<20 && !o.cfg.Store.TrackSizesNoItems
		}},
		{[]string{"-o", "hashpower=16,track_sizes", "-I", "4m"}, func(o *options) bool { return o.cfg.Store.TrackSizesItemMax == 1<<20 }},
		{[]string{"-o", "track_sizes", "-C"}, func(o *options) bool { return o.cfg.Store.TrackSizesNoItems }},
		{[]string{"-C", "-o", "track_sizes"}, func(o *options) bool { return !o.cfg.Store.TrackSizesNoItems }},
		{[]string{"-o", "track_sizes"}, func(o *options) bool { return !o.cfg.Store.TrackSizesNoItems }},
		{[]string{"-m", "64"}, func(o *options) bool { return !o.cfg.Store.TempLRU }},
		// positional words are ignored (memcached's getopt permutes them away)
		{[]string{"memcached", "-m", "64"}, func(o *options) bool { return o.cfg.Store.MemoryLimit == 64<<20 && len(o.positionals) == 0 }},
		{[]string{"memcached", "memcached"}, func(o *options) bool { return reflect.DeepEqual(o.positionals, []string{"memcached"}) }},
		{[]string{"-m", "32", "extra", "-p", "1"}, func(o *options) bool {
			return o.cfg.Store.MemoryLimit == 32<<20 && o.cfg.Port == 1 && reflect.DeepEqual(o.positionals, []string{"extra"})
		}},
		{[]string{"--", "-p", "1"}, func(o *options) bool {
			return o.cfg.Port == 11211 && reflect.DeepEqual(o.positionals, []string{"-p", "1"})
		}},
		// the official image's command line
		{[]string{"memcached", "-m", "64", "-c", "1024", "-v"}, func(o *options) bool {
			return o.cfg.Store.MemoryLimit == 64<<20 && o.cfg.MaxConns == 1024 && o.cfg.Verbosity == 1
		}},
	}
	for _, tt := range tests {
		o, act, err := parse(t, tt.args...)
		if err != nil || act != actRun {
			t.Errorf("%q: action %v, err %v", tt.args, act, err)
			continue
		}
		if !tt.check(o) {
			t.Errorf("%q: unexpected result %+v", tt.args, o)
		}
	}
}

func hasNI(o *options, s string) bool {
	for _, n := range o.notImplemented {
		if n == s {
			return true
		}
	}
	return false
}

// errCase is a command line and the error memcached gives for it.
type errCase struct {
	args []string
	code int
	msg  string
}

func checkErrors(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tt := range cases {
		_, _, err := parse(t, tt.args...)
		if err == nil {
			t.Errorf("%q: no error, want %q", tt.args, tt.msg)
			continue
		}
		var buf bytes.Buffer
		code := reportArgError(&buf, err)
		want := tt.msg + "\n"
		if tt.msg == "" { // memcached fails without a message
			want = ""
		}
		if code != tt.code || buf.String() != want {
			t.Errorf("%q: got status %d %q, want %d %q", tt.args, code, buf.String(), tt.code, want)
		}
	}
}

func TestArgErrors(t *testing.T) {
	ill := "\nIllegal argument \"?\""
	checkErrors(t, []errCase{
		{[]string{"-x"}, 1, "gocached: invalid option -- 'x'" + ill},
		{[]string{"-vx"}, 1, "gocached: invalid option -- 'x'" + ill},
		{[]string{"--bogus"}, 1, "gocached: unrecognized option '--bogus'" + ill},
		{[]string{"--bogus=1"}, 1, "gocached: unrecognized option '--bogus=1'" + ill},
		{[]string{"--ver"}, 1, "gocached: option '--ver' is ambiguous; possibilities: '--version' '--verbose'" + ill},
		{[]string{"--memory=64"}, 1, "gocached: option '--memory=64' is ambiguous; possibilities: '--memory-limit' '--memory-file'" + ill},
		{[]string{"--port"}, 1, "gocached: option '--port' requires an argument" + ill},
		{[]string{"--daemon=1"}, 1, "gocached: option '--daemon' doesn't allow an argument" + ill},
		{[]string{"-D"}, 1, "gocached: option requires an argument -- 'D'" + ill},
		{[]string{"-p"}, 1, "gocached: option requires an argument -- 'p'" + ill},
		{[]string{"-D", ""}, 1, "No delimiter specified"},
		{[]string{"-t", "0"}, 1, "Number of threads must be greater than 0"},
		{[]string{"-c", "0"}, 1, "Maximum connections must be greater than 0"},
		{[]string{"-f", "1"}, 1, "Factor must be greater than 1"},
		{[]string{"-n", "0"}, 1, "Chunk size must be greater than 0"},
		{[]string{"-R", "0"}, 1, "Number of requests per event must be greater than 0"},
		{[]string{"-N", "0"}, 1, "Maximum number of NAPI IDs must be greater than 0"},
		{[]string{"-B", "foo"}, 64, "Invalid value for binding protocol: foo\n -- should be one of auto, binary, or ascii"},
		{[]string{"-Z", "-p", "0"}, 64, "ERROR: You cannot enable SSL without a TCP port."},
		{[]string{"-S", "-B", "ascii"}, 64, "ERROR: You cannot allow the ASCII protocol while using SASL."},
		{[]string{"-B", "ascii", "-S"}, 64, "ERROR: You cannot allow the ASCII protocol while using SASL."},
		{[]string{"-S", "-B", "auto"}, 64, "ERROR: You cannot allow the ASCII protocol while using SASL."},
		// memcached's order: the item size, slab_chunk_max and LRU checks first, TLS after
		{[]string{"-S", "-B", "ascii", "-I", "2"}, 64, "Item max size cannot be less than 1024 bytes."},
		{[]string{"-S", "-B", "ascii", "-o", "temporary_ttl=5,no_lru_maintainer"}, 64, "temporary_ttl requires lru_maintainer to be enabled"},
		{[]string{"-S", "-B", "ascii", "-Z", "-p", "0"}, 64, "ERROR: You cannot allow the ASCII protocol while using SASL."},
		// gocached is stricter than atoi for plain numbers, and says so
		{[]string{"-p", "abc"}, 64, `gocached: invalid value "abc" for flag -port: not a number`},
		{[]string{"-a", "9"}, 64, `gocached: invalid value "9" for flag -unix-mask: not an octal number`},
	})
}

func TestMaxItemSize(t *testing.T) {
	sizes := []struct {
		args []string
		want int
	}{
		{[]string{"-I", "1m"}, 1 << 20},
		{[]string{"-I", "1M"}, 1 << 20},
		{[]string{"-I", "1048576"}, 1 << 20},
		{[]string{"-I", "512k"}, 512 << 10},
		{[]string{"-I", "512K"}, 512 << 10},
		{[]string{"-I", "1.5m"}, 1 << 20}, // atoi("1.5") is 1, as in memcached
		{[]string{"-I", "2m"}, 2 << 20},
		{[]string{"-I", "16m"}, 16 << 20},
		{[]string{"-I", "1024m", "-m", "4096"}, 1 << 30},
		{[]string{"-I", "1g", "-m", "4096"}, 1 << 30},
		{[]string{"-I", "1G", "-m", "2048"}, 1 << 30},
		// slab_chunk_max is in kilobytes, as memcached 1.6.24+ reads it
		// (1.6.18 reads bytes).
		{[]string{"-I", "1k", "-o", "slab_chunk_max=1"}, 1024},
		{[]string{"-I", "1024", "-o", "slab_chunk_max=1"}, 1024},
		{[]string{"-I", "64k", "-o", "slab_chunk_max=16"}, 64 << 10},
		{[]string{"-I", "2m", "-o", "slab_chunk_max=1024"}, 2 << 20},
		// checks after the loop do not run for -V, as in memcached
	}
	for _, tt := range sizes {
		o := mustParse(t, tt.args...)
		if o.cfg.Store.MaxItemSize != tt.want {
			t.Errorf("%q: MaxItemSize %d, want %d", tt.args, o.cfg.Store.MaxItemSize, tt.want)
		}
	}
	checkErrors(t, []errCase{
		{[]string{"-I", "512"}, 64, "Item max size cannot be less than 1024 bytes."},
		{[]string{"-I", "1023"}, 64, "Item max size cannot be less than 1024 bytes."},
		{[]string{"-I", "0"}, 64, "Item max size cannot be less than 1024 bytes."},
		{[]string{"-I", "abc"}, 64, "Item max size cannot be less than 1024 bytes."},
		{[]string{"-I", "-5k"}, 64, "Item max size cannot be less than 1024 bytes."},
		{[]string{"-I", ""}, 64, "Item max size cannot be less than 1024 bytes."},
		{[]string{"-I", "2000m"}, 64, "Cannot set item size limit higher than 1/2 of memory max."},
		{[]string{"-I", "4m", "-m", "2"}, 64, "Cannot set item size limit higher than 1/2 of memory max."},
		{[]string{"-I", "1025m", "-m", "4096"}, 64, "Cannot set item size limit higher than a gigabyte."},
		{[]string{"-I", "2g", "-m", "8192"}, 64, "Cannot set item size limit higher than a gigabyte."},
		{[]string{"-I", "99999999999999999999g", "-m", "99999999"}, 64, "Cannot set item size limit higher than a gigabyte."},
		{[]string{"-I", "1k"}, 64, "slab_chunk_max (bytes: 524288) cannot be larger than -I (item_size_max 1024)"},
		{[]string{"-I", "2k"}, 64, "slab_chunk_max (bytes: 524288) cannot be larger than -I (item_size_max 2048)"},
		{[]string{"-I", "1000k"}, 64, "-I (item_size_max: 1024000) must be evenly divisible by slab_chunk_max (bytes: 524288)"},
		{[]string{"-I", "3k", "-o", "slab_chunk_max=3"}, 64, "slab_chunk_max (bytes: 3072) must divide evenly into 1048576 (slab_page_size)"},
		{[]string{"-I", "1k", "-o", "slab_chunk_max=1024"}, 64, "slab_chunk_max (bytes: 1048576) cannot be larger than -I (item_size_max 1024)"},
		{[]string{"-I", "4m", "-o", "slab_chunk_max=0"}, 64, "slab_chunk_max (bytes: 0) must be greater than 0"},
	})
}

func TestExtended(t *testing.T) {
	o := mustParse(t, "-o", "hashpower=20,no_lru_crawler", "--extended=idle_timeout=30", "-o", "no_maxconns_fast,",
		"-o", "ext_path=/mnt/ext:1G,ssl_ciphers=HIGH:!aNULL")
	wantExt := map[string]string{
		"hashpower":        "20",
		"no_lru_crawler":   "",
		"idle_timeout":     "30",
		"no_maxconns_fast": "",
		"ext_path":         "/mnt/ext:1G",
		"ssl_ciphers":      "HIGH:!aNULL",
	}
	if !reflect.DeepEqual(o.cfg.Extended, wantExt) {
		t.Errorf("Extended = %v, want %v", o.cfg.Extended, wantExt)
	}
	if o.cfg.IdleTimeout != 30*time.Second {
		t.Errorf("IdleTimeout = %v", o.cfg.IdleTimeout)
	}
	if o.cfg.MaxConnsFast {
		t.Error("no_maxconns_fast did not clear MaxConnsFast")
	}
	if !o.cfg.Store.NoLRUCrawler {
		t.Error("no_lru_crawler did not set Store.NoLRUCrawler")
	}
	for _, ni := range []string{"-o hashpower=20", "-o ext_path=/mnt/ext:1G", "-o ssl_ciphers=HIGH:!aNULL"} {
		if !hasNI(o, ni) {
			t.Errorf("%q not reported as not implemented: %q", ni, o.notImplemented)
		}
	}
	for _, impl := range []string{"-o idle_timeout=30", "-o no_maxconns_fast", "-o no_lru_crawler"} {
		if hasNI(o, impl) {
			t.Errorf("%q reported as not implemented", impl)
		}
	}
	if o := mustParse(t, "-o", "no_maxconns_fast", "-o", "maxconns_fast"); !o.cfg.MaxConnsFast {
		t.Error("later maxconns_fast did not win")
	}
	for _, tc := range []struct {
		arg  string
		file string
	}{{"cluster_config=/etc/gocached/cluster.cfg", "/etc/gocached/cluster.cfg"}, {"cluster_config", ""}} {
		if o := mustParse(t, "-o", tc.arg); !o.cfg.AutoDiscovery || o.cfg.ClusterConfigFile != tc.file {
			t.Errorf("-o %s: AutoDiscovery %v file %q", tc.arg, o.cfg.AutoDiscovery, o.cfg.ClusterConfigFile)
		}
	}
	if o := mustParse(t); o.cfg.AutoDiscovery {
		t.Error("auto-discovery on by default")
	}
	if o := mustParse(t, "-o", ""); len(o.cfg.Extended) != 0 {
		t.Errorf("empty -o gave %v", o.cfg.Extended)
	}
	if o := mustParse(t, "-o", "resp_obj_mem_limit"); len(o.notices) != 1 || !strings.HasPrefix(o.notices[0], "DEPRECATED") {
		t.Errorf("resp_obj_mem_limit notices %q", o.notices)
	}

	// Every suboption memcached accepts, with a valid value where needed.
	all := map[string]string{
		"maxconns_fast": "", "no_maxconns_fast": "", "hashpower": "16", "no_hashexpand": "",
		"slab_reassign": "", "slab_automove": "1", "slab_automove_ratio": "0.8", "slab_automove_window": "30",
		"tail_repair_time": "60", "hash_algorithm": "murmur3", "lru_crawler": "", "no_lru_crawler": "",
		"lru_crawler_sleep": "100", "lru_crawler_tocrawl": "0", "lru_maintainer": "", "no_lru_maintainer": "",
		"hot_lru_pct": "20", "warm_lru_pct": "40", "hot_max_factor": "0.2", "warm_max_factor": "2.0",
		"temporary_ttl": "61", "idle_timeout": "0", "watcher_logbuf_size": "256", "worker_logbuf_size": "64",
		"read_buf_mem_limit": "0", "resp_obj_mem_limit": "", "slab_sizes": "96-192", "slab_chunk_max": "512",
		"track_sizes": "", "inline_ascii_resp": "", "no_inline_ascii_resp": "", "modern": "", "no_modern": "",
		"no_chunked_items": "", "no_slab_reassign": "", "no_slab_automove": "", "drop_privileges": "",
		"no_drop_privileges": "", "relaxed_privileges": "", "sock_cookie_id": "42",
		"ssl_chain_cert": "/c.pem", "ssl_key": "/k.pem", "ssl_verify_mode": "2", "ssl_keyformat": "1",
		"ssl_ciphers": "HIGH", "ssl_ca_cert": "/ca.pem", "ssl_wbuf_size": "16", "ssl_session_cache": "",
		"ssl_kernel_tls": "", "ssl_min_version": "3",
		"ext_path": "/e:1G", "ext_page_size": "64", "ext_wbuf_size": "4", "ext_threads": "1", "ext_io_depth": "1",
		"ext_item_size": "512", "ext_item_age": "10", "ext_low_ttl": "0", "ext_recache_rate": "2000",
		"ext_compact_under": "10", "ext_drop_under": "10", "ext_max_sleep": "1000000", "ext_max_frag": "0.8",
		"ext_drop_unread": "", "slab_automove_freeratio": "0.01",
		"metrics_listen": "127.0.0.1:9150", "eviction": "s3fifo", "cluster_config": "/c.cfg", // gocached's own
	}
	if len(all) != len(suboptions) {
		t.Errorf("test covers %d suboptions, table has %d", len(all), len(suboptions))
	}
	for k, v := range all {
		arg := k
		if v != "" {
			arg += "=" + v
		}
		o, _, err := parse(t, "-o", arg)
		if err != nil {
			t.Errorf("-o %s: %v", arg, err)
			continue
		}
		if got, ok := o.cfg.Extended[k]; !ok || got != v {
			t.Errorf("-o %s: Extended[%s] = %q, %v", arg, k, got, ok)
		}
	}

	checkErrors(t, []errCase{
		{[]string{"-o", "bogus"}, 1, `Illegal suboption "bogus"`},
		{[]string{"-o", "bogus=1"}, 1, `Illegal suboption "bogus=1"`},
		{[]string{"-o", "hashpower=12,bogus"}, 1, `Illegal suboption "bogus"`},
		{[]string{"-o", "hashpower=12", "-o", "nope"}, 1, `Illegal suboption "nope"`},
		{[]string{"-o", ","}, 1, `Illegal suboption ""`},
		{[]string{"-o", "a,,b"}, 1, `Illegal suboption "a"`},
		{[]string{"-o", "=1"}, 1, `Illegal suboption "=1"`},
		{[]string{"-o", "hashpower"}, 1, "Missing numeric argument for hashpower"},
		{[]string{"-o", "hashpower=abc"}, 1, "Initial hashtable multiplier of 0 is too low"},
		{[]string{"-o", "hashpower=33"}, 1, "Initial hashtable multiplier of 33 is too high\nChoose a value based on \"STAT hash_power_level\" from a running instance"},
		{[]string{"-o", "idle_timeout"}, 1, "Missing numeric argument for idle_timeout"},
		{[]string{"-o", "idle_timeout=abc"}, 1, "could not parse argument to idle_timeout"},
		{[]string{"-o", "hash_algorithm=foo"}, 1, "Unknown hash_algorithm option (jenkins, murmur3, xxh3)"},
		{[]string{"-o", "hot_lru_pct=90"}, 1, "hot_lru_pct must be > 1 and < 80"},
		{[]string{"-o", "warm_lru_pct"}, 1, "Missing warm_lru_pct argument"},
		{[]string{"-o", "hot_max_factor=0"}, 1, "hot_max_factor must be > 0"},
		{[]string{"-o", "tail_repair_time=5"}, 1, "Cannot set tail_repair_time to less than 10 seconds"},
		{[]string{"-o", "lru_crawler_sleep"}, 1, "Missing lru_crawler_sleep value"},
		{[]string{"-o", "lru_crawler_sleep=-1"}, 1, "LRU crawler sleep must be between 0 and 1 second"},
		{[]string{"-o", "lru_crawler_tocrawl=abc"}, 1, "lru_crawler_tocrawl takes a numeric 32bit value"},
		{[]string{"-o", "slab_automove=9"}, 1, "slab_automove must be between 0 and 2"},
		{[]string{"-o", "slab_automove_ratio=0"}, 1, "slab_automove_ratio must be > 0 and < 1"},
		{[]string{"-o", "slab_automove_window=2"}, 1, "slab_automove_window must be > 2"},
		{[]string{"-o", "slab_chunk_max=64k"}, 1, "could not parse argument to slab_chunk_max"},
		{[]string{"-o", "watcher_logbuf_size=x"}, 1, "could not parse argument to watcher_logbuf_size"},
		{[]string{"-o", "ssl_verify_mode=9"}, 1, "Invalid ssl_verify_mode. Use help to see valid options."},
		{[]string{"-o", "ssl_min_version=abc"}, 1, "could not parse argument to ssl_min_version"},
		{[]string{"-o", "ssl_keyformat=PEM"}, 1, "could not parse argument to ssl_keyformat"},
		{[]string{"-o", "ext_path"}, 1, "missing argument to ext_path, ie: ext_path=/d/file:5G"},
		{[]string{"-o", "ext_path=/tmp/x"}, 1, "must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P supported)\nfailed to parse ext_path argument"},
		{[]string{"-o", "ext_max_frag=x"}, 1, "could not parse argument to ext_max_frag"},
		{[]string{"-o", "temporary_ttl"}, 1, "Missing temporary_ttl argument"},
		{[]string{"-o", "temporary_ttl=10,no_lru_maintainer"}, 64, "temporary_ttl requires lru_maintainer to be enabled"},
		{[]string{"-o", "no_lru_maintainer", "-o", "temporary_ttl=1"}, 64, "temporary_ttl requires lru_maintainer to be enabled"},
	})
}

func TestTerminalOptions(t *testing.T) {
	tests := []struct {
		args []string
		want action
	}{
		{[]string{"-h"}, actHelp},
		{[]string{"--help"}, actHelp},
		{[]string{"-V"}, actVersion},
		{[]string{"--version"}, actVersion},
		{[]string{"--vers"}, actVersion},
		{[]string{"-i"}, actLicense},
		{[]string{"--license"}, actLicense},
		{[]string{"memcached", "-V"}, actVersion},
		{[]string{"-vvV"}, actVersion},
		// memcached stops reading at -h/-V/-i, so later mistakes do not count,
		{[]string{"-V", "-o", "bogus", "-x"}, actVersion},
		{[]string{"-h", "--bogus"}, actHelp},
		// nor do the checks it makes after reading all arguments.
		{[]string{"-I", "2k", "-V"}, actVersion},
	}
	for _, tt := range tests {
		_, act, err := parse(t, tt.args...)
		if err != nil || act != tt.want {
			t.Errorf("%q: action %v, err %v; want %v", tt.args, act, err, tt.want)
		}
	}
	// Earlier mistakes do.
	checkErrors(t, []errCase{
		{[]string{"-o", "bogus", "-V"}, 1, `Illegal suboption "bogus"`},
		{[]string{"-x", "-h"}, 1, "gocached: invalid option -- 'x'\nIllegal argument \"?\""},
	})
}

func TestParseItemSize(t *testing.T) {
	for in, want := range map[string]int{
		"1": 1, "1k": 1024, "1K": 1024, "1m": 1 << 20, "1M": 1 << 20, "1g": 1 << 30, "1G": 1 << 30,
		"": 0, "k": 0, "abc": 0, "12abc": 12, " 7": 7, "+3k": 3072, "-1m": -1, "2x": 2,
	} {
		if got := parseItemSize(in); got != want {
			t.Errorf("parseItemSize(%q) = %d, want %d", in, got, want)
		}
	}
	if got := parseItemSize("99999999999999999999999m"); got <= itemSizeMax {
		t.Errorf("huge size read as %d", got)
	}
}

func TestExitErrorType(t *testing.T) {
	_, _, err := parse(t, "-o", "bogus")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("err = %#v", err)
	}
}

// TestSlabLayout checks -o slab_sizes, slab_chunk_max and
// (no_)slab_reassign against memcached 1.6.18's reading of them, but for
// slab_chunk_max's unit: kilobytes, as memcached 1.6.24+ (1.6.18: bytes).
func TestSlabLayout(t *testing.T) {
	tests := []struct {
		args     []string
		sizes    []int // nil: no slab_sizes
		chunkMax int
		noReasgn bool
	}{
		{nil, nil, 512 << 10, false},
		{[]string{"-o", "slab_sizes=100-200-300"}, []int{100, 200, 300}, 512 << 10, false},
		{[]string{"-o", "slab_sizes=100--200-"}, []int{100, 200}, 512 << 10, false}, // empty fields skipped, as strtok
		{[]string{"-o", "slab_sizes=---"}, []int{}, 512 << 10, false},               // no size: only the chunk-max class
		{[]string{"-o", "slab_sizes=100 -+200"}, []int{100, 200}, 512 << 10, false}, // strtoul's spaces and sign
		{[]string{"-o", "slab_sizes=4294967400"}, []int{104}, 512 << 10, false},     // wraps to 32 bits, as memcached
		{[]string{"-o", "slab_sizes=100-524288"}, []int{100, 524288}, 512 << 10, false},
		{[]string{"-n", "20", "-o", "slab_sizes=20-40"}, []int{20, 40}, 512 << 10, false},
		{[]string{"-o", "slab_sizes=100-1000", "-o", "slab_sizes=200"}, []int{200}, 512 << 10, false}, // the last wins
		{[]string{"-o", "slab_chunk_max=16"}, nil, 16384, false},                                      // kilobytes (memcached 1.6.24+)
		{[]string{"-o", "slab_sizes=100-16384,slab_chunk_max=16"}, []int{100, 16384}, 16384, false},
		{[]string{"-o", "no_slab_reassign"}, nil, 512 << 10, true},
		{[]string{"-o", "no_slab_reassign,slab_reassign"}, nil, 512 << 10, false},
		{[]string{"-o", "slab_reassign", "-o", "no_slab_reassign"}, nil, 512 << 10, true},
	}
	for _, tc := range tests {
		o := mustParse(t, tc.args...)
		sc := o.cfg.Store
		if !reflect.DeepEqual(sc.SlabSizes, tc.sizes) || sc.SlabChunkMax != tc.chunkMax || sc.NoSlabReassign != tc.noReasgn {
			t.Errorf("%q: SlabSizes %v SlabChunkMax %d NoSlabReassign %v, want %v %d %v", tc.args,
				sc.SlabSizes, sc.SlabChunkMax, sc.NoSlabReassign, tc.sizes, tc.chunkMax, tc.noReasgn)
		}
		for _, ni := range o.notImplemented {
			if strings.Contains(ni, "slab") {
				t.Errorf("%q: %q reported as not implemented", tc.args, ni)
			}
		}
	}
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte('-')
			}
			b.WriteString(strconv.Itoa(96 + 16*i))
		}
		return b.String()
	}
	if o := mustParse(t, "-o", "slab_sizes="+many(62)); len(o.cfg.Store.SlabSizes) != 62 {
		t.Errorf("62 slab sizes: got %d", len(o.cfg.Store.SlabSizes))
	}
	checkErrors(t, []errCase{
		{[]string{"-o", "slab_sizes=200-100"}, 64, "slab size 100 cannot be lower than or equal to a previous class size"},
		{[]string{"-o", "slab_sizes=100-100"}, 64, "slab size 100 cannot be lower than or equal to a previous class size"},
		{[]string{"-o", "slab_sizes=100-108"}, 64, "slab size 108 must be at least 8 bytes larger than previous class"},
		{[]string{"-o", "slab_sizes=47-200"}, 64, "slab size 47 is out of valid range"},
		{[]string{"-o", "slab_sizes=-5-100"}, 64, "slab size 5 is out of valid range"},
		{[]string{"-o", "slab_sizes=abc"}, 64, "slab size 0 is out of valid range"},
		{[]string{"-o", "slab_sizes=100-12abc"}, 64, "slab size 0 is out of valid range"},
		{[]string{"-o", "slab_sizes=18446744073709551616"}, 64, "slab size 0 is out of valid range"},
		{[]string{"-o", "slab_sizes=99999999999"}, 64, "slab size 1215752191 is out of valid range"},
		{[]string{"-o", "slab_sizes=100-524289"}, 64, "slab size 524289 is out of valid range"},
		{[]string{"-o", "slab_sizes=" + many(63)}, 64, "too many slab classes specified"},
		{[]string{"-o", "slab_sizes="}, 64, ""},
		// Parsed after every option: a later -n or slab_chunk_max applies.
		{[]string{"-o", "slab_sizes=60-200", "-n", "100"}, 64, "slab size 60 is out of valid range"},
		{[]string{"-o", "slab_sizes=100-20000,slab_chunk_max=16"}, 64, "slab size 20000 is out of valid range"},
		// memcached's order: item size and slab_chunk_max first, temporary_ttl after
		{[]string{"-I", "100", "-o", "slab_sizes=10"}, 64, "Item max size cannot be less than 1024 bytes."},
		{[]string{"-o", "slab_sizes=10,slab_chunk_max=3"}, 64, "-I (item_size_max: 1048576) must be evenly divisible by slab_chunk_max (bytes: 3072)"},
		{[]string{"-o", "slab_sizes=10,temporary_ttl=5,no_lru_maintainer"}, 64, "slab size 10 is out of valid range"},
	})
}
