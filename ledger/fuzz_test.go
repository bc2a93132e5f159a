package ledger

import (
	"bytes"
	"errors"
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

// FuzzDecodeChunk checks that a stored chunk is either refused with
// ErrCorrupt or decodes to entries that encode back to the same value.
func FuzzDecodeChunk(f *testing.F) {
	f.Add(uint64(3), encodeChunk(3, [][]byte{newEntry(3).encode(), newEntry(4).encode()}))
	f.Add(uint64(0), []byte("short"))
	f.Fuzz(func(t *testing.T, first uint64, v []byte) {
		c, err := decodeChunk(first, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeChunk error %v is not ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(encodeChunk(first, c.encs), v) {
			t.Fatalf("decodeChunk(%d, %x) accepted a value that does not encode back", first, v)
		}
	})
}

// FuzzDecodeCommand checks that the command decoder never panics and that
// every group it accepts re-encodes to the same command.
func FuzzDecodeCommand(f *testing.F) {
	var cb commandBuilder
	cb.add(group{encs: [][]byte{newEntry(1).encode(), newEntry(2).encode()}})
	cb.add(group{keys: []KeyRequirement{NewKey([]byte("subject/1"), []byte("wrapped key")), ExistingKey([]byte("subject/2"), []byte("v"))}, encs: [][]byte{newEntry(3).encode()}})
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
