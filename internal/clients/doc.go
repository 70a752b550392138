// Package clients holds gocached's tests with real, unmodified memcached
// clients from Debian packages; it has no code outside its tests.
//
// TestClients runs one script per client (testdata/) against the real
// memcached (from PATH) and against gocached, each started fresh for the
// client, and requires both runs to pass the same checks. A check that fails
// against memcached is itself wrong. Each script prints one line per check,
// "ok NAME" or "FAIL NAME: what happened", and exits non-zero only when the
// client itself broke (an exception, libmemcached's abort).
//
//	go test ./internal/clients -run 'TestClients/pylibmc'   # one client
//	CLIENTS_VERBOSE=1 go test ./internal/clients -v          # log every check
//
// The checks cover each client's basic API and what issue 12 found: a CAS
// with a stale or zero unique must not overwrite, and an expiry of -1 (which
// libmemcached sends as 4294967295) expires the item at once and keeps the
// client's stream in step.
package clients
