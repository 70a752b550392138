package testutil

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNSServer is an authoritative DNS server on a loopback UDP port whose
// records a test sets and changes as it goes, so name discovery is tested
// without the network. Unknown names answer NXDOMAIN.
type DNSServer struct {
	// Addr is the server's "127.0.0.1:port".
	Addr string

	mu   sync.Mutex
	a    map[string][]net.IP
	srv  map[string][]net.SRV
	fail map[string]bool
	srvr *dns.Server
}

// StartDNS starts a DNSServer and stops it when the test ends.
func StartDNS(tb testing.TB) *DNSServer {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	d := &DNSServer{Addr: pc.LocalAddr().String(), a: map[string][]net.IP{}, srv: map[string][]net.SRV{},
		fail: map[string]bool{}}
	started := make(chan struct{})
	d.srvr = &dns.Server{PacketConn: pc, Handler: d, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = d.srvr.ActivateAndServe() }()
	<-started
	tb.Cleanup(func() { _ = d.srvr.Shutdown() })
	return d
}

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// SetA replaces name's A and AAAA records (by the addresses' family).
func (d *DNSServer) SetA(name string, ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var list []net.IP
	for _, s := range ips {
		list = append(list, net.ParseIP(s))
	}
	d.a[fqdn(name)] = list
}

// SetSRV replaces name's SRV records.
func (d *DNSServer) SetSRV(name string, recs ...net.SRV) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.srv[fqdn(name)] = recs
}

// SetFail makes every query for name answer SERVFAIL (or stop doing so).
func (d *DNSServer) SetFail(name string, fail bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail[fqdn(name)] = fail
}

// Resolver returns a pure-Go resolver that asks only this server.
func (d *DNSServer) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp", d.Addr)
	}}
}

// ServeDNS answers one query from the current records.
func (d *DNSServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	d.mu.Lock()
	for _, q := range req.Question {
		name := strings.ToLower(q.Name)
		if d.fail[name] {
			m.Rcode = dns.RcodeServerFailure
			continue
		}
		ips, hasA := d.a[name]
		srvs, hasSRV := d.srv[name]
		if !hasA && !hasSRV {
			m.Rcode = dns.RcodeNameError
			continue
		}
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 1, Rrtype: q.Qtype}
		switch q.Qtype {
		case dns.TypeA, dns.TypeAAAA:
			for _, ip := range ips {
				if v4 := ip.To4(); v4 != nil && q.Qtype == dns.TypeA {
					m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: v4})
				} else if v4 == nil && q.Qtype == dns.TypeAAAA {
					m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip})
				}
			}
		case dns.TypeSRV:
			for _, s := range srvs {
				m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr, Priority: s.Priority, Weight: s.Weight,
					Port: s.Port, Target: dns.Fqdn(s.Target)})
			}
		}
	}
	d.mu.Unlock()
	_ = w.WriteMsg(m)
}
