package raftbadger

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkStoreLogs measures one synced StoreLogs call per operation, for
// batches of logs of a given size, and reports MB/s.
func BenchmarkStoreLogs(b *testing.B) {
	for _, shape := range []struct {
		logs, size int
		mem        int64
	}{{1, 300, 64 << 20}, {1, 300, 8 << 20}, {1, 40 << 10, 64 << 20}, {1, 40 << 10, 8 << 20}, {64, 300, 64 << 20}} {
		b.Run(fmt.Sprintf("logs=%d/size=%d/memtable=%dMiB", shape.logs, shape.size, shape.mem>>20), func(b *testing.B) {
			s, err := Open(b.TempDir(), Config{MemTableSize: shape.mem})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, shape.size)
			batch := make([]*raft.Log, shape.logs)
			next := uint64(1)
			b.SetBytes(int64(shape.logs * shape.size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range batch {
					batch[j] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: data}
					next++
				}
				if err := s.StoreLogs(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
