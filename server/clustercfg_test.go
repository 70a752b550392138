package server_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
)

// awsNodes is the node line of AWS's documented example ("Adding Auto
// Discovery to your client library", Output Format).
const awsNodes = "myCluster.pc4ldq.0001.use1.cache.amazonaws.com|10.82.235.120|11211 " +
	"myCluster.pc4ldq.0002.use1.cache.amazonaws.com|10.80.249.27|11211"

// startDiscovery starts a node with -o cluster_config=FILE holding text
// (no file when text is empty) and returns it, its address and the file.
func startDiscovery(t *testing.T, text string) (*server.Server, string, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cluster.cfg")
	if text != "" {
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := testutil.StartGocachedServer(t, func(cfg *server.Config) {
		cfg.AutoDiscovery = true
		cfg.ClusterConfigFile = file
	})
	return srv, srv.Addrs()[0].String(), file
}

// TestClusterConfigWireFormat checks the replies byte for byte against
// AWS's documented format: "CONFIG cluster 0 <bytes>", the version line
// ending in LF, the space-separated nodes ending in LF, the data block's
// CR LF, END. The length counts the data block (136 for AWS's example,
// whose page prints 147; real nodes count the bytes).
func TestClusterConfigWireFormat(t *testing.T) {
	_, addr, _ := startDiscovery(t, "# the cluster\n12\n"+awsNodes+"\n")
	c, r := dialText(t, "tcp", addr)
	data := "12\n" + awsNodes + "\n"
	if len(data) != 136 {
		t.Fatalf("example data is %d bytes", len(data))
	}
	for _, tc := range []struct{ req, want string }{
		{"config get cluster\r\n", "CONFIG cluster 0 136\r\n" + data + "\r\nEND\r\n"},
		{"get AmazonElastiCache:cluster\r\n", "VALUE AmazonElastiCache:cluster 0 136\r\n" + data + "\r\nEND\r\n"},
		// In a multiget the configuration is one more value.
		{"set k 0 0 1\r\nv\r\nget k AmazonElastiCache:cluster\r\n",
			"STORED\r\nVALUE k 0 1\r\nv\r\nVALUE AmazonElastiCache:cluster 0 136\r\n" + data + "\r\nEND\r\n"},
		{"config get nodes\r\n", "ERROR\r\n"},
		{"config\r\n", "ERROR\r\n"},
	} {
		expectReply(t, c, r, tc.req, tc.want)
	}
}

func TestClusterConfigSetAndDelete(t *testing.T) {
	_, addr, _ := startDiscovery(t, "")
	c, r := dialText(t, "tcp", addr)
	set := "1\ncache-0.cache|10.0.0.5|11211\ncache-1.cache||11211"
	norm := "1\ncache-0.cache|10.0.0.5|11211 cache-1.cache||11211\n"
	for _, tc := range []struct{ name, req, want string }{
		{"no file yet", "config get cluster\r\n", "END\r\n"},
		{"set", "config set cluster 7 " + itoa(len(set)) + "\r\n" + set + "\r\n", "STORED\r\n"},
		{"get", "config get cluster\r\n", "CONFIG cluster 7 " + itoa(len(norm)) + "\r\n" + norm + "\r\nEND\r\n"},
		{"set noreply", "config set cluster 0 " + itoa(len(set)) + " noreply\r\n" + set + "\r\n", ""},
		{"bad line", "config set cluster x 3\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"missing length", "config set cluster 0\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"bad chunk", "config set cluster 0 3\r\nabcde\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"},
		{"bad config", configSet("1\nhost|ip|0"), "CLIENT_ERROR bad cluster config: node \"host|ip|0\": port \"0\" is not 1..65535\r\n"},
		{"too large", "config set cluster 0 2000000\r\n" + strings.Repeat("x", 2000000) + "\r\n", "SERVER_ERROR object too large for cache\r\n"},
		{"kept", "config get cluster\r\n", "CONFIG cluster 0 " + itoa(len(norm)) + "\r\n" + norm + "\r\nEND\r\n"},
		{"delete", "config delete cluster\r\n", "DELETED\r\n"},
		{"deleted", "config get cluster\r\nget AmazonElastiCache:cluster\r\n", "END\r\nEND\r\n"},
		{"delete again", "config delete cluster\r\n", "NOT_FOUND\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectReply(t, c, r, tc.req, tc.want) })
	}
}

// TestClusterConfigSplitInput sends "config set cluster" a byte at a time.
func TestClusterConfigSplitInput(t *testing.T) {
	_, addr, _ := startDiscovery(t, "")
	c, r := dialText(t, "tcp", addr)
	req := configSet("3\nhost|127.0.0.1|11211\n") + "config get cluster\r\n"
	for i := 0; i < len(req); i++ {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	expectReply(t, c, r, "", "STORED\r\nCONFIG cluster 0 23\r\n3\nhost|127.0.0.1|11211\n\r\nEND\r\n")
}

// TestClusterConfigReload: SIGHUP's reload replaces the configuration
// (also one set at run time); a bad or missing file keeps it.
func TestClusterConfigReload(t *testing.T) {
	srv, addr, file := startDiscovery(t, "1\na|10.0.0.1|11211\n")
	c, r := dialText(t, "tcp", addr)
	get := func() string { return roundTrip(t, c, r, "config get cluster\r\n") }
	want := func(data string) string {
		return "CONFIG cluster 0 " + itoa(len(data)) + "\r\n" + data + "\r\nEND\r\n"
	}
	if got := get(); got != want("1\na|10.0.0.1|11211\n") {
		t.Fatalf("start: %q", got)
	}
	expectReply(t, c, r, configSet("9\nz|10.0.0.9|11211"), "STORED\r\n")
	if err := os.WriteFile(file, []byte("2\na|10.0.0.1|11211\nb|10.0.0.2|11211\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadClusterConfig(); err != nil {
		t.Fatal(err)
	}
	good := want("2\na|10.0.0.1|11211 b|10.0.0.2|11211\n")
	if got := get(); got != good {
		t.Fatalf("after reload: %q", got)
	}
	for _, bad := range []string{"3\n", "x\na|b|1\n", "3\na|b\n"} {
		if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := srv.ReloadClusterConfig(); err == nil {
			t.Errorf("reload of %q: no error", bad)
		}
		if got := get(); got != good {
			t.Fatalf("after a bad reload of %q: %q", bad, got)
		}
	}
	os.Remove(file)
	if err := srv.ReloadClusterConfig(); err == nil {
		t.Error("reload of a missing file: no error")
	}
	if got := get(); got != good {
		t.Fatalf("after the file went: %q", got)
	}
}

// TestClusterConfigBadFileFailsStartup: a node is not started with an
// unreadable configuration.
func TestClusterConfigBadFileFailsStartup(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cluster.cfg")
	if err := os.WriteFile(file, []byte("1\nnot-a-node\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.AutoDiscovery, cfg.ClusterConfigFile = true, file
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "not-a-node") {
		t.Fatalf("New: %v", err)
	}
}

func TestParseClusterConfig(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "12\n" + awsNodes + "\n", want: "12\n" + awsNodes + "\n"},
		{in: "# comment\n\n 5 \n a|1.2.3.4|1 \n b|5.6.7.8|65535\n", want: "5\na|1.2.3.4|1 b|5.6.7.8|65535\n"},
		{in: "5 a||11211", want: "5\na||11211\n"},
		{in: "", err: "empty"},
		{in: "# only\n", err: "empty"},
		{in: "-1\na|b|1", err: "version"},
		{in: "1\n", err: "no nodes"},
		{in: "1\n|1.2.3.4|11211", err: "host|ip|port"},
		{in: "1\na|b|c|1", err: "host|ip|port"},
		{in: "1\na|b|65536", err: "port"},
	} {
		got, err := server.ParseClusterConfig([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: %q %v, want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseClusterConfig: any input is refused or gives a configuration
// that parses to itself, with no CR and exactly two LFs.
func FuzzParseClusterConfig(f *testing.F) {
	f.Add([]byte("12\n" + awsNodes + "\n"))
	f.Add([]byte("1 a||1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := server.ParseClusterConfig(in)
		if err != nil {
			return
		}
		if bytes.Count(out, []byte("\n")) != 2 || bytes.ContainsAny(out, "\r") {
			t.Fatalf("%q -> %q", in, out)
		}
		again, err := server.ParseClusterConfig(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("%q -> %q -> %q %v", in, out, again, err)
		}
	})
}

// configSet is "config set cluster" with flags 0 and data.
func configSet(data string) string {
	return "config set cluster 0 " + itoa(len(data)) + "\r\n" + data + "\r\n"
}

func itoa(n int) string { return strconv.Itoa(n) }
