package server

import (
	"bytes"
	"strings"
)

// StatsMap returns what the "stats" command reports (memcached's general
// statistics), keyed by stat name. It is built from the same generator as
// the wire reply, so it names and counts exactly what a client sees; it is
// read-only and safe to call while the server runs (e.g. from a metrics
// scrape).
func (s *Server) StatsMap() map[string]string {
	return parseStatLines(s.appendGeneralStats(nil))
}

// parseStatLines reads "STAT name value\r\n" lines into a map.
func parseStatLines(b []byte) map[string]string {
	m := make(map[string]string, 96)
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		rest, ok := bytes.CutPrefix(line, []byte("STAT "))
		if !ok {
			continue
		}
		name, value, _ := strings.Cut(string(rest), " ")
		m[name] = value
	}
	return m
}
