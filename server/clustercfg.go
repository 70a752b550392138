package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/gocached/gocached/protocol"
)

// ElastiCache auto-discovery. An ElastiCache client asks any node of the
// cluster ("the configuration endpoint") for the list of nodes, with
// "config get cluster" (engine 1.4.14 and later) or the older
// "get AmazonElastiCache:cluster". AWS documents the answer, the same for
// both but for its first line:
//
//	CONFIG cluster 0 136\r\n           (VALUE AmazonElastiCache:cluster 0 136\r\n)
//	12\n                               the configuration's version
//	host|ip|port host|ip|port\n        the nodes, separated by spaces
//	\r\n
//	END\r\n
//
// The version line ends in LF alone, the node line in LF, and the whole
// data block, whose length the first line gives, is followed by CR LF as
// a value is. (AWS's page shows 147 as the length of its 136-byte example;
// real nodes and the clients that parse them count the bytes.)
//
// A node has a configuration only with -o cluster_config: read from the
// file it names, again on SIGHUP, and settable at run time with the
// command ElastiCache's nodes accept from its Java cluster client
// ("config set cluster <flags> <bytes>", then the data block; STORED) and
// removable with "config delete cluster". Without the option, "config" is
// an unknown command and AmazonElastiCache:cluster an ordinary key, as in
// memcached.

// elastiCacheKey is the key the pre-1.4.14 form reads.
const elastiCacheKey = "AmazonElastiCache:cluster"

// maxClusterConfig bounds a configuration set at run time (a node entry is
// well under 300 bytes).
const maxClusterConfig = 1 << 20

// clusterConfig is one auto-discovery answer.
type clusterConfig struct {
	flags uint32
	data  []byte // "<version>\n<host|ip|port ...>\n"
}

// discoveryState is the node's auto-discovery configuration.
type discoveryState struct {
	cur atomic.Pointer[clusterConfig] // nil: no configuration
}

// ParseClusterConfig checks an auto-discovery configuration and returns it
// in AWS's wire form, "<version>\n<node> <node>...\n". The text is the
// version (a decimal number) and then one or more host|ip|port entries
// separated by spaces or newlines; blank lines and lines starting with #
// are skipped, so a file may carry comments. The ip may be empty (AWS's
// clients then resolve the host name); the port is 1..65535.
func ParseClusterConfig(text []byte) ([]byte, error) {
	var fields [][]byte
	for _, line := range bytes.Split(text, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		fields = append(fields, bytes.Fields(line)...)
	}
	if len(fields) == 0 {
		return nil, errors.New("empty: want a version line and host|ip|port entries")
	}
	if _, err := strconv.ParseUint(string(fields[0]), 10, 64); err != nil {
		return nil, fmt.Errorf("version %q is not a decimal number", fields[0])
	}
	if len(fields) == 1 {
		return nil, errors.New("no nodes: want host|ip|port entries after the version")
	}
	out := append(append([]byte(nil), fields[0]...), '\n')
	for i, f := range fields[1:] {
		parts := bytes.Split(f, []byte("|"))
		if len(parts) != 3 || len(parts[0]) == 0 {
			return nil, fmt.Errorf("node %q: want host|ip|port", f)
		}
		if p, err := strconv.ParseUint(string(parts[2]), 10, 16); err != nil || p == 0 {
			return nil, fmt.Errorf("node %q: port %q is not 1..65535", f, parts[2])
		}
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, f...)
	}
	return append(out, '\n'), nil
}

// loadClusterConfig reads the -o cluster_config file. A missing file
// leaves the node without a configuration until SIGHUP finds one.
func (s *Server) loadClusterConfig(startup bool) error {
	path := s.cfg.ClusterConfigFile
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && startup {
		s.log.Warn("cluster config file not found: config get cluster answers END until it exists and SIGHUP reloads it",
			zap.String("file", path))
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster config: %w", err)
	}
	data, err := ParseClusterConfig(b)
	if err != nil {
		return fmt.Errorf("cluster config %s: %w", path, err)
	}
	s.discovery.cur.Store(&clusterConfig{data: data})
	return nil
}

// ReloadClusterConfig re-reads the -o cluster_config file (SIGHUP),
// replacing the configuration, including one set with "config set
// cluster". A file that cannot be read or parsed keeps the configuration
// the node has.
func (s *Server) ReloadClusterConfig() error { return s.loadClusterConfig(false) }

// SetClusterConfig replaces the auto-discovery configuration with text
// (ParseClusterConfig's form); nil text removes it. It fails unless the
// node was started with -o cluster_config.
func (s *Server) SetClusterConfig(text []byte) error {
	if !s.cfg.AutoDiscovery {
		return errors.New("auto-discovery is off (-o cluster_config)")
	}
	if text == nil {
		s.discovery.cur.Store(nil)
		return nil
	}
	data, err := ParseClusterConfig(text)
	if err != nil {
		return err
	}
	s.discovery.cur.Store(&clusterConfig{data: data})
	return nil
}

// appendClusterConfig appends the data block of cc after head ("CONFIG
// cluster" or "VALUE AmazonElastiCache:cluster").
func appendClusterConfig(b []byte, head string, cc *clusterConfig) []byte {
	b = append(b, head...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(cc.flags), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(cc.data)), 10)
	b = append(b, "\r\n"...)
	b = append(b, cc.data...)
	return append(b, "\r\n"...)
}

// execConfig answers "config get|set|delete cluster" on a node with
// -o cluster_config, and ERROR, as memcached, on any other.
func (c *conn) execConfig(buf []byte, lineLen int) (int, bool) {
	args := c.work.req.Args
	on := c.srv.cfg.AutoDiscovery
	if on && len(args) >= 2 && string(args[0]) == "set" && string(args[1]) == "cluster" {
		return c.execConfigSet(buf, lineLen)
	}
	c.logCommand(buf[:lineLen])
	c.rpos += lineLen
	c.lastCmd.Store(c.srv.now())
	switch {
	case on && len(args) == 2 && string(args[0]) == "get" && string(args[1]) == "cluster":
		if cc := c.srv.discovery.cur.Load(); cc != nil {
			c.wbuf = appendClusterConfig(c.wbuf, "CONFIG cluster", cc)
		}
		c.wbuf = append(c.wbuf, protocol.ReplyEnd...)
	case on && len(args) >= 2 && len(args) <= 3 && string(args[0]) == "delete" && string(args[1]) == "cluster":
		c.setNoReplyMaybe()
		if c.srv.discovery.cur.Swap(nil) != nil {
			c.reply(protocol.ReplyDeleted)
		} else {
			c.reply(protocol.ReplyNotFound)
		}
	default:
		c.replyError(protocol.ErrUnknownCommand)
	}
	return 0, true
}

// execConfigSet is "config set cluster <flags> <bytes> [noreply]" and its
// data block, read as a storage command's: a bad line is refused before
// any data, an oversized block is discarded, a block without its CR LF is
// a bad data chunk.
func (c *conn) execConfigSet(buf []byte, lineLen int) (int, bool) {
	r := &c.work.req
	args := r.Args
	c.setNoReplyMaybe()
	valid := len(args) == 4 || len(args) == 5 && r.NoReply
	flags, okFlags := parseUint32(args[min(2, len(args)-1)])
	size, okSize := parseInt(args[min(3, len(args)-1)])
	if !valid || !okFlags || !okSize || size < 0 {
		c.logCommand(buf[:lineLen])
		c.rpos += lineLen
		c.replyError(protocol.ErrBadFormat)
		return 0, true
	}
	if size > maxClusterConfig {
		c.logCommand(buf[:lineLen])
		c.rpos += lineLen
		c.swallow = int(size) + 2
		c.replyError(protocol.ErrTooLarge)
		return 0, true
	}
	data, dn, err := protocol.ParseData(buf[lineLen:], int(size))
	if err == protocol.ErrIncomplete {
		return lineLen + int(size) + 2, false
	}
	c.logCommand(buf[:lineLen])
	c.rpos += lineLen + dn
	c.lastCmd.Store(c.srv.now())
	if err != nil {
		c.replyError(protocol.ErrBadDataChunk)
		return 0, true
	}
	text, perr := ParseClusterConfig(data)
	if perr != nil {
		c.replyError(protocol.Reply("CLIENT_ERROR bad cluster config: " + perr.Error()))
		return 0, true
	}
	c.srv.discovery.cur.Store(&clusterConfig{flags: flags, data: text})
	c.reply(protocol.ReplyStored)
	return 0, true
}
