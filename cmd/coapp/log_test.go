package main

import (
	"bytes"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLogLevel: coapp node logs at --log-level and above. A node is
// bootstrapped, made ready and stopped at each level; its JSON log holds
// debug records at debug only, and info records (the bootstrap, the
// shutdown) at debug and info, not at warn.
func TestLogLevel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the coapp binary")
	}
	for _, c := range []struct {
		level       string
		debug, info bool
	}{
		{"debug", true, true},
		{"info", false, true},
		{"warn", false, false},
	} {
		p := newProc(t, "log-"+c.level, "--bootstrap", "--federation", "Logs", "--log-level", c.level)
		p.start()
		waitFor(t, "node ready", 30*time.Second, func() error { return readyz(p.url()) })
		p.signal(syscall.SIGTERM)
		<-p.exited
		log, err := os.ReadFile(p.logPath)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(log, []byte(`"level":"DEBUG"`)); got != c.debug {
			t.Errorf("--log-level %s: debug records %v, want %v", c.level, got, c.debug)
		}
		if got := bytes.Contains(log, []byte(`"level":"INFO","msg":"shutting down"`)); got != c.info {
			t.Errorf("--log-level %s: info records %v, want %v", c.level, got, c.info)
		}
		if !strings.Contains(string(log), "serving http://") {
			t.Errorf("--log-level %s: the node did not say where it serves:\n%s", c.level, log)
		}
	}
	for _, bad := range []string{"verbose", "", "-4"} {
		if _, _, err := runSplit(t, "node", "--log-level", bad); exitCode(err) != exitUsage {
			t.Errorf("node --log-level %q: %v, want a usage error", bad, err)
		}
	}
}
