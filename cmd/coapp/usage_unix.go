//go:build unix

package main

import (
	"syscall"
	"time"
)

// processUsage returns the CPU time the process has used, in user and
// system mode, and its minor page faults; ok is false where the system
// does not say.
func processUsage() (user, system time.Duration, faults int64, ok bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0, 0, false
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), int64(ru.Minflt), true
}
