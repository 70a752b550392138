// Package auth implements gocached's SASL authentication: the PLAIN
// mechanism over memcached's binary protocol, checked against a password
// file in the format of memcached's built-in password database
// (MEMCACHED_SASL_PWDB): one "user:password" per line.
package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"os"
)

// MechPlain is the only mechanism offered.
const MechPlain = "PLAIN"

// Mechanisms is the reply to a SASL list-mechanisms request: the names
// separated by spaces, as cyrus-sasl's sasl_listmech.
const Mechanisms = MechPlain

// EnvPasswordDB names the environment variable memcached reads the
// password file's path from.
const EnvPasswordDB = "MEMCACHED_SASL_PWDB"

// OptionPasswordDB is gocached's -o option naming the password file; it
// takes precedence over the environment variable.
const OptionPasswordDB = "sasl_pwdb"

// maxEntryLen is memcached's MAX_ENTRY_LEN: a user and password longer
// together than this minus 4 never authenticate.
const maxEntryLen = 256

// PasswordDBPath returns the password file to use: the -o sasl_pwdb
// option if given, else $MEMCACHED_SASL_PWDB, else "".
func PasswordDBPath(extended map[string]string) string {
	if p := extended[OptionPasswordDB]; p != "" {
		return p
	}
	return os.Getenv(EnvPasswordDB)
}

// ParsePlain splits a PLAIN message (RFC 4616): authzid NUL authcid NUL
// password. ok is false when it is malformed.
func ParsePlain(msg []byte) (authzid, user, pass []byte, ok bool) {
	i := bytes.IndexByte(msg, 0)
	if i < 0 {
		return nil, nil, nil, false
	}
	rest := msg[i+1:]
	j := bytes.IndexByte(rest, 0)
	if j < 0 {
		return nil, nil, nil, false
	}
	authzid, user, pass = msg[:i], rest[:j], rest[j+1:]
	if len(user) == 0 || bytes.IndexByte(pass, 0) >= 0 {
		return nil, nil, nil, false
	}
	return authzid, user, pass, true
}

// CheckPlain verifies a PLAIN message against the password file at path.
// An authorization identity other than the user's own is refused (no
// proxy authorization, as cyrus-sasl's default policy). The file is read
// at each call, as memcached does, so it can be edited without a restart.
func CheckPlain(path string, msg []byte) bool {
	authzid, user, pass, ok := ParsePlain(msg)
	if !ok || (len(authzid) > 0 && !bytes.Equal(authzid, user)) {
		return false
	}
	return CheckPasswordFile(path, user, pass)
}

// CheckPasswordFile reports whether user and pass match the file at path.
// A missing or unreadable file authenticates nobody.
func CheckPasswordFile(path string, user, pass []byte) bool {
	if path == "" {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return CheckPassword(f, user, pass)
}

// CheckPassword reports whether user and pass match the password database
// read from r, with memcached's rules: the first line whose user matches
// decides; the password ends at the end of the line or at a ':' (further
// fields are ignored); a trailing '\r' is not part of it. The password
// comparison takes the same time whatever the stored or given password,
// and the whole database is read even after the user is found.
func CheckPassword(r io.Reader, user, pass []byte) bool {
	if len(user) == 0 || len(user)+len(pass) > maxEntryLen-4 || bytes.IndexByte(user, ':') >= 0 {
		return false
	}
	given := sha256.Sum256(pass)
	found, match := false, 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSuffix(sc.Bytes(), []byte{'\r'})
		u, p, ok := bytes.Cut(line, []byte{':'})
		if !ok || found || !bytes.Equal(u, user) {
			continue
		}
		found = true
		if i := bytes.IndexByte(p, ':'); i >= 0 {
			p = p[:i]
		}
		stored := sha256.Sum256(p)
		match = subtle.ConstantTimeCompare(given[:], stored[:])
	}
	return found && match == 1
}
