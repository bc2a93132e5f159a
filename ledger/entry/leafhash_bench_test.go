package entry

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/ledger/merkle"
)

func BenchmarkLeafHash(b *testing.B) {
	e := Entry{ID: uuid.New(), Kind: "coapp.record/v1", Author: "coop-a", Time: time.Now(), Payload: make([]byte, 400)}
	b.Run("streamed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = e.LeafHash()
		}
	})
	b.Run("encoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = merkle.LeafHash(e.Encode())
		}
	})
}
