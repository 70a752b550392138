//go:build !linux

package slab

import (
	"errors"
	"os"
)

var errNoMmap = errors.New("memory files are only supported on Linux")

func mmapFile(f *os.File, size int) ([]byte, error) { return nil, errNoMmap }

func msync(b []byte) error { return errNoMmap }

func lockFile(f *os.File) error { return nil }

func munmap(b []byte) error { return errNoMmap }

func unlockFile(f *os.File) error { return nil }

const mmapAnonSupported = false

func mmapAnon(size int) ([]byte, error) { return nil, errNoMmap }

func adviseHuge(b []byte) {}

func discardPage(b []byte) {}
