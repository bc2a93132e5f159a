package ledger

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"
)

// FuzzDecodeEntry checks that the entry decoder never panics, and that what
// it accepts re-encodes to the same bytes (the encoding is canonical, so one
// entry has one leaf hash).
func FuzzDecodeEntry(f *testing.F) {
	for i := 0; i < 4; i++ {
		e := newEntry(i)
		f.Add(e.encode())
	}
	f.Add((&Entry{ID: uuid.Max, Kind: "k", Author: "a", Time: time.Unix(0, 0)}).encode())
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, ok := decodeEntry(b)
		if !ok {
			return
		}
		if got := e.encode(); !bytes.Equal(got, b) {
			t.Fatalf("decodeEntry accepted %x, which re-encodes to %x", b, got)
		}
	})
}

// FuzzOpenEntry checks that a stored value is either refused with
// ErrCorrupt or opens to an entry that seals back to the same value.
func FuzzOpenEntry(f *testing.F) {
	f.Add(uint64(3), sealEntry(3, newEntry(3).encode()))
	f.Add(uint64(0), []byte("short"))
	f.Fuzz(func(t *testing.T, index uint64, v []byte) {
		e, enc, err := openEntry(index, v)
		if err != nil {
			return
		}
		if !bytes.Equal(sealEntry(index, enc), v) || e.Index != index {
			t.Fatalf("openEntry(%d, %x) accepted a value that does not seal back", index, v)
		}
	})
}

// FuzzDecodeCommand checks that the command decoder never panics and that
// every group it accepts re-encodes to the same command.
func FuzzDecodeCommand(f *testing.F) {
	var cb commandBuilder
	cb.add([][]byte{newEntry(1).encode(), newEntry(2).encode()})
	cb.add([][]byte{newEntry(3).encode()})
	f.Add(cb.bytes())
	f.Add([]byte{cmdAppend, 0})
	f.Add([]byte{9})
	f.Fuzz(func(t *testing.T, b []byte) {
		groups, ok := decodeCommand(b)
		if !ok {
			return
		}
		var again commandBuilder
		for _, g := range groups {
			again.add(g)
		}
		if !bytes.Equal(again.bytes(), b) {
			t.Fatalf("decodeCommand accepted %x, which re-encodes to %x", b, again.bytes())
		}
	})
}
