package main

import (
	"fmt"
	"strings"
)

// optSpec describes one of memcached's command-line options as its
// getopt_long table does: the short letter, the long name ("" when memcached
// has none) and whether it takes an argument.
type optSpec struct {
	short  byte
	long   string
	hasArg bool
}

// memcachedOpts is memcached 1.6.18's option table (short optstring
// "a:AZp:s:U:m:Mc:khiVrvdl:u:P:f:n:t:D:LR:Cb:B:I:SFXWY:e:o:N:" and its
// longopts).
var memcachedOpts = []optSpec{
	{'a', "unix-mask", true},
	{'A', "enable-shutdown", false},
	{'Z', "enable-ssl", false},
	{'p', "port", true},
	{'s', "unix-socket", true},
	{'U', "udp-port", true},
	{'m', "memory-limit", true},
	{'M', "disable-evictions", false},
	{'c', "conn-limit", true},
	{'k', "lock-memory", false},
	{'h', "help", false},
	{'i', "license", false},
	{'V', "version", false},
	{'r', "enable-coredumps", false},
	{'v', "verbose", false},
	{'d', "daemon", false},
	{'l', "listen", true},
	{'u', "user", true},
	{'P', "pidfile", true},
	{'f', "slab-growth-factor", true},
	{'n', "slab-min-size", true},
	{'t', "threads", true},
	{'D', "", true},
	{'L', "enable-largepages", false},
	{'R', "max-reqs-per-event", true},
	{'C', "disable-cas", false},
	{'b', "listen-backlog", true},
	{'B', "protocol", true},
	{'I', "max-item-size", true},
	{'S', "enable-sasl", false},
	{'F', "disable-flush-all", false},
	{'X', "disable-dumping", false},
	{'W', "disable-watch", false},
	{'Y', "auth-file", true},
	{'e', "memory-file", true},
	{'o', "extended", true},
	{'N', "napi-ids", true},
}

// flagName is the urfave flag name of an option: its long name, or its
// letter for the options that have none (-D).
func (o optSpec) flagName() string {
	if o.long != "" {
		return o.long
	}
	return string(o.short)
}

// getoptError is a command-line syntax error, worded as glibc's getopt_long
// words it. memcached follows each with `Illegal argument "?"` and exits 1.
type getoptError struct{ msg string }

func (e *getoptError) Error() string { return e.msg }

// normalize reads args (without the program name) the way memcached's
// getopt_long loop does — clustered short options (-vvd), attached values
// (-p11211, -unobody), "--long=value" and "--long value", unambiguous
// prefixes of long names (--vers), "--" ending the options, and
// non-option words anywhere — and rewrites the options as "--name=value"
// or "--name" words that urfave/cli parses without surprises. The
// non-option words are returned separately, in order.
func normalize(prog string, args []string) (out, positional []string, err error) {
	byShort := map[byte]optSpec{}
	for _, o := range memcachedOpts {
		byShort[o.short] = o
	}
	emit := func(o optSpec, val string) {
		if o.hasArg {
			out = append(out, "--"+o.flagName()+"="+val)
		} else {
			out = append(out, "--"+o.flagName())
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			return out, positional, nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			o, err := lookupLong(prog, name, a[2:])
			if err != nil {
				return nil, nil, err
			}
			switch {
			case !o.hasArg && hasVal:
				return nil, nil, &getoptError{fmt.Sprintf("%s: option '--%s' doesn't allow an argument", prog, o.long)}
			case o.hasArg && !hasVal:
				if i+1 >= len(args) {
					return nil, nil, &getoptError{fmt.Sprintf("%s: option '--%s' requires an argument", prog, o.long)}
				}
				i++
				val = args[i]
			}
			emit(o, val)
			if isTerminal(o) {
				return out, positional, nil
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				o, ok := byShort[a[j]]
				if !ok {
					return nil, nil, &getoptError{fmt.Sprintf("%s: invalid option -- '%c'", prog, a[j])}
				}
				if !o.hasArg {
					emit(o, "")
					if isTerminal(o) {
						return out, positional, nil
					}
					continue
				}
				if j+1 < len(a) {
					emit(o, a[j+1:])
				} else if i+1 < len(args) {
					i++
					emit(o, args[i])
				} else {
					return nil, nil, &getoptError{fmt.Sprintf("%s: option requires an argument -- '%c'", prog, a[j])}
				}
				break
			}
		default:
			positional = append(positional, a)
		}
	}
	return out, positional, nil
}

// lookupLong finds a long option by its full name or an unambiguous prefix.
// whole is the argument as given (with any "=value"), which glibc quotes in
// its messages.
func lookupLong(prog, name, whole string) (optSpec, error) {
	var matches []optSpec
	for _, o := range memcachedOpts {
		if o.long == "" {
			continue
		}
		if o.long == name {
			return o, nil
		}
		if name != "" && strings.HasPrefix(o.long, name) {
			matches = append(matches, o)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return optSpec{}, &getoptError{fmt.Sprintf("%s: unrecognized option '--%s'", prog, whole)}
	}
	names := make([]string, len(matches))
	for i, m := range matches {
		names[i] = "'--" + m.long + "'"
	}
	return optSpec{}, &getoptError{fmt.Sprintf("%s: option '--%s' is ambiguous; possibilities: %s", prog, whole, strings.Join(names, " "))}
}

// isTerminal reports whether memcached exits as soon as its getopt loop
// meets the option (-h, -i, -V): later arguments are never looked at.
func isTerminal(o optSpec) bool { return o.short == 'h' || o.short == 'i' || o.short == 'V' }
