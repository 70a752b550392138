// Command gocached is a memcached-compatible cache daemon. It takes
// memcached 1.6.18's command line (see "gocached -h"), so scripts, init
// units and compose files written for memcached run it unchanged; a first
// argument "memcached" is ignored, so an image whose entrypoint is gocached
// runs the official image's "memcached -m 64" command as is.
//
// Decisions where memcached's behaviour is not copied verbatim:
//
//   - "gocached -V" prints "gocached 1.6.18": the second word is the
//     memcached release whose command line and protocol gocached follows,
//     as scripts that parse "memcached -V" expect.
//   - Run as root, gocached refuses to start without -u, with memcached's
//     message and status 64; "-u root" keeps root. Unlike memcached, it
//     changes identity after opening its listeners and writing the pid
//     file, so it can bind ports below 1024.
//   - Numeric options must be numbers (memcached's atoi reads "abc" as 0);
//     -I keeps memcached's reading (k/m suffixes, atoi) and also takes g.
//   - -P writes the pid file with or without -d, as memcached does, and
//     removes it on exit.
//   - Options gocached does not implement are accepted and logged at warn
//     level (visible with -v) as "option accepted, not implemented".
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gocached/gocached/server"
	"github.com/gocached/gocached/slab"
)

const (
	// daemonEnv marks the re-executed child of -d; its fd 3 is the pipe on
	// which it reports readiness to the parent.
	daemonEnv = "GOCACHED_DAEMON_CHILD"
	// daemonWait is how long the -d parent waits for the child to listen.
	daemonWait = 5 * time.Second
	// shutdownTimeout bounds the graceful stop on SIGINT/SIGTERM/SIGUSR1.
	shutdownTimeout = 10 * time.Second
)

// daemon is what run needs of *server.Server; tests substitute a fake.
type daemon interface {
	Listen() error
	Addrs() []net.Addr
	Serve() error
	Shutdown(ctx context.Context) error
}

// reloader is the part of *server.Server that SIGHUP drives.
type reloader interface {
	ReloadAuthFile() error
	ReloadCerts() error
	ReloadClusterConfig() error
}

// persister is the part of *server.Server a warm restart (-e) uses.
type persister interface {
	Persist() error
	Restore() slab.RestoreInfo
}

// reloadOnHangup re-reads the -Y auth file (as memcached does on SIGHUP),
// the TLS certificates (memcached only has refresh_certs for those) and
// the -o cluster_config file each time the daemon gets SIGHUP; a failed
// reload keeps the old state.
func reloadOnHangup(hup <-chan os.Signal, r reloader, cfg server.Config, logger *zap.Logger) {
	for range hup {
		if cfg.AuthFile != "" {
			if err := r.ReloadAuthFile(); err != nil {
				logger.Error("reloading auth file", zap.Error(err))
			}
		}
		if cfg.TLS {
			if err := r.ReloadCerts(); err != nil {
				logger.Error("reloading certificates", zap.Error(err))
			}
		}
		if cfg.ClusterConfigFile != "" {
			if err := r.ReloadClusterConfig(); err != nil {
				logger.Error("reloading cluster config", zap.Error(err))
			}
		}
		logger.Info("SIGHUP handled")
	}
}

// setProcs maps memcached's -t (worker threads) onto the Go scheduler: at
// most that many goroutines run at once, so "-t 1" keeps gocached on one
// core as it keeps memcached. An explicit GOMAXPROCS in the environment
// wins.
func setProcs(threads int) {
	if os.Getenv("GOMAXPROCS") != "" || threads <= 0 {
		return
	}
	runtime.GOMAXPROCS(min(threads, runtime.NumCPU()))
}

// newServer builds the server; a variable so tests need no real server.
var newServer = func(cfg server.Config) (daemon, error) { return server.New(cfg) }

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run is the daemon; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if code, ok := runSubcommand(args, stdout, stderr); ok {
		return code // subcommands.go: cluster, healthcheck, stats
	}
	opts, act, err := parseArgs(args)
	if err != nil {
		return reportArgError(stderr, err)
	}
	switch act {
	case actHelp:
		fmt.Fprintf(stdout, "gocached %s\n%s", compatVersion, usageText)
		return 0
	case actVersion:
		fmt.Fprintf(stdout, "gocached %s\n", compatVersion)
		return 0
	case actLicense:
		fmt.Fprintf(stdout, "gocached %s\n\n%s", compatVersion, licenseText)
		return 0
	}
	// With -d the parent prints the startup notices and the child logs
	// the warnings, so that with -v they show once.
	child := os.Getenv(daemonEnv) == "1"
	daemonParent := opts.daemon && !child
	if !child {
		for _, n := range opts.notices {
			fmt.Fprintln(stderr, n)
		}
	}

	// memcached's root policy: root must name the user to become.
	var ident *identity
	if os.Geteuid() == 0 {
		if opts.user == "" {
			fmt.Fprintln(stderr, "can't run as root without the -u switch")
			return exUsage
		}
		ident, err = lookupIdentity(opts.user)
		if err != nil {
			fmt.Fprintf(stderr, "can't find the user %s to switch to\n", opts.user)
			return exNoUser
		}
	}

	logger := newLogger(stderr, opts.cfg.Verbosity)
	defer logger.Sync() //nolint:errcheck // stderr
	if !daemonParent {
		for _, s := range opts.notImplemented {
			logger.Warn("option accepted, not implemented", zap.String("option", s))
		}
		for _, p := range opts.positionals {
			logger.Warn("ignoring non-option argument", zap.String("argument", p))
		}
	}
	if daemonParent {
		return daemonize(args, opts.cfg.Verbosity > 0, stderr)
	}
	var ready *os.File
	if child {
		ready = os.NewFile(3, "ready")
		signal.Ignore(syscall.SIGHUP)
	}
	// fail reports a startup error: on stderr, or to the -d parent, which
	// prints it on its own stderr.
	fail := func(code int, format string, a ...any) int {
		msg := fmt.Sprintf(format, a...)
		if ready != nil {
			fmt.Fprintf(ready, "ERR %d %s\n", code, strings.ReplaceAll(msg, "\n", "\\n"))
			ready.Close()
		} else {
			fmt.Fprintln(stderr, msg)
		}
		return code
	}

	if opts.coreDumps {
		if err := raiseCoreLimit(); err != nil {
			return fail(exOSErr, "failed to ensure corefile creation")
		}
		debug.SetTraceback("crash")
	}
	if opts.lockMemory {
		if err := lockMemory(); err != nil {
			fmt.Fprintf(stderr, "warning: -k invalid, mlockall() failed: %v\n", err)
		}
	}

	cfg := opts.cfg
	cfg.Logger = logger
	setProcs(cfg.Threads)
	srv, err := newServer(cfg)
	if err != nil {
		return fail(exUsage, "%v", err)
	}
	pers, _ := srv.(persister)
	if pers != nil && cfg.Store.MemoryFile != "" {
		if r := pers.Restore(); r.Restored {
			logger.Info("restored items from memory file", zap.String("file", cfg.Store.MemoryFile),
				zap.Int("items", r.Items), zap.Int("dropped", r.Dropped), zap.Time("saved", r.SavedAt))
		} else {
			logger.Warn("memory file: starting empty", zap.String("file", cfg.Store.MemoryFile),
				zap.String("reason", r.Reason))
		}
	}
	if err := srv.Listen(); err != nil {
		return fail(exOSErr, "failed to listen: %v", err)
	}
	for _, a := range srv.Addrs() {
		logger.Info("listening", zap.String("network", a.Network()), zap.String("addr", a.String()))
	}
	stopMetrics, err := startMetrics(opts.cfg.Extended["metrics_listen"], srv, logger)
	if err != nil {
		return fail(exOSErr, "failed to listen for metrics: %v", err)
	}
	defer stopMetrics()
	if opts.pidFile != "" {
		if err := writePidFile(opts.pidFile, ident); err != nil {
			fmt.Fprintf(stderr, "Could not open the pid file %s for writing: %v\n", opts.pidFile, err)
		} else {
			defer func() {
				if err := os.Remove(opts.pidFile); err != nil {
					logger.Warn("could not remove pid file", zap.Error(err))
				}
			}()
		}
	}
	if ident != nil {
		if err := ident.assume(); err != nil {
			return fail(exOSErr, "failed to assume identity of user %s: %v", opts.user, err)
		}
	}

	sigc := make(chan os.Signal, 1)
	// SIGUSR1 is memcached's graceful stop; with -e it saves the items
	// for a warm restart.
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	defer signal.Stop(sigc)
	if r, ok := srv.(reloader); ok {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go reloadOnHangup(hup, r, opts.cfg, logger)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	if ready != nil {
		fmt.Fprintln(ready, "OK")
		ready.Close()
	}

	select {
	case sig := <-sigc:
		logger.Info("shutting down", zap.Stringer("signal", sig))
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			logger.Warn("shutdown", zap.Error(err))
		}
		select {
		case err := <-errc:
			if err != nil && !errors.Is(err, server.ErrServerClosed) {
				logger.Warn("serve", zap.Error(err))
			}
		case <-ctx.Done():
		}
		if sig == syscall.SIGUSR1 && pers != nil && cfg.Store.MemoryFile != "" {
			if err := pers.Persist(); err != nil {
				logger.Error("saving the memory file", zap.Error(err))
				return 1
			}
			logger.Info("saved memory file for restart", zap.String("file", cfg.Store.MemoryFile))
		}
		return 0
	case err := <-errc:
		if err == nil || errors.Is(err, server.ErrServerClosed) {
			return 0 // e.g. the "shutdown" command (-A)
		}
		logger.Error("serve", zap.Error(err))
		return 1
	}
}

// reportArgError prints a command-line error as memcached does and returns
// its exit status.
func reportArgError(stderr io.Writer, err error) int {
	var ge *getoptError
	if errors.As(err, &ge) {
		fmt.Fprintf(stderr, "%s\nIllegal argument \"?\"\n", ge.msg)
		return 1
	}
	var ee *exitError
	if errors.As(err, &ee) {
		// Some of memcached's failures print nothing (-o slab_sizes=).
		if ee.msg != "" {
			fmt.Fprintln(stderr, ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, err)
	return exUsage
}

// newLogger logs to w: errors only by default, warnings with -v, debug
// (every command) from -vv; -vvv is debug too, and the server reads
// Config.Verbosity for its internal tracing.
func newLogger(w io.Writer, verbosity int) *zap.Logger {
	level := zapcore.ErrorLevel
	switch {
	case verbosity >= 2:
		level = zapcore.DebugLevel
	case verbosity == 1:
		level = zapcore.WarnLevel
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core)
}

// identity is the user -u names.
type identity struct {
	uid, gid int
}

func lookupIdentity(name string) (*identity, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, err
	}
	return &identity{uid: uid, gid: gid}, nil
}

// assume drops root for the identity: supplementary groups, then group,
// then user, as memcached does.
func (id *identity) assume() error {
	if id.uid == 0 {
		return nil // "-u root": stay root
	}
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if err := syscall.Setgid(id.gid); err != nil {
		return err
	}
	return syscall.Setuid(id.uid)
}

// raiseCoreLimit is -r: the core file size limit as high as allowed.
func raiseCoreLimit() error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &rl); err != nil {
		return err
	}
	want := syscall.Rlimit{Cur: ^uint64(0), Max: ^uint64(0)}
	if syscall.Setrlimit(syscall.RLIMIT_CORE, &want) != nil {
		want = syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
		_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &want)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &rl); err != nil {
		return err
	}
	if rl.Cur == 0 {
		return errors.New("core file limit is 0")
	}
	return nil
}

// writePidFile writes the pid through a temporary file and a rename, as
// memcached does, so readers never see a partial file. It is written before
// root is dropped and given to the -u user, who can then remove it on exit
// from a sticky directory such as /tmp.
func writePidFile(path string, owner *identity) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	if owner != nil && owner.uid != 0 {
		_ = os.Chown(tmp, owner.uid, owner.gid)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// daemonize is -d in the parent: re-execute this program detached (new
// session, stdio on /dev/null, stderr kept with -v as memcached keeps it)
// and exit 0 once the child reports that it listens, or after daemonWait.
// A child that fails to start reports its error, which is printed here.
func daemonize(args []string, verbose bool, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		exe = args[0]
	}
	if !filepath.IsAbs(exe) {
		if p, err := exec.LookPath(exe); err == nil {
			exe = p
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "failed to daemon() in order to daemonize: %v\n", err)
		return 1
	}
	defer r.Close()
	cmd := exec.Command(exe, args[1:]...)
	cmd.Env = append(os.Environ(), daemonEnv+"=1")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if verbose {
		if f, ok := stderr.(*os.File); ok {
			cmd.Stderr = f
		}
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		fmt.Fprintf(stderr, "failed to daemon() in order to daemonize: %v\n", err)
		return 1
	}
	w.Close()

	type status struct {
		line string
		err  error
	}
	sc := make(chan status, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		sc <- status{strings.TrimSpace(line), err}
	}()
	select {
	case st := <-sc:
		switch {
		case st.line == "OK":
			cmd.Process.Release()
			return 0
		case strings.HasPrefix(st.line, "ERR "):
			code, msg, _ := strings.Cut(strings.TrimPrefix(st.line, "ERR "), " ")
			fmt.Fprintln(stderr, strings.ReplaceAll(msg, "\\n", "\n"))
			_ = cmd.Wait()
			if n, err := strconv.Atoi(code); err == nil && n != 0 {
				return n
			}
			return 1
		}
		// The child closed the pipe without a word: it died.
		err := cmd.Wait()
		fmt.Fprintf(stderr, "gocached: daemon exited during startup: %v\n", err)
		return 1
	case <-time.After(daemonWait):
		cmd.Process.Release()
		return 0
	}
}
