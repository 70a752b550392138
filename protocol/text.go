// Package protocol parses and encodes memcached's wire formats: the classic
// text protocol, the meta commands and the binary protocol. It does no I/O
// and no logging: callers hand it bytes and get back requests, or hand it
// results and get back reply bytes, so every rule can be tested in isolation.
package protocol

import (
	"bytes"
	"errors"
)

// Command identifies a request's command.
type Command uint8

// Text-protocol commands.
const (
	CmdNone Command = iota
	CmdGet
	CmdGets
	CmdGat
	CmdGats
	CmdSet
	CmdAdd
	CmdReplace
	CmdAppend
	CmdPrepend
	CmdCas
	CmdDelete
	CmdIncr
	CmdDecr
	CmdTouch
	CmdFlushAll
	CmdVersion
	CmdVerbosity
	CmdQuit
	CmdShutdown
	CmdStats
	CmdCacheMemlimit
	CmdMetaNoop   // mn
	CmdMetaGet    // mg
	CmdMetaSet    // ms
	CmdMetaDelete // md
	CmdMetaArith  // ma
	CmdMetaDebug  // me
	CmdLruCrawler
	CmdSlabs
	CmdLru
	CmdWatch
	CmdMisbehave
	CmdRefreshCerts
	CmdDebugTime
	// CmdConfig is ElastiCache's auto-discovery command ("config get
	// cluster"); the server interprets Args, and answers it as memcached
	// does (ERROR) unless it has a cluster configuration.
	CmdConfig
)

// Limits from memcached.
const (
	// MaxKeyLength is the longest key memcached accepts.
	MaxKeyLength = 250
	// MaxLineLength is the longest command line, other than get/gets, that
	// may arrive without its newline; beyond it memcached closes the
	// connection.
	MaxLineLength = 2048
	// maxValueLength is the longest data block a storage command may
	// announce: memcached refuses a length over INT_MAX-2 (its length plus
	// "\r\n" must fit an int) as a malformed line.
	maxValueLength = 1<<31 - 1 - 2
	// maxTokens is memcached's MAX_TOKENS: a line splits into at most this
	// many tokens, counting the terminal empty one memcached appends.
	maxTokens = 24
)

// Request is one parsed text-protocol request. Byte slices point into the
// buffer given to Parse and are valid until that buffer is reused.
type Request struct {
	Command Command
	Key     []byte   // single-key commands
	Keys    [][]byte // retrieval commands; the backing array is reused
	Flags   uint32
	Exptime int64 // as sent: relative seconds, Unix time or negative
	Bytes   int   // length of the data block that follows a storage command
	CAS     uint64
	Delta   uint64
	NoReply bool
	// Swallow is, with an error Reply, the bytes of a data block to
	// discard after the line (a cas without its unique); 0 otherwise.
	Swallow int
	// Args are the tokens after the command name for commands whose
	// arguments the server interprets (stats, flush_all, verbosity,
	// cache_memlimit, meta commands, ...). The backing array is reused.
	Args [][]byte
	// tokens is scratch space for the tokenizer.
	tokens [maxTokens][]byte
}

// Reply is an error whose text is the exact line memcached sends for it.
type Reply string

func (r Reply) Error() string { return string(r) }

// Replies memcached sends for malformed requests.
const (
	ErrUnknownCommand Reply = "ERROR"
	ErrBadFormat      Reply = "CLIENT_ERROR bad command line format"
	ErrBadDataChunk   Reply = "CLIENT_ERROR bad data chunk"
	ErrBadExptime     Reply = "CLIENT_ERROR invalid exptime argument"
	ErrBadDelta       Reply = "CLIENT_ERROR invalid numeric delta argument"
	ErrDeleteUsage    Reply = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
	ErrNonNumeric     Reply = "CLIENT_ERROR cannot increment or decrement non-numeric value"
	ErrTooLarge       Reply = "SERVER_ERROR object too large for cache"
	ErrOutOfMemory    Reply = "SERVER_ERROR out of memory storing object"
)

var (
	// ErrIncomplete means buf holds no complete request yet: read more.
	ErrIncomplete = errors.New("protocol: incomplete request")
	// ErrLineTooLong means a line grew past its limit without a newline;
	// memcached closes the connection.
	ErrLineTooLong = errors.New("protocol: line too long")
	// ErrHTTPRequest means an unknown command whose last token starts with
	// "HTTP/": a browser or an HTTP health check. memcached closes the
	// connection without a reply.
	ErrHTTPRequest = errors.New("protocol: HTTP request")
)

// isLongLinePrefix reports whether an unfinished line is a multiget, which
// memcached lets grow past MaxLineLength.
func isLongLinePrefix(buf []byte) bool {
	i := 0
	for i < len(buf) && buf[i] == ' ' {
		i++
	}
	if i > 100 {
		return false
	}
	rest := buf[i:]
	return bytes.HasPrefix(rest, []byte("get ")) || bytes.HasPrefix(rest, []byte("gets "))
}

// ParseLine parses the command line at the start of buf into r and returns
// the length of the line including its newline. maxLine bounds a long get
// line; other lines are bounded by MaxLineLength.
//
// Errors: ErrIncomplete (no newline yet; n is 0), ErrLineTooLong (close the
// connection), or a Reply to send (n covers the bad line; r.NoReply says
// whether the client asked for silence). A storage command's data block is
// not consumed: check r.Bytes and call ParseData.
func ParseLine(buf []byte, r *Request, maxLine int) (int, error) {
	nl := bytes.IndexByte(buf, '\n')
	if nl < 0 {
		if len(buf) > MaxLineLength && (len(buf) > maxLine || !isLongLinePrefix(buf)) {
			return 0, ErrLineTooLong
		}
		return 0, ErrIncomplete
	}
	if nl >= maxLine && nl > MaxLineLength {
		return 0, ErrLineTooLong
	}
	n := nl + 1
	line := buf[:nl]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	// memcached reads the line as a C string: a NUL ends it.
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	return n, parseCommand(line, r)
}

// tokenize splits line on spaces like memcached's tokenize_command: empty
// tokens are skipped, and once max-1 tokens are taken the rest of the line
// is the last token. It returns memcached's ntokens, which counts a terminal
// empty token.
func tokenize(line []byte, tokens *[maxTokens][]byte) int {
	n := 0
	start := 0
	for i := 0; i < len(line); i++ {
		if line[i] != ' ' {
			continue
		}
		if i > start {
			tokens[n] = line[start:i]
			n++
			if n == maxTokens-1 {
				start = i + 1
				if start < len(line) {
					tokens[n] = line[start:]
					n++
				}
				return n
			}
		}
		start = i + 1
	}
	if start < len(line) {
		tokens[n] = line[start:]
		n++
	}
	tokens[n] = nil
	return n + 1
}

func reset(r *Request) {
	r.Command = CmdNone
	r.Key = nil
	r.Keys = r.Keys[:0]
	r.Flags, r.Exptime, r.Bytes, r.CAS, r.Delta, r.Swallow = 0, 0, 0, 0, 0, 0
	r.NoReply = false
	r.Args = r.Args[:0]
}

var noreplyToken = []byte("noreply")

// setNoReply mirrors memcached's set_noreply_maybe: the last real token
// decides.
func setNoReply(r *Request, tokens [][]byte) {
	if len(tokens) > 0 && bytes.Equal(tokens[len(tokens)-1], noreplyToken) {
		r.NoReply = true
	}
}

func parseCommand(line []byte, r *Request) error {
	reset(r)
	nt := tokenize(line, &r.tokens)
	toks := r.tokens[:nt-1] // real tokens, without the terminal one
	if len(toks) == 0 {
		// memcached 1.6.18's ERROR (the current memcached answers
		// CLIENT_ERROR bad command line format): the leftover of a
		// malformed data block is often an empty line, and 1.6.18's
		// clients see ERROR there.
		return ErrUnknownCommand
	}
	name := toks[0]
	switch string(name) { // the compiler does not allocate for this switch
	case "get", "bget": // bget: memcached's legacy alias
		return parseRetrieval(CmdGet, line, toks, nt, r)
	case "gets":
		return parseRetrieval(CmdGets, line, toks, nt, r)
	case "gat":
		return parseRetrieval(CmdGat, line, toks, nt, r)
	case "gats":
		return parseRetrieval(CmdGats, line, toks, nt, r)
	case "set":
		return parseStorage(CmdSet, toks, nt, r)
	case "add":
		return parseStorage(CmdAdd, toks, nt, r)
	case "replace":
		return parseStorage(CmdReplace, toks, nt, r)
	case "append":
		return parseStorage(CmdAppend, toks, nt, r)
	case "prepend":
		return parseStorage(CmdPrepend, toks, nt, r)
	case "cas":
		return parseStorage(CmdCas, toks, nt, r)
	case "delete":
		return parseDelete(toks, nt, r)
	case "incr":
		return parseArith(CmdIncr, toks, nt, r)
	case "decr":
		return parseArith(CmdDecr, toks, nt, r)
	case "touch":
		return parseTouch(toks, nt, r)
	case "flush_all":
		return parseWithArgs(CmdFlushAll, toks, nt, 2, 4, r)
	case "version":
		r.Command = CmdVersion
		return nil
	case "quit":
		r.Command = CmdQuit
		return nil
	case "shutdown":
		return parseWithArgs(CmdShutdown, toks, nt, 2, 3, r)
	case "verbosity":
		return parseWithArgs(CmdVerbosity, toks, nt, 3, 4, r)
	case "stats":
		return parseWithArgs(CmdStats, toks, nt, 2, maxTokens, r)
	case "cache_memlimit":
		return parseWithArgs(CmdCacheMemlimit, toks, nt, 3, 4, r)
	case "mn":
		return parseWithArgs(CmdMetaNoop, toks, nt, 2, maxTokens, r)
	case "mg":
		return parseMeta(CmdMetaGet, toks, r)
	case "ms":
		return parseMeta(CmdMetaSet, toks, r)
	case "md":
		return parseMeta(CmdMetaDelete, toks, r)
	case "ma":
		return parseMeta(CmdMetaArith, toks, r)
	case "me":
		return parseMeta(CmdMetaDebug, toks, r)
	case "lru_crawler":
		return parseWithArgs(CmdLruCrawler, toks, nt, 2, maxTokens, r)
	case "slabs":
		return parseWithArgs(CmdSlabs, toks, nt, 2, maxTokens, r)
	case "lru":
		return parseWithArgs(CmdLru, toks, nt, 2, maxTokens, r)
	case "watch":
		return parseWithArgs(CmdWatch, toks, nt, 2, maxTokens, r)
	case "misbehave":
		return parseWithArgs(CmdMisbehave, toks, nt, 2, maxTokens, r)
	case "refresh_certs":
		return parseWithArgs(CmdRefreshCerts, toks, nt, 2, maxTokens, r)
	case "debugtime":
		return parseWithArgs(CmdDebugTime, toks, nt, 2, maxTokens, r)
	case "config":
		return parseWithArgs(CmdConfig, toks, nt, 2, maxTokens, r)
	}
	return unknownCommand(name, toks)
}

// unknownCommand is memcached's answer to a command it does not know:
// ERROR, or closing the connection (ErrHTTPRequest) when the last token
// starts with "HTTP/". As memcached's dispatch, which checks HTTP/ only
// after every command family, a name of one byte, starting with g, s, a,
// c, i, d or t, or a two-byte m name, is an ERROR whatever follows.
func unknownCommand(name []byte, toks [][]byte) error {
	if len(name) < 2 {
		return ErrUnknownCommand
	}
	switch name[0] {
	case 'g', 's', 'a', 'c', 'i', 'd', 't':
		return ErrUnknownCommand
	case 'm':
		if len(name) == 2 {
			return ErrUnknownCommand
		}
	}
	if bytes.HasPrefix(toks[len(toks)-1], []byte("HTTP/")) {
		return ErrHTTPRequest
	}
	return ErrUnknownCommand
}

// parseWithArgs accepts minTok <= ntokens <= maxTok (memcached's counts,
// with the terminal token) and keeps the arguments for the server.
func parseWithArgs(cmd Command, toks [][]byte, nt, minTok, maxTok int, r *Request) error {
	if nt < minTok || nt > maxTok {
		return ErrUnknownCommand
	}
	r.Command = cmd
	r.Args = append(r.Args, toks[1:]...)
	// Of these commands only the three below honour noreply in memcached;
	// "stats noreply" is an unknown stats group and answers ERROR.
	switch cmd {
	case CmdFlushAll, CmdVerbosity, CmdCacheMemlimit:
		setNoReply(r, toks)
	}
	return nil
}

// parseMeta keeps the key and flag tokens; the meta parser interprets them.
func parseMeta(cmd Command, toks [][]byte, r *Request) error {
	r.Command = cmd
	if len(toks) > 1 {
		r.Key = toks[1]
	}
	if len(toks) > 2 {
		r.Args = append(r.Args, toks[2:]...)
	}
	return nil
}

func parseRetrieval(cmd Command, line []byte, toks [][]byte, nt int, r *Request) error {
	first := 1
	if cmd == CmdGat || cmd == CmdGats {
		if nt < 3 {
			return ErrUnknownCommand
		}
		exp, ok := safeStrtol32(toks[1])
		if !ok {
			return ErrBadExptime
		}
		r.Exptime = int64(exp)
		first = 2
	} else if nt < 3 {
		return ErrUnknownCommand
	}
	r.Command = cmd
	// Keys past the tokenizer's limit are still in the last token: split
	// the whole remainder ourselves so a 100-key multiget is one request.
	// A token is a subslice of line, so its offset follows from the caps.
	var rest []byte
	if first < len(toks) {
		rest = line[cap(line)-cap(toks[first]):]
	}
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, ' ')
		var k []byte
		if i < 0 {
			k, rest = rest, nil
		} else {
			k, rest = rest[:i], rest[i+1:]
		}
		if len(k) == 0 {
			continue
		}
		if len(k) > MaxKeyLength {
			return ErrBadFormat
		}
		r.Keys = append(r.Keys, k)
	}
	return nil
}

func parseStorage(cmd Command, toks [][]byte, nt int, r *Request) error {
	casMissing := false
	if cmd == CmdCas {
		// memcached 1.6.18 answers ERROR to a cas without its unique (and
		// ERROR again to its data line); the current memcached, and
		// gocached, CLIENT_ERROR, swallowing the data block.
		casMissing = nt == 6
		if nt != 6 && nt != 7 && nt != 8 {
			return ErrUnknownCommand
		}
	} else if nt != 6 && nt != 7 {
		return ErrUnknownCommand
	}
	r.Command = cmd
	setNoReply(r, toks)
	if len(toks[1]) > MaxKeyLength {
		return ErrBadFormat
	}
	r.Key = toks[1]
	// As memcached's process_update_command: 64-bit strtoul/strtol
	// truncated into 32-bit fields, then the length's range.
	flags, ok1 := safeStrtoul32(toks[2])
	exp, ok2 := safeStrtol32(toks[3])
	size, ok3 := safeStrtol32(toks[4])
	if !ok1 || !ok2 || !ok3 {
		return ErrBadFormat
	}
	r.Flags, r.Exptime = flags, int64(exp)
	if casMissing {
		if size >= 0 && size <= maxValueLength {
			r.Swallow = int(size) + 2
		}
		return ErrBadFormat
	}
	if cmd == CmdCas {
		cas, ok := safeStrtoull(toks[5])
		if !ok {
			return ErrBadFormat
		}
		r.CAS = cas
	}
	if size < 0 || size > maxValueLength {
		// No data block is swallowed: memcached reads the next line as a
		// command.
		return ErrBadFormat
	}
	r.Bytes = int(size)
	return nil
}

func parseDelete(toks [][]byte, nt int, r *Request) error {
	if nt < 3 || nt > 5 {
		return ErrUnknownCommand
	}
	r.Command = CmdDelete
	if len(toks[1]) > MaxKeyLength {
		return ErrBadFormat
	}
	r.Key = toks[1]
	if nt > 3 {
		// memcached accepts a legacy "0" time and noreply, nothing else.
		hold0 := bytes.Equal(toks[2], []byte("0"))
		setNoReply(r, toks)
		extra := nt - 3
		if r.NoReply {
			extra--
		}
		if extra > 1 || (extra == 1 && !hold0) {
			return ErrDeleteUsage
		}
	}
	return nil
}

// parseKeyArg handles "<cmd> <key> <arg> [noreply]", the shape of incr,
// decr and touch, and returns the argument token.
func parseKeyArg(cmd Command, toks [][]byte, nt int, r *Request) ([]byte, error) {
	if nt != 4 && nt != 5 {
		return nil, ErrUnknownCommand
	}
	r.Command = cmd
	setNoReply(r, toks)
	if len(toks[1]) > MaxKeyLength {
		return nil, ErrBadFormat
	}
	r.Key = toks[1]
	return toks[2], nil
}

func parseArith(cmd Command, toks [][]byte, nt int, r *Request) error {
	arg, err := parseKeyArg(cmd, toks, nt, r)
	if err != nil {
		return err
	}
	d, ok := safeStrtoull(arg)
	if !ok {
		return ErrBadDelta
	}
	r.Delta = d
	return nil
}

func parseTouch(toks [][]byte, nt int, r *Request) error {
	arg, err := parseKeyArg(CmdTouch, toks, nt, r)
	if err != nil {
		return err
	}
	exp, ok := safeStrtol32(arg)
	if !ok {
		return ErrBadExptime
	}
	r.Exptime = int64(exp)
	return nil
}

// ParseData frames a storage command's data block of size bytes at the
// start of buf. It returns the value and the bytes consumed (size+2), or
// ErrIncomplete, or ErrBadDataChunk when the block does not end in "\r\n"
// (the size+2 bytes are still consumed, as memcached does).
func ParseData(buf []byte, size int) ([]byte, int, error) {
	if len(buf) < size+2 {
		return nil, 0, ErrIncomplete
	}
	if buf[size] != '\r' || buf[size+1] != '\n' {
		return nil, size + 2, ErrBadDataChunk
	}
	return buf[:size], size + 2, nil
}
