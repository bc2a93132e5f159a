package ledger

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

const crashChildEnv = "COAPP_LEDGER_CRASH_CHILD"

// crashEntry is the entry a crash-test writer appends: its content follows
// from (round, writer, seq) alone, so a retry sends the very same entry.
func crashEntry(round, writer, seq int) Entry {
	name := fmt.Sprintf("crash/%d/%d/%d", round, writer, seq)
	return Entry{
		ID:      uuid.NewSHA1(uuid.NameSpaceURL, []byte(name)),
		Kind:    "test.crash/v1",
		Author:  fmt.Sprintf("writer-%d", writer),
		Time:    time.Date(2026, 1, 1, 0, 0, round, writer*1000+seq, time.UTC),
		Payload: []byte(strings.Repeat(name+";", 8)),
	}
}

// TestCrashChild is not a test on its own: TestCrashSafety runs the test
// binary with crashChildEnv set, and this function then appends under load
// and reports each acknowledged entry on stdout until it is killed.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		t.Skip("run by TestCrashSafety")
	}
	var dir string
	var round int
	if _, err := fmt.Sscanf(spec, "%d %s", &round, &dir); err != nil {
		t.Fatalf("bad %s=%q", crashChildEnv, spec)
	}
	cfg := testConfig(dir)
	cfg.Logger = nil
	l, err := Open(context.Background(), cfg)
	if err != nil {
		fmt.Printf("error open: %v\n", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	report := func(line string) {
		mu.Lock()
		os.Stdout.WriteString(line + "\n")
		mu.Unlock()
	}
	// Retry the previous round's first entries: whatever happened to them
	// before the kill, they must now be in the log exactly once.
	if round > 0 {
		for w := 0; w < 4; w++ {
			e := crashEntry(round-1, w, 0)
			rs, err := l.Append(context.Background(), e)
			if err != nil {
				report("error retry: " + err.Error())
				os.Exit(2)
			}
			report(fmt.Sprintf("ack %s %d", e.ID, rs[0].Index))
		}
	}
	report("ready")
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				batch := []Entry{crashEntry(round, w, seq*2), crashEntry(round, w, seq*2+1)}
				if seq == 0 {
					batch = batch[:1] // seq 0 alone, so the retry above matches
				}
				rs, err := l.Append(context.Background(), batch...)
				if err != nil {
					report("error append: " + err.Error())
					return
				}
				for i, r := range rs {
					report(fmt.Sprintf("ack %s %d", batch[i].ID, r.Index))
				}
			}
		}()
	}
	wg.Wait()
	os.Exit(3)
}

// TestCrashSafety kills a process that appends under load with SIGKILL at
// random moments, repeatedly. After each kill, every acknowledged entry must
// be in the log at the index its receipt gave, exactly once, and the whole
// log must verify.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	rounds := 6
	acked := map[uuid.UUID]uint64{}
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s", crashChildEnv, round, dir))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		killAt := time.Duration(100+rand.IntN(600)) * time.Millisecond
		var killTimer <-chan time.Time
		var ready bool
		thisRound := 0
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				switch {
				case line == "ready":
					ready = true
					killTimer = time.After(killAt)
				case strings.HasPrefix(line, "ack "):
					f := strings.Fields(line)
					id := uuid.MustParse(f[1])
					index, _ := strconv.ParseUint(f[2], 10, 64)
					if prev, ok := acked[id]; ok && prev != index {
						t.Fatalf("round %d: %s acknowledged at %d, earlier at %d", round, id, index, prev)
					}
					acked[id] = index
					thisRound++
				case strings.HasPrefix(line, "error"):
					t.Fatalf("round %d: child: %s", round, line)
				}
			case <-killTimer:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killTimer = nil
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("round %d: child silent for 60s", round)
			}
		}
		_ = cmd.Wait()
		if !ready {
			t.Fatalf("round %d: child never became ready", round)
		}
		checkAcked(t, dir, round, acked)
		t.Logf("round %d: killed after %v, %d acks this round, %d in all", round, killAt, thisRound, len(acked))
	}
}

func checkAcked(t *testing.T, dir string, round int, acked map[uuid.UUID]uint64) {
	t.Helper()
	l, err := Open(testContext(t), testConfig(dir))
	if err != nil {
		t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
	}
	defer closeLedger(t, l)
	if err := l.Verify(testContext(t)); err != nil {
		t.Fatalf("round %d: Verify after SIGKILL: %v", round, err)
	}
	mustRead(t, l, Stale, func(v *View) error {
		for id, index := range acked {
			_, r, err := v.ByID(id)
			if err != nil {
				t.Fatalf("round %d: acknowledged %s lost: %v", round, id, err)
			}
			if r.Index != index {
				t.Fatalf("round %d: acknowledged %s at %d, found at %d", round, id, index, r.Index)
			}
		}
		return nil
	})
}
