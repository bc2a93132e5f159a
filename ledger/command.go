package ledger

import (
	"encoding/binary"
)

// A Raft command carries the entries of one or more Append calls (groups).
// Each group is applied atomically: all of its entries, or none when one of
// them conflicts. The encoding:
//
//	type (1) = cmdAppend | uvarint groups |
//	  per group: uvarint entries | per entry: uvarint len | canonical encoding
const cmdAppend byte = 1

// commandBuilder accumulates groups into one command.
type commandBuilder struct {
	buf    []byte
	groups int
}

func (c *commandBuilder) reset() {
	c.buf = c.buf[:0]
	c.groups = 0
}

func (c *commandBuilder) add(encs [][]byte) {
	c.buf = binary.AppendUvarint(c.buf, uint64(len(encs)))
	for _, e := range encs {
		c.buf = binary.AppendUvarint(c.buf, uint64(len(e)))
		c.buf = append(c.buf, e...)
	}
	c.groups++
}

// bytes returns the finished command, a fresh slice Raft may keep.
func (c *commandBuilder) bytes() []byte {
	out := make([]byte, 0, 1+binary.MaxVarintLen64+len(c.buf))
	out = append(out, cmdAppend)
	out = binary.AppendUvarint(out, uint64(c.groups))
	return append(out, c.buf...)
}

// decodeCommand splits a command into groups of entry encodings, aliasing
// data. It returns false when data is not a well-formed command.
func decodeCommand(data []byte) ([][][]byte, bool) {
	if len(data) < 2 || data[0] != cmdAppend {
		return nil, false
	}
	rest := data[1:]
	n, k, ok := readUvarint(rest)
	if !ok || n == 0 || n > uint64(len(rest)) {
		return nil, false
	}
	rest = rest[k:]
	groups := make([][][]byte, 0, n)
	for g := uint64(0); g < n; g++ {
		m, k, ok := readUvarint(rest)
		if !ok || m == 0 || m > uint64(len(rest)) {
			return nil, false
		}
		rest = rest[k:]
		encs := make([][]byte, 0, m)
		for i := uint64(0); i < m; i++ {
			var enc []byte
			var ok bool
			if enc, rest, ok = readField(rest, len(rest)); !ok {
				return nil, false
			}
			encs = append(encs, enc)
		}
		groups = append(groups, encs)
	}
	if len(rest) != 0 {
		return nil, false
	}
	return groups, true
}
