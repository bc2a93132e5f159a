package ledger

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeChunk checks that a stored chunk is either refused with
// ErrCorrupt or decodes to entries that encode back to the same value.
func FuzzDecodeChunk(f *testing.F) {
	f.Add(uint64(3), encodeChunk(3, [][]byte{newEntry(3).Encode(), newEntry(4).Encode()}))
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
	cb.add(group{encs: [][]byte{newEntry(1).Encode(), newEntry(2).Encode()}})
	cb.add(group{keys: []KeyRequirement{NewKey([]byte("subject/1"), []byte("wrapped key")), ExistingKey([]byte("subject/2"), []byte("v"))}, encs: [][]byte{newEntry(3).Encode()}})
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
