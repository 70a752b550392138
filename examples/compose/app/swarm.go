package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// swarmSlot names a task of a Docker swarm service by its replica slot,
// for cluster.Options.Identify. "dns+tasks.cache:11211" finds the tasks by
// IP, and swarm gives a replaced task a new one: named by IP, a task
// replaced by a rolling update would be a new node to the ring and its
// restored cache (-e) unused. Docker's reverse DNS names a task's address
// "<service>.<slot>.<task id>.<network>."; the slot survives the
// replacement, so "<service>.<slot>" keeps the node's place on the ring.
func swarmSlot(ctx context.Context, addr string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	names, err := net.DefaultResolver.LookupAddr(ctx, host)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if f := strings.Split(n, "."); len(f) >= 3 {
			if _, err := strconv.Atoi(f[1]); err == nil {
				return f[0] + "." + f[1], nil
			}
		}
	}
	return "", fmt.Errorf("%s: no swarm task name in %q", host, names)
}
