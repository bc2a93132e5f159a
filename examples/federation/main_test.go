package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// freeBase finds six consecutive free loopback ports.
func freeBase(t *testing.T) int {
	t.Helper()
	for base := 17500; base < 40000; base += 17 {
		ok := true
		for p := base; p < base+6 && ok; p++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(p)))
			if err != nil {
				ok = false
				continue
			}
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no six free ports")
	return 0
}

func itoa(n int) string {
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// TestFederationExample runs the example and checks its story.
func TestFederationExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coapp and runs three processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, t.TempDir(), freeBase(t)); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"Started olive-growers with --bootstrap",
		"Started energy-coop with --join",
		"purchase -> entry",
		"with SIGKILL",
		"took a record",
		"the same as the others",
		"inclusion proof of the meter reading verifies: true",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
