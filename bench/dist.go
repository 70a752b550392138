package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Dist names a key distribution: "uniform", "zipf" (parameter s, any s > 0),
// "scan" (zipf over the key space, with a fraction of the requests taken
// from a sequential scan over one-time keys beyond it: cache pollution), or
// "shift" (zipf whose popular keys move on every Period requests: a
// working set that shifts, shift.go).
type Dist struct {
	Kind     string  `json:"kind"`
	S        float64 `json:"s,omitempty"`
	ScanFrac float64 `json:"scan_frac,omitempty"`
	Period   int64   `json:"period,omitempty"` // shift: requests (over all connections) per working set
	// Start is how many requests of a shifting run came before this one
	// (its warm-up), so that the measured run continues its shifts.
	Start int64 `json:"start,omitempty"`
}

func (d Dist) String() string {
	switch d.Kind {
	case "zipf":
		return fmt.Sprintf("zipf:%g", d.S)
	case "scan":
		return fmt.Sprintf("scan:%g:%g", d.S, d.ScanFrac)
	case "shift":
		return fmt.Sprintf("shift:%g:%d", d.S, d.Period)
	}
	return d.Kind
}

// ParseDist parses "uniform", "zipf[:s]" (default s 0.99),
// "scan[:s[:fraction]]" (default 0.99 and 0.1) and "shift[:s[:period]]"
// (default 0.99 and 250000 requests).
func ParseDist(s string) (Dist, error) {
	parts := strings.Split(s, ":")
	d := Dist{Kind: strings.ToLower(parts[0]), S: 0.99, ScanFrac: 0.1}
	num := func(i int, dst *float64) error {
		if len(parts) > i {
			v, err := strconv.ParseFloat(parts[i], 64)
			if err != nil || v <= 0 {
				return fmt.Errorf("bad distribution %q", s)
			}
			*dst = v
		}
		return nil
	}
	switch d.Kind {
	case "uniform":
		if len(parts) > 1 {
			return d, fmt.Errorf("bad distribution %q", s)
		}
		d.S, d.ScanFrac = 0, 0
	case "zipf":
		if err := num(1, &d.S); err != nil || len(parts) > 2 {
			return d, fmt.Errorf("bad distribution %q", s)
		}
		d.ScanFrac = 0
	case "scan":
		if num(1, &d.S) != nil || num(2, &d.ScanFrac) != nil || len(parts) > 3 || d.ScanFrac >= 1 {
			return d, fmt.Errorf("bad distribution %q", s)
		}
	case "shift":
		return parseShift(d, parts, s)
	default:
		return d, fmt.Errorf("unknown distribution %q (uniform, zipf[:s], scan[:s[:fraction]], shift[:s[:period]])", s)
	}
	return d, nil
}

// keyGen draws key ids in [base, base+n) (scan keys lie at base+n and
// beyond).
type keyGen struct {
	rng      *rand.Rand
	n        uint64
	base     uint64
	zipf     *zipf
	scanFrac float64
	scanNext uint64
	shift    shifter
}

func newKeyGen(d Dist, n uint64, rng *rand.Rand, scanStart uint64) *keyGen {
	g := &keyGen{rng: rng, n: n, scanFrac: d.ScanFrac, scanNext: n + scanStart}
	if d.Kind == "zipf" || d.Kind == "scan" || d.Kind == "shift" {
		g.zipf = newZipf(d.S, n)
	}
	return g
}

func (g *keyGen) next() uint64 { return g.base + g.draw() }

func (g *keyGen) draw() uint64 {
	if g.scanFrac > 0 && g.rng.Float64() < g.scanFrac {
		id := g.scanNext
		g.scanNext++
		return id
	}
	if g.zipf != nil {
		return g.shift.next(g.n) + g.zipf.sample(g.rng) - 1
	}
	return g.rng.Uint64N(g.n)
}

// zipf samples ranks 1..n with P(k) proportional to k^-s, for any s > 0
// (math/rand's Zipf needs s > 1; caches are usually measured at 0.99), by
// rejection-inversion (Hörmann and Derflinger 1996), as in Apache Commons.
type zipf struct {
	s                    float64
	n                    float64
	hIntegralX1, hIntegN float64
	sCut                 float64
}

func newZipf(s float64, n uint64) *zipf {
	z := &zipf{s: s, n: float64(n)}
	z.hIntegralX1 = z.hIntegral(1.5) - 1
	z.hIntegN = z.hIntegral(z.n + 0.5)
	z.sCut = 2 - z.hIntegralInv(z.hIntegral(2.5)-z.h(2))
	return z
}

func (z *zipf) sample(r *rand.Rand) uint64 {
	for {
		u := z.hIntegN + r.Float64()*(z.hIntegralX1-z.hIntegN)
		x := z.hIntegralInv(u)
		k := math.Floor(x + 0.5)
		if k < 1 {
			k = 1
		} else if k > z.n {
			k = z.n
		}
		if k-x <= z.sCut || u >= z.hIntegral(k+0.5)-z.h(k) {
			return uint64(k)
		}
	}
}

func (z *zipf) h(x float64) float64 { return math.Exp(-z.s * math.Log(x)) }

func (z *zipf) hIntegral(x float64) float64 {
	lx := math.Log(x)
	return helper2((1-z.s)*lx) * lx
}

func (z *zipf) hIntegralInv(x float64) float64 {
	t := x * (1 - z.s)
	if t < -1 {
		t = -1
	}
	return math.Exp(helper1(t) * x)
}

func helper1(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Log1p(x) / x
	}
	return 1 - x*(0.5-x*(1.0/3-0.25*x))
}

func helper2(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Expm1(x) / x
	}
	return 1 + x*0.5*(1+x/3*(1+0.25*x))
}
