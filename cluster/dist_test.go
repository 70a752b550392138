package cluster

import (
	"fmt"
	"math"
	"strconv"
	"testing"
)

// distKeys is the key count for the balance tests: 1M as the issue asks.
// -short drops to 200K so a quick local loop stays fast.
func distKeys() int {
	if testing.Short() {
		return 200_000
	}
	return 1_000_000
}

func testKey(i int) string { return "key:" + strconv.Itoa(i) }

func addrList(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.0.%d:11211", i+1)
	}
	return out
}

// shares counts keys per node and returns each node's deviation from its
// ideal share, relative to that share.
func shares(keys, n int, primary func(string) int, ideal func(node int) float64) (dev []float64) {
	counts := make([]int, n)
	for i := 0; i < keys; i++ {
		counts[primary(testKey(i))]++
	}
	for node, c := range counts {
		want := ideal(node) * float64(keys)
		dev = append(dev, (float64(c)-want)/want)
	}
	return dev
}

func maxAbs(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

func TestJumpDistribution(t *testing.T) {
	for _, n := range []int{3, 5, 10} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			s, err := NewJumpSelector(addrList(n)...)
			if err != nil {
				t.Fatal(err)
			}
			keys := distKeys()
			dev := shares(keys, n, s.Primary, func(int) float64 { return 1 / float64(n) })
			t.Logf("jump %d nodes, %d keys: max deviation %.3f%% of the ideal share", n, keys, 100*maxAbs(dev))
			if maxAbs(dev) > 0.01 {
				t.Errorf("per-node share off by up to %.3f%%, want within 1%%: %v", 100*maxAbs(dev), dev)
			}
		})
	}
}

func TestKetamaDistribution(t *testing.T) {
	// With 160 points per node the share of a node has a standard deviation
	// of roughly 1/sqrt(160) ≈ 8% of the ideal; libmemcached and twemproxy
	// live with that. The bound below is ~2.5 sigma; these are fixed keys
	// and nodes, so the test is deterministic.
	for _, n := range []int{3, 5, 10} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			s, err := NewKetamaSelectorAddrs(addrList(n)...)
			if err != nil {
				t.Fatal(err)
			}
			keys := distKeys()
			dev := shares(keys, n, s.Primary, func(int) float64 { return 1 / float64(n) })
			t.Logf("ketama %d nodes, %d keys: max deviation %.2f%% of the ideal share (%v)", n, keys, 100*maxAbs(dev), fmtPct(dev))
			if maxAbs(dev) > 0.20 {
				t.Errorf("per-node share off by up to %.2f%%, want within 20%%", 100*maxAbs(dev))
			}
		})
	}
}

func TestKetamaWeightedDistribution(t *testing.T) {
	servers := []Server{{Addr: "10.0.0.1:11211", Weight: 1}, {Addr: "10.0.0.2:11211", Weight: 2}, {Addr: "10.0.0.3:11211", Weight: 3}, {Addr: "10.0.0.4:11211", Weight: 2}}
	s, err := NewKetamaSelector(HashMD5, servers...)
	if err != nil {
		t.Fatal(err)
	}
	keys := distKeys()
	dev := shares(keys, len(servers), s.Primary, func(i int) float64 { return float64(servers[i].Weight) / 8 })
	t.Logf("ketama weights 1:2:3:2, %d keys: deviation from weighted share %v", keys, fmtPct(dev))
	if maxAbs(dev) > 0.20 {
		t.Errorf("weighted share off by up to %.2f%%, want within 20%%", 100*maxAbs(dev))
	}
}

func fmtPct(xs []float64) string {
	s := ""
	for _, x := range xs {
		s += fmt.Sprintf(" %+.2f%%", 100*x)
	}
	return s
}

// TestResizeMovesFewKeys grows each placement by one node at the end and
// checks that at most 1/(N+1) + ε of the keys move, and only onto the new
// node: keys must never shuffle between old nodes.
func TestResizeMovesFewKeys(t *testing.T) {
	type build func(addrs []string) (Selector, error)
	placements := []struct {
		name string
		eps  float64
		mk   build
	}{
		{"jump", 0.005, func(a []string) (Selector, error) { return NewJumpSelector(a...) }},
		{"ketama", 0.05, func(a []string) (Selector, error) { return NewKetamaSelectorAddrs(a...) }},
	}
	keys := distKeys() / 5
	for _, p := range placements {
		for _, n := range []int{3, 5, 10} {
			t.Run(fmt.Sprintf("%s/%d-to-%d", p.name, n, n+1), func(t *testing.T) {
				before, err := p.mk(addrList(n))
				if err != nil {
					t.Fatal(err)
				}
				after, err := p.mk(addrList(n + 1))
				if err != nil {
					t.Fatal(err)
				}
				moved := 0
				for i := 0; i < keys; i++ {
					k := testKey(i)
					a, b := before.Primary(k), after.Primary(k)
					if a == b {
						continue
					}
					moved++
					if b != n {
						t.Fatalf("key %q moved from node %d to old node %d", k, a, b)
					}
				}
				frac, bound := float64(moved)/float64(keys), 1/float64(n+1)+p.eps
				t.Logf("%s %d->%d nodes: %.2f%% of %d keys moved (ideal %.2f%%)", p.name, n, n+1, 100*frac, keys, 100/float64(n+1))
				if frac > bound {
					t.Errorf("moved %.3f of keys, want <= %.3f", frac, bound)
				}
			})
		}
	}
}

// TestEjectionMovesOnlyDeadNodesKeys ejects one node by hand and checks that
// only its keys move, that they move deterministically and that they spread
// over all survivors.
func TestEjectionMovesOnlyDeadNodesKeys(t *testing.T) {
	mk := map[string]func([]string) (Selector, error){
		"jump":   func(a []string) (Selector, error) { return NewJumpSelector(a...) },
		"ketama": func(a []string) (Selector, error) { return NewKetamaSelectorAddrs(a...) },
	}
	for name, build := range mk {
		t.Run(name, func(t *testing.T) {
			const n, dead, keys = 5, 2, 50_000
			s, err := build(addrList(n))
			if err != nil {
				t.Fatal(err)
			}
			s.health().limit.Store(1)
			s.health().failure(dead)
			got := make([]int, n)
			for i := 0; i < keys; i++ {
				k := testKey(i)
				p, err := s.Pick(k)
				if err != nil {
					t.Fatal(err)
				}
				if prim := s.Primary(k); prim != dead && p != prim {
					t.Fatalf("key %q of live node %d moved to %d", k, prim, p)
				} else if prim == dead {
					if p == dead {
						t.Fatalf("key %q still routed to the ejected node", k)
					}
					if again, _ := s.Pick(k); again != p {
						t.Fatalf("fallback for %q not deterministic: %d then %d", k, p, again)
					}
					got[p]++
				}
			}
			t.Logf("%s: keys of ejected node %d went to %v", name, dead, got)
			for i, c := range got {
				if i != dead && c == 0 {
					t.Errorf("survivor %d received none of the dead node's keys", i)
				}
			}
		})
	}
}
