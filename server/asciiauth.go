package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/gocached/gocached/protocol"
)

// ASCII authentication (-Y authfile), as memcached's authfile.c and
// try_read_command_asciiauth: until it authenticates, a text connection's
// only accepted request is "set <key> <flags> <exptime> <bytes>" whose data
// block is "user pass". The key, flags and exptime are ignored and nothing
// is stored.

const (
	// authMaxLine is how far memcached looks for the newline of the auth
	// line before it gives up and closes the connection.
	authMaxLine = 2048
	// authMaxBlock bounds the credentials block: memcached reads it into
	// its 16 KB read buffer and, when it cannot fit, answers "auth token
	// too long" and closes the connection.
	authMaxBlock = 16 << 10
)

// Replies of the authentication exchange, memcached's exact strings.
const (
	replyUnauthenticated = "CLIENT_ERROR unauthenticated\r\n"
	replyAuthFailure     = "CLIENT_ERROR authentication failure\r\n"
	replyAuthBadFormat   = "CLIENT_ERROR bad authentication token format\r\n"
	replyAuthBadTerm     = "CLIENT_ERROR bad command line termination\r\n"
	replyAuthStored      = "STORED\r\n"
	replyAuthTooLong     = "CLIENT_ERROR auth token too long\r\n"
)

// asciiAuth is one connection's -Y state.
type asciiAuth struct {
	ok    bool // authenticated: requests go to execText from now on
	block int  // size of the credentials block (data + "\r\n") awaited; 0 while reading the set line
}

// authEntry is one user of the auth file, kept as digests so that checking
// a candidate takes the same time whatever its length or content.
type authEntry struct {
	user, pass [sha256.Size]byte
}

// authUsers is the loaded -Y file: read at New and again by
// ReloadAuthFile (memcached rereads it on SIGHUP).
type authUsers struct {
	entries []authEntry
}

// authState holds the -Y users in use.
type authState struct {
	users atomic.Pointer[authUsers]
}

// loadAuthFile reads memcached's -Y file: one "user:password" a line; the
// password runs to the end of the line (a '\r' ends it too) and may hold
// ':'. A line without ':' (an empty line included) makes the whole file
// invalid, as in memcached.
func loadAuthFile(path string) (authUsers, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return authUsers{}, fmt.Errorf("Could not open authfile [%s] for reading, error %v", path, err)
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i] // memcached reads the file as C strings
	}
	data = bytes.TrimSuffix(data, []byte{'\n'})
	var users authUsers
	if len(data) == 0 {
		return users, nil
	}
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		user, pass, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return authUsers{}, fmt.Errorf("Authfile [%s] has a malformed entry. Should be 'user:password'", path)
		}
		if i := bytes.IndexByte(pass, '\r'); i >= 0 {
			pass = pass[:i]
		}
		users.entries = append(users.entries, authEntry{user: sha256.Sum256(user), pass: sha256.Sum256(pass)})
	}
	return users, nil
}

// check reports whether user and pass match an entry. Every entry is
// compared, in constant time, whatever matches.
func (u *authUsers) check(user, pass []byte) bool {
	hu, hp := sha256.Sum256(user), sha256.Sum256(pass)
	match := 0
	for i := range u.entries {
		e := &u.entries[i]
		match |= subtle.ConstantTimeCompare(hu[:], e.user[:]) & subtle.ConstantTimeCompare(hp[:], e.pass[:])
	}
	return match == 1
}

// initASCIIAuth validates -Y against the rest of the configuration, with
// memcached's messages, and loads the file.
func (s *Server) initASCIIAuth() error {
	if s.cfg.AuthFile == "" {
		return nil
	}
	if s.cfg.Protocol == "binary" {
		return errors.New("ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.")
	}
	if s.udpEnabled() {
		return errors.New("Cannot use UDP with ascii authentication enabled (-U 0 to disable)")
	}
	return s.ReloadAuthFile()
}

// ReloadAuthFile rereads the -Y file, as memcached on SIGHUP; on error the
// users in use stay. Without -Y it does nothing.
func (s *Server) ReloadAuthFile() error {
	if s.cfg.AuthFile == "" {
		return nil
	}
	users, err := loadAuthFile(s.cfg.AuthFile)
	if err != nil {
		return err
	}
	s.auth.users.Store(&users)
	return nil
}

// execASCIIAuth reads one step of the authentication exchange at the start
// of buf, with execText's contract. With -Y every request of a connection
// comes here until one authenticates, binary ones included (memcached binds
// such connections to the text protocol).
//
// Before authentication memcached keeps a single reply object per batch of
// input and overwrites it, so of several replies to pipelined requests only
// the last one is sent: gocached's write buffer holds nothing but these
// replies until then, and each one replaces it.
func (c *conn) execASCIIAuth(buf []byte) (need int, complete bool) {
	a := &c.auth
	if a.block == 0 {
		if len(buf) < 2 {
			return 0, false
		}
		el := bytes.IndexByte(buf, '\n')
		if el < 0 {
			if len(buf) > authMaxLine {
				c.closing = true
				return 0, true
			}
			return 0, false
		}
		c.rpos += el + 1
		size, ok := parseAuthSetLine(buf[:el])
		if !ok {
			c.authReply(replyUnauthenticated)
			return 0, true
		}
		if size > authMaxBlock-2 {
			// The current memcached says why before it closes (1.6.18
			// closes without a word).
			c.authReply(replyAuthTooLong)
			c.closing = true
			return 0, true
		}
		a.block = int(size) + 2
		return 0, true
	}
	if len(buf) < a.block {
		return a.block, false
	}
	block := buf[:a.block]
	c.rpos += a.block
	a.block = 0
	if !bytes.HasSuffix(block, []byte("\r\n")) {
		c.authReply(replyAuthBadTerm)
		return 0, true
	}
	user, pass, ok := authTokens(block[:len(block)-2])
	if !ok {
		c.authReply(replyAuthBadFormat)
		return 0, true
	}
	atomic.AddUint64(&c.stats.authCmds, 1)
	if users := c.srv.auth.users.Load(); users == nil || !users.check(user, pass) {
		atomic.AddUint64(&c.stats.authErrors, 1)
		c.authReply(replyAuthFailure)
		return 0, true
	}
	c.auth.ok = true
	c.authReply(replyAuthStored)
	return 0, true
}

// authReply replaces the pending pre-authentication reply (see
// execASCIIAuth). noreply is not honoured, as in memcached.
func (c *conn) authReply(line string) {
	c.wbuf = append(c.wbuf[:0], line...)
}

// authSplit splits s on single spaces like memcached's tokenize_command
// (runs of spaces are one separator; only ' ' separates; a NUL ends the
// string) and returns at most max tokens.
func authSplit(s []byte, max int) [][]byte {
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	var toks [][]byte
	for len(s) > 0 && len(toks) < max {
		i := bytes.IndexByte(s, ' ')
		if i < 0 {
			toks = append(toks, s)
			break
		}
		if i > 0 {
			toks = append(toks, s[:i])
		}
		s = s[i+1:]
	}
	return toks
}

// parseAuthSetLine checks the line (without its '\n'; a '\r' before it
// stays in the last token, as in memcached) of the authentication request:
// at least five tokens, the first "set", the fifth the data size.
func parseAuthSetLine(line []byte) (uint32, bool) {
	toks := authSplit(line, 5)
	if len(toks) < 5 || string(toks[0]) != "set" {
		return 0, false
	}
	return protocol.ParseUint32(toks[4]) // safe_strtoul, truncated to 32 bits
}

// authTokens returns the user and the password of a credentials block:
// its first two space-separated tokens.
func authTokens(data []byte) (user, pass []byte, ok bool) {
	toks := authSplit(data, 2)
	if len(toks) < 2 {
		return nil, nil, false
	}
	return toks[0], toks[1], true
}
