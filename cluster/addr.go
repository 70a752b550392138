package cluster

import (
	"fmt"
	"net"
	"strings"
)

// nodeAddr is the net.Addr handed to gomemcache. It keeps the server string
// exactly as configured instead of resolving it: in docker-compose a node's
// name only resolves while its container runs, and resolving at dial time
// lets a selector be built while a node is down.
type nodeAddr struct {
	network, addr string
}

func (a *nodeAddr) Network() string { return a.network }
func (a *nodeAddr) String() string  { return a.addr }

func newNodeAddr(server string) (*nodeAddr, error) {
	if server == "" {
		return nil, fmt.Errorf("cluster: empty server address")
	}
	if strings.Contains(server, "/") {
		return &nodeAddr{network: "unix", addr: server}, nil
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		return nil, fmt.Errorf("cluster: server %q: %w", server, err)
	}
	return &nodeAddr{network: "tcp", addr: server}, nil
}
