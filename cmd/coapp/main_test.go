package main

import (
	"runtime/debug"
	"testing"
)

// TestGCPercent: the node program lowers the garbage collector's target
// unless the environment sets GOGC.
func TestGCPercent(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	applyGCPercent(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("without GOGC: target %d, want %d", got, gcPercent)
	}
	applyGCPercent(func(k string) string { return map[string]string{"GOGC": "80"}[k] })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=80 in the environment: target changed to %d", got)
	}
}
