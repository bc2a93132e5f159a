package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
)

// testConfig returns a config for a fast single-node ledger in dir, on a
// free loopback port.
func testConfig(dir string) Config {
	return Config{
		Dir:                dir,
		BindAddr:           "127.0.0.1:0",
		HeartbeatTimeout:   100 * time.Millisecond,
		ElectionTimeout:    100 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		MemTableSize:       16 << 20,
		BlockCacheSize:     8 << 20,
		MaxBatchBytes:      256 << 10,
		MaxEntryBytes:      64 << 10,
		PurgeDelay:         20 * time.Millisecond,
		Logger:             testLogger(),
	}
}

// testLogger logs to stderr when COAPP_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("COAPP_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// mustOpen opens a ledger with cfg and registers a cleanup that verifies the
// whole log and closes it.
func mustOpen(tb testing.TB, cfg Config) *Ledger {
	tb.Helper()
	l, err := Open(testContext(tb), cfg)
	if err != nil {
		tb.Fatalf("Open(%s): %v", cfg.Dir, err)
	}
	tb.Cleanup(func() {
		if !l.closed.Load() {
			if err := l.Verify(context.Background()); err != nil {
				tb.Errorf("Verify at cleanup: %v", err)
			}
		}
		if err := l.Close(context.Background()); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return l
}

func newEntry(i int) Entry {
	return Entry{
		ID:      uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("entry-%d", i))),
		Kind:    "test.record/v1",
		Author:  "coop-a",
		Time:    time.Date(2026, 11, 24, 12, 0, 0, i, time.UTC),
		Payload: []byte(fmt.Sprintf("payload %d", i)),
	}
}

func mustAppend(tb testing.TB, l *Ledger, entries ...Entry) []Receipt {
	tb.Helper()
	rs, err := l.Append(testContext(tb), entries...)
	if err != nil {
		tb.Fatalf("Append(%d entries): %v", len(entries), err)
	}
	if len(rs) != len(entries) {
		tb.Fatalf("Append(%d entries) returned %d receipts", len(entries), len(rs))
	}
	return rs
}

func mustRead(tb testing.TB, l *Ledger, c Consistency, fn func(*View) error) {
	tb.Helper()
	if err := l.Read(testContext(tb), c, fn); err != nil {
		tb.Fatalf("Read(%v): %v", c, err)
	}
}

func sizeRoot(tb testing.TB, l *Ledger) (size uint64, root string) {
	tb.Helper()
	mustRead(tb, l, Stale, func(v *View) error {
		size, root = v.Size(), v.Root().String()
		return nil
	})
	return size, root
}
