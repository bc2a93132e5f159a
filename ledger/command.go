package ledger

import (
	"crypto/sha256"
	"encoding/binary"
)

// A Raft command carries the groups of one or more Append calls, or names
// of keys to destroy. Each group is applied atomically: its key
// requirements and all of its entries, or nothing. The encodings:
//
//	cmdAppend:  type (1) | uvarint groups |
//	            per group: uvarint keys | per key: uvarint len | name |
//	                       flag (1: 0 check, 1 create) | sha-256 (32) |
//	                       [create: uvarint len | value] |
//	                       uvarint entries | per entry: uvarint len | encoding
//	cmdDestroy: type (1) | uvarint names | per name: uvarint len | name
const (
	cmdAppend  byte = 2
	cmdDestroy byte = 3
)

// group is one Append call inside a command.
type group struct {
	keys []KeyRequirement
	encs [][]byte
}

// commandBuilder accumulates groups into one command.
type commandBuilder struct {
	buf    []byte
	groups int
}

func (c *commandBuilder) reset() {
	c.buf = c.buf[:0]
	c.groups = 0
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func (c *commandBuilder) add(g group) {
	c.buf = binary.AppendUvarint(c.buf, uint64(len(g.keys)))
	for _, k := range g.keys {
		c.buf = appendBytes(c.buf, k.Name)
		if k.Create != nil {
			c.buf = append(c.buf, 1)
		} else {
			c.buf = append(c.buf, 0)
		}
		c.buf = append(c.buf, k.Hash[:]...)
		if k.Create != nil {
			c.buf = appendBytes(c.buf, k.Create)
		}
	}
	c.buf = binary.AppendUvarint(c.buf, uint64(len(g.encs)))
	for _, e := range g.encs {
		c.buf = appendBytes(c.buf, e)
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

// decodeCommand splits an append command into groups, aliasing data. It
// returns false when data is not a well-formed append command.
func decodeCommand(data []byte) ([]group, bool) {
	if len(data) < 2 || data[0] != cmdAppend {
		return nil, false
	}
	rest := data[1:]
	n, k, ok := readUvarint(rest)
	if !ok || n == 0 || n > uint64(len(rest)) {
		return nil, false
	}
	rest = rest[k:]
	groups := make([]group, 0, n)
	for g := uint64(0); g < n; g++ {
		var grp group
		nk, k, ok := readUvarint(rest)
		if !ok || nk > uint64(len(rest)) {
			return nil, false
		}
		rest = rest[k:]
		for i := uint64(0); i < nk; i++ {
			var kr KeyRequirement
			if kr.Name, rest, ok = readField(rest, maxKeyName); !ok || len(kr.Name) == 0 || len(rest) < 1+sha256.Size {
				return nil, false
			}
			create := rest[0]
			if create > 1 {
				return nil, false
			}
			copy(kr.Hash[:], rest[1:1+sha256.Size])
			rest = rest[1+sha256.Size:]
			if create == 1 {
				if kr.Create, rest, ok = readField(rest, maxKeyValue); !ok || len(kr.Create) == 0 {
					return nil, false
				}
			}
			grp.keys = append(grp.keys, kr)
		}
		m, k, ok := readUvarint(rest)
		if !ok || m > uint64(len(rest)) || (m == 0 && nk == 0) {
			return nil, false
		}
		rest = rest[k:]
		grp.encs = make([][]byte, 0, m)
		for i := uint64(0); i < m; i++ {
			var enc []byte
			if enc, rest, ok = readField(rest, len(rest)); !ok {
				return nil, false
			}
			grp.encs = append(grp.encs, enc)
		}
		groups = append(groups, grp)
	}
	if len(rest) != 0 {
		return nil, false
	}
	return groups, true
}

// encodeDestroy returns a command destroying the named keys.
func encodeDestroy(names [][]byte) []byte {
	out := []byte{cmdDestroy}
	out = binary.AppendUvarint(out, uint64(len(names)))
	for _, n := range names {
		out = appendBytes(out, n)
	}
	return out
}

// decodeDestroy parses a destroy command, aliasing data.
func decodeDestroy(data []byte) ([][]byte, bool) {
	if len(data) < 2 || data[0] != cmdDestroy {
		return nil, false
	}
	n, k, ok := readUvarint(data[1:])
	if !ok || n == 0 || n > uint64(len(data)) {
		return nil, false
	}
	rest := data[1+k:]
	names := make([][]byte, 0, n)
	for i := uint64(0); i < n; i++ {
		var name []byte
		if name, rest, ok = readField(rest, maxKeyName); !ok || len(name) == 0 {
			return nil, false
		}
		names = append(names, name)
	}
	return names, len(rest) == 0
}
