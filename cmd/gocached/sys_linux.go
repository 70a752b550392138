package main

import "syscall"

// lockMemory is -k: mlockall(MCL_CURRENT|MCL_FUTURE).
func lockMemory() error {
	return syscall.Mlockall(syscall.MCL_CURRENT | syscall.MCL_FUTURE)
}
