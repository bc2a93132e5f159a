package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/google/uuid"

	"coapp.coop/ledger/merkle"
)

// The state database (dir/state) holds the FSM's state in four key spaces:
//
//	0x00                          -> meta: applied Raft index (8) | size (8) |
//	                                 root (32) | CRC-32C (4)
//	0x01 | index (8, big-endian)  -> entry: canonical encoding | index (8) |
//	                                 CRC-32C of both (4)
//	0x02 | id (16)                -> index (8) | leaf hash (32)
//	0x03 | level (1) | index (8)  -> hash of the perfect subtree of 2^level
//	                                 leaves starting at index<<level (level >= 1)
//
// Meta is rewritten in the same Badger transaction as the entries of every
// applied batch, so the applied index always describes the state beside it.
// Leaf hashes (level 0) are not stored: they are recomputed from entries.
const (
	keyMeta     byte = 0x00
	prefixEntry byte = 0x01
	prefixID    byte = 0x02
	prefixNode  byte = 0x03
)

func entryKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixEntry
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func idKey(id uuid.UUID) []byte {
	k := make([]byte, 17)
	k[0] = prefixID
	copy(k[1:], id[:])
	return k
}

func nodeKey(level uint8, index uint64) []byte {
	k := make([]byte, 10)
	k[0] = prefixNode
	k[1] = level
	binary.BigEndian.PutUint64(k[2:], index)
	return k
}

// meta describes the state: the last Raft index applied, and the log's size
// and root after it.
type meta struct {
	Applied uint64
	Size    uint64
	Root    merkle.Hash
}

func (m meta) encode() []byte {
	b := make([]byte, 0, 8+8+merkle.Size+4)
	b = binary.BigEndian.AppendUint64(b, m.Applied)
	b = binary.BigEndian.AppendUint64(b, m.Size)
	b = append(b, m.Root[:]...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeMeta(v []byte) (meta, error) {
	var m meta
	if len(v) != 8+8+merkle.Size+4 {
		return m, corrupt("meta record has %d bytes", len(v))
	}
	if crc32.Checksum(v[:len(v)-4], castagnoli) != binary.BigEndian.Uint32(v[len(v)-4:]) {
		return m, corrupt("meta record checksum mismatch")
	}
	m.Applied = binary.BigEndian.Uint64(v)
	m.Size = binary.BigEndian.Uint64(v[8:])
	copy(m.Root[:], v[16:])
	return m, nil
}

// reader reads the state through one Badger transaction, so that every read
// sees the same applied index.
type reader struct{ txn *badger.Txn }

// meta returns the state's meta record, or the empty state's when none has
// been written yet.
func (r reader) meta() (meta, error) {
	item, err := r.txn.Get([]byte{keyMeta})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return meta{Root: merkle.EmptyRoot()}, nil
	}
	if err != nil {
		return meta{}, storageErr(err)
	}
	var m meta
	err = item.Value(func(v []byte) error {
		var derr error
		m, derr = decodeMeta(v)
		return derr
	})
	return m, storageErr(err)
}

// entry returns the entry at index, its canonical encoding and its stored
// value, all copies owned by the caller. A missing entry is ErrNotFound.
func (r reader) entry(index uint64) (Entry, []byte, error) {
	item, err := r.txn.Get(entryKey(index))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Entry{}, nil, ErrNotFound
	}
	if err != nil {
		return Entry{}, nil, storageErr(err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return Entry{}, nil, storageErr(err)
	}
	return openEntry(index, v)
}

// lookupID returns the index and leaf hash recorded for id, or ok false.
func (r reader) lookupID(id uuid.UUID) (index uint64, leaf merkle.Hash, ok bool, err error) {
	item, err := r.txn.Get(idKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, leaf, false, nil
	}
	if err != nil {
		return 0, leaf, false, storageErr(err)
	}
	err = item.Value(func(v []byte) error {
		if len(v) != 8+merkle.Size {
			return corrupt("id index record for %s has %d bytes", id, len(v))
		}
		index = binary.BigEndian.Uint64(v)
		copy(leaf[:], v[8:])
		return nil
	})
	return index, leaf, err == nil, storageErr(err)
}

// Node implements merkle.NodeSource over the stored state.
func (r reader) Node(level uint8, index uint64) (merkle.Hash, error) {
	if level == 0 {
		_, enc, err := r.entry(index)
		if errors.Is(err, ErrNotFound) {
			return merkle.Hash{}, corruptAt(index, "entry missing from the tree")
		}
		if err != nil {
			return merkle.Hash{}, err
		}
		return merkle.LeafHash(enc), nil
	}
	var h merkle.Hash
	item, err := r.txn.Get(nodeKey(level, index))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return h, corruptAt(index<<level, "tree node %d/%d missing", level, index)
	}
	if err != nil {
		return h, storageErr(err)
	}
	err = item.Value(func(v []byte) error {
		if len(v) != merkle.Size {
			return corruptAt(index<<level, "tree node %d/%d has %d bytes", level, index, len(v))
		}
		copy(h[:], v)
		return nil
	})
	return h, storageErr(err)
}

// storageErr translates Badger's errors at the package boundary; our own
// typed errors pass through.
func storageErr(err error) error {
	var ce *CorruptionError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce), errors.Is(err, ErrNotFound):
		return err
	case errors.Is(err, badger.ErrDBClosed):
		return ErrClosed
	case errors.Is(err, badger.ErrKeyNotFound):
		return ErrNotFound
	default:
		if isChecksumErr(err) {
			return corrupt("storage checksum: %v", err)
		}
		return fmt.Errorf("ledger: storage: %w", err)
	}
}

// isChecksumErr recognises Badger's checksum failures. Badger flattens the
// errors it wraps into text (y.Wrapf), so at this boundary only the text is
// left to test.
func isChecksumErr(err error) bool {
	return strings.Contains(err.Error(), y.ErrChecksumMismatch.Error())
}

// countKeys counts the keys in one key space, reading keys only.
func (r reader) countKeys(prefix byte) (uint64, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte{prefix}
	it := r.txn.NewIterator(opts)
	defer it.Close()
	var n uint64
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n, nil
}
