package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// subopt describes one "-o" suboption memcached 1.6.18 accepts.
type subopt struct {
	// missing is memcached's message when the suboption needs a value and
	// has none; "" means the suboption takes no value (one given is ignored,
	// as memcached ignores it).
	missing string
	// check validates the value (when present) and returns memcached's
	// message for a bad one, or "".
	check func(name, v string) string
}

// implementedSubopts are the suboptions gocached acts on. Every other
// accepted suboption is logged as "accepted, not implemented".
var implementedSubopts = map[string]bool{
	"idle_timeout":        true, // Config.IdleTimeout
	"maxconns_fast":       true, // Config.MaxConnsFast
	"no_maxconns_fast":    true,
	"modern":              true, // "currently: nothing" in memcached too
	"read_buf_mem_limit":  true, // Config.ReadBufMemLimit
	"slab_automove":       true, // Store.Automove
	"no_lru_crawler":      true, // Store.NoLRUCrawler
	"lru_crawler":         true,
	"lru_crawler_sleep":   true, // Store.CrawlerSleep
	"lru_crawler_tocrawl": true, // Store.CrawlerToCrawl
	"slab_reassign":       true, // Store.NoSlabReassign
	"no_slab_reassign":    true,
	"slab_sizes":          true, // Store.SlabSizes
	"slab_chunk_max":      true, // Store.SlabChunkMax
	"metrics_listen":      true, // gocached's own: Prometheus /metrics (metrics.go)
	"cluster_config":      true, // gocached's own: ElastiCache auto-discovery (Config.AutoDiscovery)
	"eviction":            true,
	"lru_maintainer":      true,
	"no_lru_maintainer":   true,
	"hot_lru_pct":         true,
	"warm_lru_pct":        true,
	"hot_max_factor":      true,
	"warm_max_factor":     true,
	"temporary_ttl":       true, // Store.TempLRU, Store.TemporaryTTL
	"track_sizes":         true, // Store.TrackSizes
}

func missingArg(name string) string { return "Missing " + name + " argument" }

// checkInt is memcached's safe_strtol/strtoul check.
func checkInt(name, v string) string {
	if _, err := strconv.ParseInt(v, 10, 64); err != nil {
		return "could not parse argument to " + name
	}
	return ""
}

func checkFloat(name, v string) string {
	if _, err := strconv.ParseFloat(v, 64); err != nil {
		return "could not parse argument to " + name
	}
	return ""
}

// checkRange parses an integer and requires lo <= n <= hi, with msg for
// both a parse failure and an out-of-range value (memcached uses atoi, so
// garbage reads as 0 and fails the range with the same message).
func checkRange(lo, hi int64, msg string) func(string, string) string {
	return func(_, v string) string {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > hi {
			return msg
		}
		return ""
	}
}

// checkFloatRange requires lo < f <= hi.
func checkFloatRange(lo, hi float64, msg string) func(string, string) string {
	return func(_, v string) string {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= lo || f > hi {
			return msg
		}
		return ""
	}
}

func checkOneOf(msg string, valid ...string) func(string, string) string {
	return func(_, v string) string {
		for _, ok := range valid {
			if v == ok {
				return ""
			}
		}
		return msg
	}
}

func flag() subopt { return subopt{} }

func valued(name string, check func(string, string) string) subopt {
	return subopt{missing: missingArg(name), check: check}
}

// suboptions is every suboption memcached 1.6.18 (built with TLS and
// extstore, as the Debian/Alpine packages are) accepts, plus
// relaxed_privileges, which debug builds accept.
var suboptions = map[string]subopt{
	"maxconns_fast":    flag(),
	"no_maxconns_fast": flag(),
	"hashpower": {missing: "Missing numeric argument for hashpower", check: func(_, v string) string {
		n, _ := strconv.Atoi(v)
		if n < 12 {
			return fmt.Sprintf("Initial hashtable multiplier of %d is too low", n)
		}
		if n > 32 {
			return fmt.Sprintf("Initial hashtable multiplier of %d is too high\n"+
				"Choose a value based on \"STAT hash_power_level\" from a running instance", n)
		}
		return ""
	}},
	"no_hashexpand": flag(),
	"slab_reassign": flag(),
	// slab_automove takes an optional value 0..2.
	"slab_automove":        {check: checkRange(0, 2, "slab_automove must be between 0 and 2")},
	"slab_automove_ratio":  valued("slab_automove_ratio", checkFloatRange(0, 1, "slab_automove_ratio must be > 0 and < 1")),
	"slab_automove_window": valued("slab_automove_window", checkRange(3, 1<<31-1, "slab_automove_window must be > 2")),
	"tail_repair_time": {missing: "Missing numeric argument for tail_repair_time",
		check: checkRange(10, 1<<31-1, "Cannot set tail_repair_time to less than 10 seconds")},
	"hash_algorithm": valued("hash_algorithm",
		checkOneOf("Unknown hash_algorithm option (jenkins, murmur3, xxh3)", "jenkins", "murmur3", "xxh3")),
	"lru_crawler":    flag(),
	"no_lru_crawler": flag(),
	"lru_crawler_sleep": {missing: "Missing lru_crawler_sleep value",
		check: checkRange(0, 1000000, "LRU crawler sleep must be between 0 and 1 second")},
	"lru_crawler_tocrawl": {missing: "Missing lru_crawler_tocrawl value",
		check: checkRange(0, 1<<32-1, "lru_crawler_tocrawl takes a numeric 32bit value")},
	"lru_maintainer":       flag(),
	"no_lru_maintainer":    flag(),
	"hot_lru_pct":          valued("hot_lru_pct", checkRange(2, 79, "hot_lru_pct must be > 1 and < 80")),
	"warm_lru_pct":         valued("warm_lru_pct", checkRange(2, 79, "warm_lru_pct must be > 1 and < 80")),
	"hot_max_factor":       valued("hot_max_factor", checkPositive("hot_max_factor must be > 0")),
	"warm_max_factor":      valued("warm_max_factor", checkPositive("warm_max_factor must be > 0")),
	"temporary_ttl":        valued("temporary_ttl", nil), // memcached uses atoi
	"idle_timeout":         {missing: "Missing numeric argument for idle_timeout", check: checkInt},
	"watcher_logbuf_size":  valued("watcher_logbuf_size", checkInt),
	"worker_logbuf_size":   valued("worker_logbuf_size", checkInt),
	"read_buf_mem_limit":   valued("read_buf_mem_limit", checkInt),
	"resp_obj_mem_limit":   flag(), // deprecated in memcached; accepted with a notice
	"slab_sizes":           valued("slab_sizes", nil),
	"slab_chunk_max":       valued("slab_chunk_max", checkInt),
	"track_sizes":          flag(),
	"inline_ascii_resp":    flag(),
	"no_inline_ascii_resp": flag(),
	"modern":               flag(),
	"no_modern":            flag(),
	"no_chunked_items":     flag(),
	"no_slab_reassign":     flag(),
	"no_slab_automove":     flag(),
	"drop_privileges":      flag(),
	"no_drop_privileges":   flag(),
	"relaxed_privileges":   flag(),
	"sock_cookie_id":       valued("sock_cookie_id", nil),
	// gocached's own: serve Prometheus metrics on host:port (":9150" for
	// every interface).
	"metrics_listen": valued("metrics_listen", checkHostPort),
	// gocached's own: answer ElastiCache's "config get cluster" from a
	// file (re-read on SIGHUP) or from "config set cluster"; the file is
	// optional.
	"cluster_config": {},
	"eviction":       valued("eviction", checkOneOf("eviction must be lru, s3fifo, clock or s3clock", "lru", "s3fifo", "clock", "s3clock")),

	"ssl_chain_cert":    valued("ssl_chain_cert", nil),
	"ssl_key":           valued("ssl_key", nil),
	"ssl_verify_mode":   valued("ssl_verify_mode", checkIntRange(0, 3, "Invalid ssl_verify_mode. Use help to see valid options.")),
	"ssl_keyformat":     valued("ssl_keyformat", checkInt),
	"ssl_ciphers":       valued("ssl_ciphers", nil),
	"ssl_ca_cert":       valued("ssl_ca_cert", nil),
	"ssl_wbuf_size":     valued("ssl_wbuf_size", checkInt),
	"ssl_session_cache": flag(),
	"ssl_kernel_tls":    flag(),
	"ssl_min_version":   valued("ssl_min_version", checkIntRange(0, 3, "Invalid ssl_min_version. Use help to see valid options.")),

	"ext_path": {missing: "missing argument to ext_path, ie: ext_path=/d/file:5G", check: func(_, v string) string {
		if !strings.Contains(v, ":") {
			return "must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P supported)\nfailed to parse ext_path argument"
		}
		return ""
	}},
	"ext_page_size":           valued("ext_page_size", checkInt),
	"ext_wbuf_size":           valued("ext_wbuf_size", checkInt),
	"ext_threads":             valued("ext_threads", checkInt),
	"ext_io_depth":            valued("ext_io_depth", checkInt),
	"ext_item_size":           valued("ext_item_size", checkInt),
	"ext_item_age":            valued("ext_item_age", checkInt),
	"ext_low_ttl":             valued("ext_low_ttl", checkInt),
	"ext_recache_rate":        valued("ext_recache_rate", checkInt),
	"ext_compact_under":       valued("ext_compact_under", checkInt),
	"ext_drop_under":          valued("ext_drop_under", checkInt),
	"ext_max_sleep":           valued("ext_max_sleep", checkInt),
	"ext_max_frag":            valued("ext_max_frag", checkFloat),
	"ext_drop_unread":         flag(),
	"slab_automove_freeratio": valued("slab_automove_freeratio", checkFloat),
}

// checkHostPort requires "host:port" with a numeric port (host may be
// empty).
func checkHostPort(name, v string) string {
	_, p, err := net.SplitHostPort(v)
	if n, perr := strconv.Atoi(p); err != nil || perr != nil || n < 0 || n > 65535 {
		return name + " must be host:port, e.g. 127.0.0.1:9150 or :9150"
	}
	return ""
}

func checkPositive(msg string) func(string, string) string {
	return func(_, v string) string {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return msg
		}
		return ""
	}
}

// checkIntRange reports "could not parse argument to NAME" for garbage and
// msg for a number out of range, as memcached's ssl_* options do.
func checkIntRange(lo, hi int64, msg string) func(string, string) string {
	return func(name, v string) string {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "could not parse argument to " + name
		}
		if n < lo || n > hi {
			return msg
		}
		return ""
	}
}

// suboptItem is one parsed "-o" entry.
type suboptItem struct {
	key, value string
	hasValue   bool
}

// parseExtended splits one -o argument the way memcached's getsubopt loop
// does: comma-separated key[=value] items, a trailing comma allowed, an
// empty item illegal. It checks each item against the suboption table and
// returns memcached's message for the first bad one.
func parseExtended(arg string) ([]suboptItem, error) {
	var items []suboptItem
	if arg == "" {
		return nil, nil
	}
	parts := strings.Split(arg, ",")
	if len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	for _, p := range parts {
		k, v, hasValue := strings.Cut(p, "=")
		so, ok := suboptions[k]
		if !ok || k == "" {
			return nil, exitErr(1, "Illegal suboption \"%s\"", p)
		}
		if so.missing != "" && !hasValue {
			return nil, exitErr(1, "%s", so.missing)
		}
		if hasValue && so.check != nil {
			if msg := so.check(k, v); msg != "" {
				return nil, exitErr(1, "%s", msg)
			}
		}
		items = append(items, suboptItem{key: k, value: v, hasValue: hasValue})
	}
	return items, nil
}
