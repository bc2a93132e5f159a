package raftbadger

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkStoreLogs measures one synced StoreLogs call per operation, for
// batches of logs of a given size, and reports MB/s.
func BenchmarkStoreLogs(b *testing.B) {
	for _, shape := range []struct{ logs, size int }{{1, 300}, {64, 300}, {1, 64 << 10}, {4, 64 << 10}} {
		b.Run(fmt.Sprintf("logs=%d/size=%d", shape.logs, shape.size), func(b *testing.B) {
			s, err := Open(b.TempDir(), Config{})
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
