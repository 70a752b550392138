//go:build !linux

package server

import "syscall"

// rawSocketIO is false where readSocket and sendSocket are not
// implemented: connections read and write through net.Conn and keep their
// buffers while they wait.
const rawSocketIO = false

func readSocket(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.ENOSYS }

func readSocketV(uintptr, []syscall.Iovec) (int, syscall.Errno) { return 0, syscall.ENOSYS }

func sendSocket(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.ENOSYS }

func sendBuffers(uintptr, []syscall.Iovec) (int, syscall.Errno) { return 0, syscall.ENOSYS }
