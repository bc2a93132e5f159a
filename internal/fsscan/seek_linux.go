//go:build linux

package fsscan

import (
	"os"
	"syscall"
)

const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE
)

// dataRegion returns the next data region at or after off: [start, end).
func dataRegion(f *os.File, off, size int64) (int64, int64, error) {
	start, err := syscall.Seek(int(f.Fd()), off, seekData)
	if err != nil {
		if err == syscall.ENXIO { // no data after off
			return size, size, nil
		}
		return off, size, nil // SEEK_DATA unsupported: read it all
	}
	end, err := syscall.Seek(int(f.Fd()), start, seekHole)
	if err != nil {
		return start, size, nil
	}
	return start, end, nil
}
