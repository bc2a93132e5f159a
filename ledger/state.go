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

	"coapp.coop/ledger/entry"
	"coapp.coop/ledger/merkle"
)

// The state database (Dir/state) holds the FSM's state in four key spaces:
//
//	0x00                         -> meta: applied Raft index (8) | size (8) |
//	                                root (32) | CRC-32C (4)
//	0x01 | first index (8, BE)   -> chunk: entries first .. first+n-1
//	0x02 | id (16)               -> index (8)
//	0x03 | level (1) | index (8) -> hash of the perfect subtree of 2^level
//	                                leaves starting at leaf index<<level,
//	                                for level >= nodeMinLevel
//	0x04 | name                  -> a key store value (see keys.go), or
//	                                empty: a destroyed key's tombstone
//	0x06                         -> the Raft index of the last Destroy (8)
//
// A chunk holds up to chunkMax consecutive entries written by one apply:
//
//	version (1) | first index (8) | uvarint n | n x (uvarint len | entry) |
//	CRC-32C of all the preceding bytes (4)
//
// Entries are stored by chunks rather than one key each, and only the upper
// levels of the tree are stored (lower ones are rehashed from the entries
// when a proof needs them), because every Badger key costs a memtable insert
// and a table write: the state takes about one key per entry, its id.
//
// Meta is rewritten in the same Badger transaction as the entries of every
// applied batch, so the applied index always describes the state beside it.
const (
	keyMeta     byte = 0x00
	prefixChunk byte = 0x01
	prefixID    byte = 0x02
	prefixNode  byte = 0x03
	prefixKey   byte = 0x04
	keyDestroy  byte = 0x06 // the Raft index of the last Destroy applied (8)

	// Node-local bookkeeping of the purge of destroyed keys, never in a
	// snapshot or a backup: a marker per key destroyed while it held a
	// value, written by the Destroy's apply (purge index | name ->
	// fingerprint) and removed once this node verified that its files no
	// longer hold the value; and the keys a purge must write back after it
	// dropped a name that prefixes theirs (name -> value).
	prefixPurge byte = 0x07
	prefixKeep  byte = 0x08

	chunkFormatV1 byte = 1

	// chunkMax bounds the entries of a chunk, and so what one read of a
	// single entry decodes.
	chunkMax = 64

	// nodeMinLevel is the lowest tree level stored: a subtree below it
	// (at most 2^(nodeMinLevel-1) leaves) is rehashed from its entries.
	nodeMinLevel = 4
)

func chunkKey(first uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixChunk
	binary.BigEndian.PutUint64(k[1:], first)
	return k
}

func idKey(id uuid.UUID) []byte {
	k := make([]byte, 17)
	k[0] = prefixID
	copy(k[1:], id[:])
	return k
}

func storeKey(prefix byte, name []byte) []byte {
	return append([]byte{prefix}, name...)
}

func purgeKey(index uint64, name []byte) []byte {
	k := make([]byte, 9, 9+len(name))
	k[0] = prefixPurge
	binary.BigEndian.PutUint64(k[1:], index)
	return append(k, name...)
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

const metaLen = 8 + 8 + merkle.Size + 4

func (m meta) encode() []byte {
	b := make([]byte, 0, metaLen)
	b = binary.BigEndian.AppendUint64(b, m.Applied)
	b = binary.BigEndian.AppendUint64(b, m.Size)
	b = append(b, m.Root[:]...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeMeta(v []byte) (meta, error) {
	var m meta
	if len(v) != metaLen {
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

// encodeChunk returns the stored form of the entries first .. first+len-1,
// given as canonical encodings.
func encodeChunk(first uint64, encs [][]byte) []byte {
	n := 1 + 8 + binary.MaxVarintLen32 + 4
	for _, e := range encs {
		n += binary.MaxVarintLen32 + len(e)
	}
	b := make([]byte, 0, n)
	b = append(b, chunkFormatV1)
	b = binary.BigEndian.AppendUint64(b, first)
	b = binary.AppendUvarint(b, uint64(len(encs)))
	for _, e := range encs {
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// chunk is a decoded chunk: the canonical encodings of entries first ...
type chunk struct {
	first uint64
	encs  [][]byte
}

func (c *chunk) holds(index uint64) bool {
	return c != nil && index >= c.first && index-c.first < uint64(len(c.encs))
}

// decodeChunk checks and splits a stored chunk found under key first. The
// encodings alias v.
func decodeChunk(first uint64, v []byte) (*chunk, error) {
	if len(v) < 1+8+1+4 {
		return nil, corruptAt(first, "stored chunk too short")
	}
	body := v[:len(v)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(v[len(v)-4:]) {
		return nil, corruptAt(first, "chunk checksum mismatch")
	}
	if body[0] != chunkFormatV1 {
		return nil, corruptAt(first, "unknown chunk format %d", body[0])
	}
	if at := binary.BigEndian.Uint64(body[1:]); at != first {
		return nil, corruptAt(first, "holds the chunk of index %d", at)
	}
	n, k, ok := readUvarint(body[9:])
	if !ok || n == 0 || n > chunkMax {
		return nil, corruptAt(first, "bad chunk length")
	}
	rest := body[9+k:]
	c := &chunk{first: first, encs: make([][]byte, 0, n)}
	for i := uint64(0); i < n; i++ {
		var enc []byte
		if enc, rest, ok = readField(rest, len(rest)); !ok {
			return nil, corruptAt(first+i, "bad entry length in chunk")
		}
		c.encs = append(c.encs, enc)
	}
	if len(rest) != 0 {
		return nil, corruptAt(first, "trailing bytes in chunk")
	}
	return c, nil
}

// reader reads the state through one Badger transaction, so that every read
// sees the same applied index. It keeps the last chunk it decoded, so that
// reading neighbouring entries or rehashing a subtree decodes each chunk
// once. It is not safe for concurrent use; close releases its iterator.
type reader struct {
	txn  *badger.Txn
	rw   bool // txn is a read-write transaction: one iterator at a time
	it   *badger.Iterator
	last *chunk
	// fwd walks the chunks forwards, for scans: stepping to the next
	// chunk is far cheaper than seeking it (a reverse seek merges every
	// level's tables). Read-only transactions only.
	fwd *badger.Iterator
}

func newReader(txn *badger.Txn, rw bool) *reader { return &reader{txn: txn, rw: rw} }

func (r *reader) close() {
	if r.it != nil {
		r.it.Close()
		r.it = nil
	}
	if r.fwd != nil {
		r.fwd.Close()
		r.fwd = nil
	}
}

// meta returns the state's meta record, or the empty state's when none has
// been written yet.
func (r *reader) meta() (meta, error) {
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

// chunkAt returns the chunk holding index, or ErrNotFound.
func (r *reader) chunkAt(index uint64) (*chunk, error) {
	if r.last.holds(index) {
		return r.last, nil
	}
	if !r.rw && r.last != nil && index == r.last.first+uint64(len(r.last.encs)) {
		if c, err := r.nextChunk(index); c != nil || err != nil {
			return c, err
		}
	}
	it := r.it
	if it == nil {
		opts := badger.DefaultIteratorOptions
		opts.Reverse = true
		opts.PrefetchValues = false
		opts.Prefix = []byte{prefixChunk}
		it = r.txn.NewIterator(opts)
		if r.rw {
			defer it.Close()
		} else {
			r.it = it
		}
	}
	it.Seek(chunkKey(index))
	if !it.Valid() {
		return nil, ErrNotFound
	}
	item := it.Item()
	first := binary.BigEndian.Uint64(item.Key()[1:])
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, storageErr(err)
	}
	c, err := decodeChunk(first, v)
	if err != nil {
		return nil, err
	}
	if !c.holds(index) {
		return nil, ErrNotFound
	}
	r.last = c
	return c, nil
}

// nextChunk returns the chunk that starts at index, the one after the
// last, stepping the forward iterator; nil when it is not found that way.
func (r *reader) nextChunk(index uint64) (*chunk, error) {
	at := func() bool {
		return r.fwd.Valid() && binary.BigEndian.Uint64(r.fwd.Item().Key()[1:]) == index
	}
	if r.fwd == nil {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte{prefixChunk}
		r.fwd = r.txn.NewIterator(opts)
		r.fwd.Seek(chunkKey(index))
	} else if r.fwd.Next(); !at() {
		r.fwd.Seek(chunkKey(index))
	}
	if !at() {
		return nil, nil
	}
	v, err := r.fwd.Item().ValueCopy(nil)
	if err != nil {
		return nil, storageErr(err)
	}
	c, err := decodeChunk(index, v)
	if err != nil {
		return nil, err
	}
	r.last = c
	return c, nil
}

// entry returns the entry at index and its canonical encoding, both owned
// by the caller until the next read. A missing entry is ErrNotFound.
func (r *reader) entry(index uint64) (Entry, []byte, error) {
	c, err := r.chunkAt(index)
	if err != nil {
		return Entry{}, nil, err
	}
	enc := c.encs[index-c.first]
	e, ok := entry.Decode(enc)
	if !ok {
		return Entry{}, nil, corruptAt(index, "entry does not decode")
	}
	e.Index = index
	return e, enc, nil
}

// lookupID returns the index recorded for id, or ok false.
func (r *reader) lookupID(id uuid.UUID) (index uint64, ok bool, err error) {
	item, err := r.txn.Get(idKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, storageErr(err)
	}
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return corrupt("id index record for %s has %d bytes", id, len(v))
		}
		index = binary.BigEndian.Uint64(v)
		return nil
	})
	return index, err == nil, storageErr(err)
}

// key returns a key store value, copied.
func (r *reader) key(name []byte) ([]byte, error) {
	item, err := r.txn.Get(storeKey(prefixKey, name))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, storageErr(err)
	}
	v, err := item.ValueCopy(nil)
	if err == nil && len(v) == 0 {
		return nil, ErrKeyDestroyed
	}
	return v, storageErr(err)
}

// Node implements merkle.NodeSource over the stored state: stored hashes
// for the upper levels, rehashed entries below them.
func (r *reader) Node(level uint8, index uint64) (merkle.Hash, error) {
	if level >= nodeMinLevel {
		return r.storedNode(level, index)
	}
	first := index << level
	var tree merkle.Tree
	for i := first; i < first+1<<level; i++ {
		_, enc, err := r.entry(i)
		if errors.Is(err, ErrNotFound) {
			return merkle.Hash{}, corruptAt(i, "entry missing from the tree")
		}
		if err != nil {
			return merkle.Hash{}, err
		}
		tree.Append(merkle.LeafHash(enc), nil)
	}
	return tree.Root(), nil
}

func (r *reader) storedNode(level uint8, index uint64) (merkle.Hash, error) {
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

// countKeys counts the keys in one key space, reading keys only.
func (r *reader) countKeys(prefix byte) uint64 {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte{prefix}
	it := r.txn.NewIterator(opts)
	defer it.Close()
	var n uint64
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n
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
