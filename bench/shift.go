package bench

import (
	"fmt"
	"strconv"
)

// The shifting working set ("shift" distribution): Zipf over the key space,
// but every Period requests the ranks move on by a tenth of the key space:
// the keys that were hottest are no longer requested at all, and the new
// hottest keys were lukewarm before. A cache that follows the shift
// drops yesterday's hot keys for today's; one that holds on to frequency
// (or to recency of keys no longer read) misses more after each shift.

// shiftDefaultPeriod is the default requests per working set.
const shiftDefaultPeriod = 250000

func parseShift(d Dist, parts []string, s string) (Dist, error) {
	d.ScanFrac, d.Period = 0, shiftDefaultPeriod
	if len(parts) > 3 {
		return d, fmt.Errorf("bad distribution %q", s)
	}
	if len(parts) > 1 {
		v, err := strconv.ParseFloat(parts[1], 64)
		if err != nil || v <= 0 {
			return d, fmt.Errorf("bad distribution %q", s)
		}
		d.S = v
	}
	if len(parts) > 2 {
		v, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil || v <= 0 {
			return d, fmt.Errorf("bad distribution %q", s)
		}
		d.Period = v
	}
	return d, nil
}

// shifter counts one connection's draws and returns the key offset of the
// working set they are in. Each of the run's conns connections draws about
// 1/conns of the requests, so they shift at about the same time.
type shifter struct {
	every int64 // draws per working set on this connection; 0 = no shifts
	drawn int64
}

func newShifter(d Dist, conns int) shifter {
	if d.Kind != "shift" || d.Period <= 0 {
		return shifter{}
	}
	every := max(d.Period/int64(max(conns, 1)), 1)
	return shifter{every: every, drawn: d.Start / int64(max(conns, 1))}
}

// next returns the offset of the next draw's working set, for a key space
// of n keys.
func (s *shifter) next(n uint64) uint64 {
	if s.every == 0 {
		return 0
	}
	epoch := uint64(s.drawn / s.every)
	s.drawn++
	return epoch * (n / 10)
}
