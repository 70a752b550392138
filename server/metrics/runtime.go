package metrics

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// writeRuntime writes the Go runtime's and the process's metrics under the
// names the Prometheus Go client's default collectors give them (go_*,
// process_*), so the usual dashboards read them unchanged.
func writeRuntime(w *writer) {
	var gc debug.GCStats
	gc.PauseQuantiles = make([]time.Duration, 5)
	debug.ReadGCStats(&gc)
	const gcHelp = "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles."
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		w.sample("go_gc_duration_seconds", gcHelp, "summary", gc.PauseQuantiles[i].Seconds(), "quantile", q)
	}
	w.w.WriteString("go_gc_duration_seconds_sum " + formatValue(gc.PauseTotal.Seconds()) + "\n")
	w.w.WriteString("go_gc_duration_seconds_count " + strconv.FormatInt(gc.NumGC, 10) + "\n")
	w.sample("go_goroutines", "Number of goroutines that currently exist.", gauge, float64(runtime.NumGoroutine()))
	threads, _ := runtime.ThreadCreateProfile(nil)
	w.sample("go_threads", "Number of OS threads created.", gauge, float64(threads))
	w.sample("go_info", "Information about the Go environment.", gauge, 1, "version", runtime.Version())
	w.sample("go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously.", gauge, float64(runtime.GOMAXPROCS(0)))

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, m := range []struct {
		name, help, typ string
		v               uint64
	}{
		{"alloc_bytes", "Number of bytes allocated in heap and currently in use.", gauge, ms.Alloc},
		{"alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already.", counter, ms.TotalAlloc},
		{"buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table.", gauge, ms.BuckHashSys},
		{"frees_total", "Total number of heap objects frees.", counter, ms.Frees},
		{"gc_sys_bytes", "Number of bytes used for garbage collection system metadata.", gauge, ms.GCSys},
		{"heap_alloc_bytes", "Number of heap bytes allocated and currently in use.", gauge, ms.HeapAlloc},
		{"heap_idle_bytes", "Number of heap bytes waiting to be used.", gauge, ms.HeapIdle},
		{"heap_inuse_bytes", "Number of heap bytes that are in use.", gauge, ms.HeapInuse},
		{"heap_objects", "Number of currently allocated objects.", gauge, ms.HeapObjects},
		{"heap_released_bytes", "Number of heap bytes released to OS.", gauge, ms.HeapReleased},
		{"heap_sys_bytes", "Number of heap bytes obtained from system.", gauge, ms.HeapSys},
		{"mallocs_total", "Total number of heap objects allocated.", counter, ms.Mallocs},
		{"mcache_inuse_bytes", "Number of bytes in use by mcache structures.", gauge, ms.MCacheInuse},
		{"mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system.", gauge, ms.MCacheSys},
		{"mspan_inuse_bytes", "Number of bytes in use by mspan structures.", gauge, ms.MSpanInuse},
		{"mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system.", gauge, ms.MSpanSys},
		{"next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", gauge, ms.NextGC},
		{"other_sys_bytes", "Number of bytes used for other system allocations.", gauge, ms.OtherSys},
		{"stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments.", gauge, ms.StackInuse},
		{"stack_sys_bytes", "Number of bytes obtained from system for stack allocator.", gauge, ms.StackSys},
		{"sys_bytes", "Number of bytes obtained from system.", gauge, ms.Sys},
	} {
		w.sample("go_memstats_"+m.name, m.help, m.typ, float64(m.v))
	}
	w.sample("go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", gauge, float64(ms.LastGC)/1e9)
	writeProcess(w)
}

// writeProcess writes the process_* metrics from /proc (Linux; elsewhere
// there are none, as with the Go client).
func writeProcess(w *writer) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3 of stat(5), so f[i] is field i+3.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 22 {
		return
	}
	field := func(n int) float64 { v, _ := strconv.ParseFloat(f[n-3], 64); return v }
	const ticks = 100 // USER_HZ, fixed at 100 on Linux's ABI
	w.sample("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", counter, (field(14)+field(15))/ticks)
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		w.sample("process_open_fds", "Number of open file descriptors.", gauge, float64(len(fds)))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		w.sample("process_max_fds", "Maximum number of open file descriptors.", gauge, float64(lim.Cur))
	}
	w.sample("process_virtual_memory_bytes", "Virtual memory size in bytes.", gauge, field(23))
	w.sample("process_resident_memory_bytes", "Resident memory size in bytes.", gauge, field(24)*float64(os.Getpagesize()))
	if boot := bootTime(); boot > 0 {
		w.sample("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", gauge, boot+field(22)/ticks)
	}
}

// bootTime is the system's boot time in Unix seconds (/proc/stat's btime),
// 0 if unknown.
func bootTime() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			t, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return t
		}
	}
	return 0
}
