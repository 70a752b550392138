package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gocached/gocached/server"
)

// StartGocachedServer starts gocached in-process like StartGocached (a free
// loopback TCP port, then mutate) and returns the server itself, for tests
// that need all its addresses: TLS and plain listeners, UDP sockets.
func StartGocachedServer(tb testing.TB, mutate func(*server.Config)) *server.Server {
	tb.Helper()
	return startGocached(tb, func(cfg *server.Config) {
		cfg.Port = 0
		cfg.Listen = []string{"127.0.0.1"}
		if mutate != nil {
			mutate(cfg)
		}
	})
}

// UDPDatagram is one datagram of a memcached UDP reply: its frame header
// and payload.
type UDPDatagram struct {
	RequestID, Seq, Total uint16
	Payload               []byte
}

// UDPRoundTrip sends payload in one datagram with memcached's frame header
// (request id reqID, sequence 0, 1 datagram) over c and returns the
// datagrams that come back until none arrives for idle. While the first
// datagram's count says more are due, it waits up to 5 s for each, so a
// loaded machine's scheduling delays are not taken for the end.
func UDPRoundTrip(c net.Conn, reqID uint16, payload []byte, idle time.Duration) ([]UDPDatagram, error) {
	return UDPRoundTripWait(c, reqID, payload, idle, idle)
}

// UDPRoundTripWait is UDPRoundTrip waiting up to first for the first
// datagram: long enough for a loaded machine, paid in full only by
// requests that get no reply.
func UDPRoundTripWait(c net.Conn, reqID uint16, payload []byte, first, idle time.Duration) ([]UDPDatagram, error) {
	req := binary.BigEndian.AppendUint16(nil, reqID)
	req = append(req, 0, 0, 0, 1, 0, 0)
	if _, err := c.Write(append(req, payload...)); err != nil {
		return nil, err
	}
	var out []UDPDatagram
	buf := make([]byte, 65536)
	for {
		wait := idle
		if len(out) == 0 {
			wait = first
		} else if len(out) < int(out[0].Total) {
			wait = 5 * time.Second
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out, nil
			}
			return out, err
		}
		if n < 8 {
			return out, errors.New("datagram shorter than the frame header")
		}
		out = append(out, UDPDatagram{
			RequestID: binary.BigEndian.Uint16(buf[0:]),
			Seq:       binary.BigEndian.Uint16(buf[2:]),
			Total:     binary.BigEndian.Uint16(buf[4:]),
			Payload:   append([]byte(nil), buf[8:n]...),
		})
	}
}

// TestPKI is a throwaway certificate authority with a server certificate
// for 127.0.0.1 and localhost and a client certificate, written as PEM
// files in a temporary directory.
type TestPKI struct {
	CAFile                        string         // the CA certificate
	CertFile, KeyFile             string         // the server's certificate and key
	ClientCertFile, ClientKeyFile string         // the client's
	Pool                          *x509.CertPool // holds the CA
	ClientCert                    tls.Certificate

	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

// NewTestPKI generates a CA, a server and a client certificate.
func NewTestPKI(tb testing.TB) *TestPKI {
	tb.Helper()
	p := &TestPKI{dir: tb.TempDir(), Pool: x509.NewCertPool()}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gocached test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.caKey = caKey
	p.serial = 1
	p.Pool.AddCert(p.caCert)
	p.CAFile = p.Write(tb, "ca.pem", pemBlock("CERTIFICATE", der))
	certPEM, keyPEM := p.Issue(tb, "server", x509.ExtKeyUsageServerAuth)
	p.CertFile = p.Write(tb, "server.pem", certPEM)
	p.KeyFile = p.Write(tb, "server.key", keyPEM)
	certPEM, keyPEM = p.Issue(tb, "client", x509.ExtKeyUsageClientAuth)
	p.ClientCertFile = p.Write(tb, "client.pem", certPEM)
	p.ClientKeyFile = p.Write(tb, "client.key", keyPEM)
	p.ClientCert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Issue signs a new certificate named cn for 127.0.0.1 and localhost and
// returns it and its key as PEM.
func (p *TestPKI) Issue(tb testing.TB, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", kder)
}

// Write stores data as name in the PKI's directory and returns its path.
func (p *TestPKI) Write(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
