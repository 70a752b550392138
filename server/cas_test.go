package server_test

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/protocol"
)

// casEffect is what a conditional write did to its item.
type casEffect uint8

const (
	casExists    casEffect = iota // refused: CAS mismatch (no change)
	casNotFound                   // refused: no item (no change)
	casNotStored                  // refused: append to no item, add over one (no change)
	casWrite                      // the value was replaced (or the item created)
	casAppend                     // the new value was appended
	casIncr                       // the numeric value was incremented by 1
	casDelete                     // the item was removed
)

func (e casEffect) String() string {
	return [...]string{"exists", "not found", "not stored", "write", "append", "incr", "delete"}[e]
}

// casPath is one way to send a CAS to the server.
type casPath struct {
	name string
	// zeroIsNoCAS: the protocol reads a CAS of 0 as "no CAS" (binary
	// requests, ma, ms append); elsewhere 0 is compared, and matches no
	// item.
	zeroIsNoCAS bool
	// expect is the effect on an item that exists or not, whose CAS
	// matches or not (noCAS: 0 was sent and means no CAS).
	expect func(exists, match, noCAS bool) casEffect
	// send issues the request and returns the reply's effect.
	send func(tc *casModelClients, key string, cas uint64, value string) casEffect
}

type casModelClients struct {
	t    *testing.T
	text func(req string) string
	bin  *binClient
}

// textEffect maps a text or meta reply to its effect.
func (m *casModelClients) textEffect(req string, replies map[string]casEffect) casEffect {
	m.t.Helper()
	got := m.text(req)
	if strings.HasPrefix(got, "VA ") { // ma v: the value follows
		return casIncr
	}
	e, ok := replies[got]
	if !ok {
		m.t.Fatalf("%q: unexpected reply %q", req, got)
	}
	return e
}

// binEffect sends one binary request and maps its status to an effect.
func (m *casModelClients) binEffect(op uint8, cas uint64, extras []byte, key, value string, ok casEffect) casEffect {
	m.t.Helper()
	m.bin.send(req(op, 7, cas, extras, []byte(key), []byte(value)))
	r := m.bin.recv()
	switch r.status() {
	case protocol.StatusOK:
		return ok
	case protocol.StatusKeyExists:
		return casExists
	case protocol.StatusKeyNotFound:
		return casNotFound
	case protocol.StatusNotStored:
		return casNotStored
	}
	m.t.Fatalf("binary op %#x: status %#x", op, r.status())
	return 0
}

// casMode is the effect of a store whose CAS must match.
func casMode(exists, match, _ bool) casEffect {
	switch {
	case !exists:
		return casNotFound
	case match:
		return casWrite
	}
	return casExists
}

func casPaths() []casPath {
	textReplies := map[string]casEffect{"STORED\r\n": casWrite, "EXISTS\r\n": casExists, "NOT_FOUND\r\n": casNotFound}
	metaSet := map[string]casEffect{"HD\r\n": casWrite, "EX\r\n": casExists, "NF\r\n": casNotFound, "NS\r\n": casNotStored}
	metaAppend := map[string]casEffect{"HD\r\n": casAppend, "EX\r\n": casExists, "NF\r\n": casNotFound, "NS\r\n": casNotStored}
	metaDelete := map[string]casEffect{"HD\r\n": casDelete, "EX\r\n": casExists, "NF\r\n": casNotFound}
	metaArith := map[string]casEffect{"EX\r\n": casExists, "NF\r\n": casNotFound}
	ms := func(mode string) func(*casModelClients, string, uint64, string) casEffect {
		return func(m *casModelClients, key string, cas uint64, v string) casEffect {
			return m.textEffect(fmt.Sprintf("ms %s %d%s C%d\r\n%s\r\n", key, len(v), mode, cas, v), metaSet)
		}
	}
	return []casPath{
		{name: "text cas", expect: casMode, send: func(m *casModelClients, key string, cas uint64, v string) casEffect {
			return m.textEffect(fmt.Sprintf("cas %s 0 0 %d %d\r\n%s\r\n", key, len(v), cas, v), textReplies)
		}},
		{name: "ms C", expect: casMode, send: ms("")},
		{name: "ms MS C", expect: casMode, send: ms(" MS")},
		{name: "ms MR C", expect: casMode, send: ms(" MR")},
		{name: "ms MA C", zeroIsNoCAS: true, expect: func(exists, match, _ bool) casEffect {
			switch {
			case !exists:
				return casNotStored
			case match:
				return casAppend
			}
			return casExists
		}, send: func(m *casModelClients, key string, cas uint64, v string) casEffect {
			return m.textEffect(fmt.Sprintf("ms %s %d MA C%d\r\n%s\r\n", key, len(v), cas, v), metaAppend)
		}},
		{name: "md C", expect: func(exists, match, _ bool) casEffect {
			switch {
			case !exists:
				return casNotFound
			case match:
				return casDelete
			}
			return casExists
		}, send: func(m *casModelClients, key string, cas uint64, _ string) casEffect {
			return m.textEffect(fmt.Sprintf("md %s C%d\r\n", key, cas), metaDelete)
		}},
		{name: "ma C", zeroIsNoCAS: true, expect: func(exists, match, _ bool) casEffect {
			switch {
			case !exists:
				return casNotFound
			case match:
				return casIncr
			}
			return casExists
		}, send: func(m *casModelClients, key string, cas uint64, _ string) casEffect {
			return m.textEffect(fmt.Sprintf("ma %s C%d v\r\n", key, cas), metaArith)
		}},
		{name: "binary set", zeroIsNoCAS: true, expect: func(exists, match, noCAS bool) casEffect {
			if noCAS {
				return casWrite
			}
			return casMode(exists, match, noCAS)
		}, send: func(m *casModelClients, key string, cas uint64, v string) casEffect {
			return m.binEffect(protocol.OpSet, cas, setExt(0, 0), key, v, casWrite)
		}},
		{name: "binary replace", zeroIsNoCAS: true, expect: casMode, send: func(m *casModelClients, key string, cas uint64, v string) casEffect {
			return m.binEffect(protocol.OpReplace, cas, setExt(0, 0), key, v, casWrite)
		}},
		{name: "binary add", zeroIsNoCAS: true, expect: func(exists, match, noCAS bool) casEffect {
			switch {
			case noCAS && exists:
				return casExists // memcached's binary add over an item
			case noCAS:
				return casWrite
			}
			return casMode(exists, match, noCAS) // add with a CAS is a CAS
		}, send: func(m *casModelClients, key string, cas uint64, v string) casEffect {
			return m.binEffect(protocol.OpAdd, cas, setExt(0, 0), key, v, casWrite)
		}},
		{name: "binary append", zeroIsNoCAS: true, expect: func(exists, match, _ bool) casEffect {
			switch {
			case !exists:
				return casNotStored
			case match:
				return casAppend
			}
			return casExists
		}, send: func(m *casModelClients, key string, cas uint64, v string) casEffect {
			return m.binEffect(protocol.OpAppend, cas, nil, key, v, casAppend)
		}},
		{name: "binary delete", zeroIsNoCAS: true, expect: func(exists, match, _ bool) casEffect {
			switch {
			case !exists:
				return casNotFound
			case match:
				return casDelete
			}
			return casExists
		}, send: func(m *casModelClients, key string, cas uint64, _ string) casEffect {
			return m.binEffect(protocol.OpDelete, cas, nil, key, "", casDelete)
		}},
		{name: "binary incr", zeroIsNoCAS: true, expect: func(exists, match, _ bool) casEffect {
			switch {
			case !exists:
				return casNotFound
			case match:
				return casIncr
			}
			return casExists
		}, send: func(m *casModelClients, key string, cas uint64, _ string) casEffect {
			// An initial exptime of 0xffffffff: do not create on a miss.
			return m.binEffect(protocol.OpIncrement, cas, arithExt(1, 0, 0xffffffff), key, "", casIncr)
		}},
	}
}

// TestCASModel drives every CAS path (text cas, meta ms/md/ma C, binary
// set/replace/add/append/delete/incr with a CAS) at random against a model
// of the items: the current CAS writes; a stale one (any CAS the key had
// before), one from the future or, where the protocol compares it, 0 never
// changes an item. memcached 1.6.18 behaves so (internal/difftest/testdata/
// cas.txt compares the replies byte for byte).
func TestCASModel(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	tconn, tr := dialText(t, "tcp", addr)
	m := &casModelClients{t: t, bin: dialBin(t, addr)}
	m.text = func(req string) string { return roundTrip(t, tconn, tr, req) }

	type item struct {
		value string
		cas   uint64
	}
	model := map[string]*item{}
	seen := map[string][]uint64{} // every CAS each key has had
	keys := []string{"a", "b", "c"}
	// read returns the item as the server has it.
	read := func(key string) *item {
		got := m.text("mg " + key + " c v\r\n")
		if got == "EN\r\n" {
			return nil
		}
		var size int
		var cas uint64
		head, value, _ := strings.Cut(got, "\r\n")
		if _, err := fmt.Sscanf(head, "VA %d c%d", &size, &cas); err != nil {
			t.Fatalf("mg %s: %q", key, got)
		}
		return &item{value: strings.TrimSuffix(value, "\r\n"), cas: cas}
	}
	paths := casPaths()
	rng := rand.New(rand.NewSource(12))
	counts := map[string]int{}
	for step := 0; step < 3000; step++ {
		key := keys[rng.Intn(len(keys))]
		if rng.Intn(8) == 0 || (model[key] != nil && len(model[key].value) > 12) {
			// (Re)create the item unconditionally; appends keep a
			// value short enough to stay a number for incr.
			v := strconv.Itoa(step)
			m.text(fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(v), v))
			model[key] = read(key)
			seen[key] = append(seen[key], model[key].cas)
			continue
		}
		p := paths[rng.Intn(len(paths))]
		cur := model[key]
		var cas uint64
		choice := rng.Intn(4)
		switch {
		case choice == 0 && cur != nil:
			cas = cur.cas
		case choice == 1 && len(seen[key]) > 0:
			cas = seen[key][rng.Intn(len(seen[key]))] // stale, unless it is the current one
		case choice == 2:
			cas = 1 << 40 // from the future
		}
		exists := cur != nil
		var prevCAS uint64
		if exists {
			prevCAS = cur.cas
		}
		match := exists && cas == cur.cas
		noCAS := cas == 0 && p.zeroIsNoCAS
		if noCAS {
			match = exists
		}
		want := p.expect(exists, match, noCAS)
		v := strconv.Itoa(step)
		got := p.send(m, key, cas, v)
		desc := fmt.Sprintf("step %d: %s on %s (exists %v, item CAS %v, sent CAS %d)", step, p.name, key, exists, cur, cas)
		if got != want {
			t.Fatalf("%s: got %v, want %v", desc, got, want)
		}
		counts[p.name+" "+want.String()]++
		switch want {
		case casWrite:
			model[key] = &item{value: v}
		case casAppend:
			cur.value += v
		case casIncr:
			n, _ := strconv.ParseUint(cur.value, 10, 64)
			cur.value = strconv.FormatUint(n+1, 10)
		case casDelete:
			delete(model, key)
		}
		now := read(key)
		switch {
		case model[key] == nil && now != nil:
			t.Fatalf("%s: item %+v still there", desc, now)
		case model[key] == nil:
		case now == nil:
			t.Fatalf("%s: item gone, want %q", desc, model[key].value)
		case now.value != model[key].value:
			t.Fatalf("%s: value %q, want %q", desc, now.value, model[key].value)
		case want >= casWrite:
			if now.cas == prevCAS {
				t.Fatalf("%s: CAS unchanged by a write", desc)
			}
			model[key].cas = now.cas
			seen[key] = append(seen[key], now.cas)
		case now.cas != model[key].cas:
			t.Fatalf("%s: CAS changed from %d to %d without a write", desc, model[key].cas, now.cas)
		}
	}
	// Every path must have met both outcomes that matter.
	for _, p := range paths {
		var wrote, refused int
		for name, n := range counts {
			if rest, ok := strings.CutPrefix(name, p.name+" "); ok {
				switch rest {
				case "write", "append", "incr", "delete":
					wrote += n
				default:
					refused += n
				}
			}
		}
		if wrote == 0 || refused == 0 {
			t.Errorf("%s: %d writes, %d refusals: the random walk missed a case", p.name, wrote, refused)
		}
	}
}
