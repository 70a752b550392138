package server

import (
	"time"

	"go.uber.org/zap"

	"github.com/gocached/gocached/slab"
)

// Config is the daemon's configuration: memcached's command-line flags,
// already parsed. DefaultConfig returns memcached's defaults, which each
// field's comment gives.
type Config struct {
	Port            int               // TCP port (-p); default 11211; 0 = no TCP
	UDPPort         int               // UDP port (-U); default 0 = off
	Listen          []string          // interfaces (-l), each "host", "host:port" or "notls:host:port"; default all
	UnixSocket      string            // unix socket path (-s); disables TCP and UDP
	UnixMask        uint32            // unix socket permissions (-a); default 0700
	EnableShutdown  bool              // accept the "shutdown" command (-A)
	MaxConns        int               // connection limit (-c); default 1024
	Threads         int               // worker threads (-t); default 4; the daemon runs at most this many goroutines at once (GOMAXPROCS)
	ReqsPerEvent    int               // requests served per read before yielding (-R); default 20
	Backlog         int               // listen backlog (-b); default 1024
	Protocol        string            // "auto", "ascii" or "binary" (-B); default auto
	DisableFlushAll bool              // refuse flush_all (-F)
	DisableDumping  bool              // refuse cachedump/metadump/me (-X)
	DisableWatch    bool              // refuse watch (-W)
	SASL            bool              // binary SASL auth (-S)
	AuthFile        string            // ASCII auth file (-Y)
	TLS             bool              // TLS listeners (-Z)
	IdleTimeout     time.Duration     // close idle connections (-o idle_timeout); 0 = never
	PrefixDelimiter byte              // key prefix delimiter for "stats detail" (-D); default ':', and -D turns detail on
	ReadBufMemLimit int64             // bytes of grown read and write buffers of all connections: multiget lines, binary values and replies (-o read_buf_mem_limit, in MB); default 64 MiB or -m/8
	MaxConnsFast    bool              // reject over-limit connections at once (-o maxconns_fast); default true
	Verbosity       int               // -v count
	Extended        map[string]string // every -o key[=value], as given

	// AutoDiscovery answers ElastiCache's "config get cluster" and
	// "get AmazonElastiCache:cluster" and accepts "config set cluster"
	// (-o cluster_config); default off: "config" is an unknown command.
	AutoDiscovery bool
	// ClusterConfigFile is the auto-discovery configuration, read at
	// startup and on SIGHUP (-o cluster_config=FILE); default none.
	ClusterConfigFile string

	Store slab.Config // -m, -M, -C, -f, -n, -I

	Logger *zap.Logger // default zap.NewNop()
}

// DefaultConfig returns memcached 1.6's defaults.
func DefaultConfig() Config {
	return Config{
		Port:         11211,
		UnixMask:     0o700,
		MaxConns:     1024,
		Threads:      4,
		ReqsPerEvent: 20,
		Backlog:      1024,
		Protocol:     "auto",
		MaxConnsFast: true,
		Extended:     map[string]string{},
		Store: slab.Config{
			MemoryLimit:  64 << 20,
			PageSize:     1 << 20,
			GrowthFactor: 1.25,
			MinChunkSize: 48,
			MaxItemSize:  1 << 20,
			SlabChunkMax: 512 << 10,
		},
	}
}
