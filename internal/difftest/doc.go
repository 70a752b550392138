// Package difftest holds gocached's compatibility tests against memcached
// itself; it has no code outside its tests.
//
// TestDifferential sends each request script of testdata/*.txt to the real
// memcached 1.6 (from PATH) and to gocached, both started fresh for the case
// with the same flags, and requires byte-identical replies once the case's
// masks are applied. The format of the scripts is described at the top of
// testdata/README.txt.
//
//	go test ./internal/difftest -run 'TestDifferential/incr_wraps'  # one case
//	DIFFTEST_VERBOSE=1 go test ./internal/difftest -run ...          # print both replies
//	DIFFTEST_SELF=1 go test ./internal/difftest -run TestDifferential # memcached vs memcached
//
// The self-check (DIFFTEST_SELF=1) shows that every case is deterministic
// after its masks; run it after adding cases.
//
// TestMemccapable runs libmemcached's memccapable ASCII suite against
// gocached, and TestGomemcache drives gocached with the
// github.com/bradfitz/gomemcache client over TCP and a unix socket.
package difftest
