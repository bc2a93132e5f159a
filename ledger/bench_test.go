package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/google/uuid"
	"github.com/hashicorp/raft"

	"coapp.coop/internal/logging"
	"coapp.coop/internal/raftfloor"
)

// The benchmarks compare the ledger with the floors of its own
// dependencies, measured in the same run on the same machine:
//
//   - BenchmarkAppend/callers=256/batch=1 against BenchmarkFloorRaftApply:
//     raw hashicorp/raft Apply of one 300-byte record per Apply, with a
//     trivial FSM, on the same Raft log store and transport, with Raft's
//     default settings ("defaults") and with the ledger's ("tuned":
//     MaxAppendEntries 256, BatchApplyCh);
//   - BenchmarkAppend/callers=16/batch=100 against
//     BenchmarkFloorBadgerWriteBatch: raw Badger WriteBatch with SyncWrites
//     of the same records, 16 writers of 100 records each.
//
// Each reports records/s. An Append benchmark also reports its ratio to
// each floor measured earlier in the same process: x_raft and x_raft_tuned,
// or x_badger. Run the floors first, in one command:
//
//	go test -run XXX -bench 'Floor|Append' -benchtime 400000x ./ledger

const benchRecordSize = 300

var floors sync.Map // floor name -> records/s

// reportRate reports records/s; a floor records it under name, an Append
// benchmark reports its ratio to each floor named in ratios.
func reportRate(b *testing.B, records int64, name string, ratios ...string) {
	rate := float64(records) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(0, "ns/op")
	if name != "" {
		floors.Store(name, rate)
	}
	for _, r := range ratios {
		if f, ok := floors.Load(r); ok {
			b.ReportMetric(rate/f.(float64), "x_"+r)
		}
	}
}

func benchPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte('a' + i%26)
	}
	return p
}

// benchEntry returns an entry whose canonical encoding is about
// benchRecordSize bytes.
func benchEntry(seq uint64) Entry {
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[8:], seq)
	id[6] = 0x70
	return Entry{
		ID:      id,
		Kind:    "bench/v1",
		Author:  "coop-a",
		Time:    time.Unix(1_800_000_000, int64(seq)),
		Payload: benchPayload(benchRecordSize - 50),
	}
}

func benchConfig(dir string) Config {
	cfg := DefaultConfig(dir)
	cfg.BindAddr = "127.0.0.1:0"
	cfg.HeartbeatTimeout = 200 * time.Millisecond
	cfg.ElectionTimeout = 200 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	return cfg
}

// runCallers runs callers goroutines that together perform ops operations,
// each handing fn the operation's sequence number. It reports the median
// and 99th percentile latency of one operation.
func runCallers(b *testing.B, callers int, ops int, fn func(seq uint64) error) {
	lat := make([]time.Duration, ops)
	defer func() {
		if len(lat) < 100 {
			return
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50_us")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99_us")
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1) - 1
				if n >= int64(ops) {
					return
				}
				start := time.Now()
				if err := fn(uint64(n)); err != nil {
					failed.Store(err)
					return
				}
				lat[n] = time.Since(start)
			}
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
}

func BenchmarkFloorRaftApply(b *testing.B) {
	for _, floor := range []struct {
		name, sub string
		tuned     bool
	}{{"raft", "callers=256/defaults", false}, {"raft_tuned", "callers=256", true}} {
		b.Run(floor.sub, func(b *testing.B) {
			c, err := raftfloor.Start(context.Background(), b.TempDir(), raftfloor.Options{Nodes: 1, Tuned: floor.tuned})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			cmd := benchPayload(benchRecordSize)
			b.ResetTimer()
			runCallers(b, 256, b.N, func(uint64) error { return c.Apply(cmd) })
			b.StopTimer()
			reportRate(b, int64(b.N), floor.name)
		})
	}
}

func BenchmarkFloorBadgerWriteBatch(b *testing.B) {
	b.Run("callers=16/batch=100", func(b *testing.B) {
		cfg := benchConfig(b.TempDir())
		db, err := badger.Open(badger.DefaultOptions(filepath.Join(cfg.Dir, "floor")).
			WithSyncWrites(true).WithLogger(nil).WithCompression(options.None).
			WithMemTableSize(cfg.MemTableSize).WithNumMemtables(3).WithDetectConflicts(false).
			WithMetricsEnabled(false))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		val := benchPayload(benchRecordSize)
		b.ResetTimer()
		runCallers(b, 16, (b.N+99)/100, func(seq uint64) error {
			wb := db.NewWriteBatch()
			defer wb.Cancel()
			for i := uint64(0); i < 100; i++ {
				var k [16]byte
				binary.BigEndian.PutUint64(k[:], seq)
				binary.BigEndian.PutUint64(k[8:], i)
				if err := wb.Set(k[:], val); err != nil {
					return err
				}
			}
			return wb.Flush()
		})
		b.StopTimer()
		reportRate(b, int64((b.N+99)/100*100), "badger")
	})
}

func BenchmarkAppend(b *testing.B) {
	for _, shape := range []struct {
		callers, batch int
		floors         []string
	}{{256, 1, []string{"raft", "raft_tuned"}}, {16, 100, []string{"badger"}}} {
		name := fmt.Sprintf("callers=%d/batch=%d", shape.callers, shape.batch)
		b.Run(name, func(b *testing.B) {
			l, err := Open(context.Background(), benchConfig(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(context.Background())
			calls := (b.N + shape.batch - 1) / shape.batch
			b.ResetTimer()
			runCallers(b, shape.callers, calls, func(seq uint64) error {
				batch := make([]Entry, shape.batch)
				for i := range batch {
					batch[i] = benchEntry(seq*uint64(shape.batch) + uint64(i))
				}
				_, err := l.Append(context.Background(), batch...)
				return err
			})
			b.StopTimer()
			reportRate(b, int64(calls*shape.batch), "", shape.floors...)
		})
	}
}

// BenchmarkFSMApply measures the state machine alone: ApplyBatch of
// commands of 128 one-record calls, as group commit makes them under load.
func BenchmarkFSMApply(b *testing.B) {
	cfg := benchConfig(b.TempDir())
	cfg.setDefaults()
	db, err := openState(&cfg, logging.Discard(nil))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	f, err := newFSM(db, logging.Discard(nil), cfg.txnBudget())
	if err != nil {
		b.Fatal(err)
	}
	const perCmd = 128
	var seq uint64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		var cb commandBuilder
		for j := 0; j < perCmd; j++ {
			cb.add(group{encs: [][]byte{benchEntry(seq).Encode()}})
			seq++
		}
		l := &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: cb.bytes()}
		b.StartTimer()
		resp := f.ApplyBatch([]*raft.Log{l})
		if _, ok := resp[0].([]groupResult); !ok {
			b.Fatalf("apply: %v", resp[0])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(seq), "ns/record")
}
