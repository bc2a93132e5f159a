package ledger

import (
	"encoding/binary"
	"hash/crc32"
)

// Helpers of the stored values' and commands' encodings (state.go,
// command.go). An entry's own encoding is in package entry.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func readField(b []byte, max int) (field, rest []byte, ok bool) {
	n, k, ok := readUvarint(b)
	if !ok || n > uint64(len(b)-k) || n > uint64(max) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// readUvarint reads a minimally encoded uvarint: a longer encoding of the
// same number would give one value two encodings.
func readUvarint(b []byte) (n uint64, k int, ok bool) {
	n, k = binary.Uvarint(b)
	if k <= 0 || k != uvarintLen(n) {
		return 0, 0, false
	}
	return n, k, true
}

func uvarintLen(n uint64) int {
	k := 1
	for n >= 0x80 {
		n >>= 7
		k++
	}
	return k
}
