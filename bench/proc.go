package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// ClockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat; Linux
// reports 100 on every architecture (getconf CLK_TCK).
const ClockTicks = 100

// ProcSample is one reading of a process's CPU time and memory.
type ProcSample struct {
	UserTicks uint64 `json:"user_ticks"`
	SysTicks  uint64 `json:"sys_ticks"`
	RSS       uint64 `json:"rss_bytes"`
}

// ParseProcStat returns utime and stime (fields 14 and 15) of a
// /proc/PID/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func ParseProcStat(b []byte) (utime, stime uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("proc stat: no ')' in %q", clip(b))
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("proc stat: %d fields after comm", len(f))
	}
	u, err1 := strconv.ParseUint(string(f[14-3]), 10, 64)
	s, err2 := strconv.ParseUint(string(f[15-3]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("proc stat: bad utime/stime %q %q", f[11], f[12])
	}
	return u, s, nil
}

// ParseStatm returns the resident set size in pages (second field) of
// /proc/PID/statm.
func ParseStatm(b []byte) (uint64, error) {
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, fmt.Errorf("statm: %q", clip(b))
	}
	return strconv.ParseUint(string(f[1]), 10, 64)
}

// ReadProc samples pid under procRoot (normally "/proc").
func ReadProc(procRoot string, pid int) (ProcSample, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	st, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return ProcSample{}, err
	}
	u, s, err := ParseProcStat(st)
	if err != nil {
		return ProcSample{}, err
	}
	sm, err := os.ReadFile(filepath.Join(dir, "statm"))
	if err != nil {
		return ProcSample{}, err
	}
	pages, err := ParseStatm(sm)
	if err != nil {
		return ProcSample{}, err
	}
	return ProcSample{UserTicks: u, SysTicks: s, RSS: pages * uint64(os.Getpagesize())}, nil
}

// CPUUsage is the server CPU spent over a measured window.
type CPUUsage struct {
	UserSec   float64 `json:"user_s"`
	SysSec    float64 `json:"sys_s"`
	UserUsOp  float64 `json:"user_us_per_op"`
	SysUsOp   float64 `json:"sys_us_per_op"`
	TotalUsOp float64 `json:"total_us_per_op"`
}

// CPUPerOp turns two samples and an operation count into CPU per operation.
func CPUPerOp(before, after ProcSample, ops int64) CPUUsage {
	u := float64(after.UserTicks-before.UserTicks) / ClockTicks
	s := float64(after.SysTicks-before.SysTicks) / ClockTicks
	c := CPUUsage{UserSec: u, SysSec: s}
	if ops > 0 {
		c.UserUsOp = u * 1e6 / float64(ops)
		c.SysUsOp = s * 1e6 / float64(ops)
		c.TotalUsOp = c.UserUsOp + c.SysUsOp
	}
	return c
}
