package testutil

import (
	"os"
	"testing"
)

// Missing reports that something the test needs (a client library, a
// program's module) is not installed: it skips the test with msg locally
// and fails it under CI (the CI environment variable set, as .ci/run does),
// where every prerequisite must be there.
func Missing(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatal(msg + " (.ci/run installs it)")
	}
	tb.Skip("skipping: " + msg)
}
