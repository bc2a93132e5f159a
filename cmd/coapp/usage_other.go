//go:build !unix

package main

import "time"

// processUsage is not measured on this system.
func processUsage() (user, system time.Duration, faults int64, ok bool) { return 0, 0, 0, false }
