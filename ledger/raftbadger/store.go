// Package raftbadger is a hashicorp/raft LogStore and StableStore on Badger.
//
// # Key layout
//
// One Badger database holds both stores, in two key spaces:
//
//	0x01 | index (8 bytes, big-endian)  -> a Raft log entry (see below)
//	0x02 | key                          -> a stable-store value
//
// A log entry is stored as: format version (1 byte), index, term (8 bytes
// each, big-endian), type (1 byte), AppendedAt (Unix nanoseconds, 8 bytes),
// data and extensions (each a uvarint length and its bytes), and a CRC-32C
// of all the preceding bytes (4 bytes). A value whose checksum or index does
// not match is reported as ErrCorrupt, never returned as a log.
//
// # Durability
//
// The database runs with SyncWrites: StoreLogs, DeleteRange and every stable
// store write return only after an fsync. StoreLogs writes all its entries in
// one transaction (more only when Badger's transaction limit forces a split,
// in order, each synced), so a batch costs one sync, not one per entry.
//
// # Contract notes
//
// hashicorp/raft treats a stable key as missing only when the error's text is
// exactly "not found"; Get and GetUint64 return such an error (ErrKeyNotFound).
// FirstIndex and LastIndex come from bounds kept in memory and re-read from
// the database after each deletion, so they never scan tombstones.
package raftbadger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/hashicorp/raft"

	"coapp.coop/internal/logging"
)

var (
	// ErrKeyNotFound is returned by Get and GetUint64 for a key never set.
	// Its text is exactly "not found", as hashicorp/raft requires.
	ErrKeyNotFound = errors.New("not found")

	// ErrCorrupt is returned when a stored value fails its checksum or does
	// not describe the entry it is stored under.
	ErrCorrupt = errors.New("raftbadger: corrupt value")

	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("raftbadger: store closed")
)

const (
	prefixLog    byte = 0x01
	prefixStable byte = 0x02

	logFormatV1 byte = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Config tunes a Store. The zero value is usable: every zero field takes the
// default given in its comment.
type Config struct {
	// Logger receives Badger's messages. Default: discard.
	Logger *slog.Logger

	// MemTableSize is the size in bytes of each Badger memtable, which also
	// bounds one transaction (about 15% of it). Default: 64 MiB.
	MemTableSize int64

	// BlockCacheSize is the size in bytes of Badger's block cache. Reads are
	// mostly served by raft's LogCache in front of the store. Default: 16 MiB.
	BlockCacheSize int64

	// GCInterval is how often value-log garbage collection runs. Default: 5m.
	GCInterval time.Duration
}

// Store is a raft.LogStore and raft.StableStore on one Badger database. It is
// safe for concurrent use.
type Store struct {
	db *badger.DB

	mu          sync.Mutex // guards first and last
	first, last uint64

	// writeMu serialises writes, so that a Purge (which blocks Badger's
	// writes while it rewrites files) makes other writers wait rather than
	// fail.
	writeMu sync.Mutex

	stop   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.StableStore       = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
)

// IsMonotonic reports that the store keeps no gap between its first and
// last index: after installing a snapshot, Raft removes every log before
// it (hashicorp/raft's MonotonicLogStore), so no log that predates the
// snapshot stays behind, key material included.
func (s *Store) IsMonotonic() bool { return true }

// Open opens (creating if needed) a store in dir.
func Open(dir string, cfg Config) (*Store, error) {
	if cfg.MemTableSize == 0 {
		cfg.MemTableSize = 64 << 20
	}
	if cfg.BlockCacheSize == 0 {
		cfg.BlockCacheSize = 16 << 20
	}
	if cfg.GCInterval == 0 {
		cfg.GCInterval = 5 * time.Minute
	}
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(logging.Badger(logging.Discard(cfg.Logger))).
		WithMemTableSize(cfg.MemTableSize).
		WithNumMemtables(3).
		WithBlockCacheSize(cfg.BlockCacheSize).
		WithCompression(options.None).
		WithDetectConflicts(false).
		WithNumCompactors(2).
		WithMetricsEnabled(false).
		WithValueThreshold(valueThreshold(cfg.MemTableSize)).
		// Only commands of 1 MiB or more reach the value log. Badger maps
		// each file at its full size (1 GiB by default), sparse on disk,
		// and never collects the newest: small files keep the apparent
		// size near the real one and let a purge reach every value.
		WithValueLogFileSize(32 << 20)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("raftbadger: open %s: %w", dir, err)
	}
	s := &Store{db: db, stop: make(chan struct{})}
	if err := s.loadBounds(); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.gcLoop(cfg.GCInterval)
	return s, nil
}

// Close stops background work and closes the database. It is safe to call
// more than once.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.stop)
		s.wg.Wait()
		err = s.db.Close()
	})
	return err
}

// gcLoop runs Badger's value-log GC: Raft entries larger than Badger's value
// threshold live in the value log, and compaction deletes them in bulk.
func (s *Store) gcLoop(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			for s.db.RunValueLogGC(0.5) == nil {
				select {
				case <-s.stop:
					return
				default:
				}
			}
		}
	}
}

// valueThreshold keeps values up to 1 MiB in the LSM tree, but below half
// of Badger's largest transaction (15% of a memtable), as Badger requires.
func valueThreshold(memTable int64) int64 {
	t := memTable * 15 / 100 / 2
	if t > 1<<20 {
		t = 1 << 20
	}
	return t
}

func logKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func stableKey(key []byte) []byte {
	return append([]byte{prefixStable}, key...)
}

// loadBounds reads the first and last stored indexes.
func (s *Store) loadBounds() error {
	first, err := s.seek(0, false)
	if err != nil {
		return err
	}
	last, err := s.seek(^uint64(0), true)
	if err != nil {
		return err
	}
	s.first, s.last = first, last
	return nil
}

// seek returns the first stored index at or after from (or, with reverse, at
// or before from), or 0 when there is none.
func (s *Store) seek(from uint64, reverse bool) (uint64, error) {
	var found uint64
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Reverse = reverse
		opts.Prefix = []byte{prefixLog}
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Seek(logKey(from))
		if it.ValidForPrefix([]byte{prefixLog}) {
			found = binary.BigEndian.Uint64(it.Item().Key()[1:])
		}
		return nil
	})
	return found, translate(err)
}

// FirstIndex returns the first index written, or 0 for an empty log.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, nil
}

// LastIndex returns the last index written, or 0 for an empty log.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

// GetLog reads the entry at index into log. It returns raft.ErrLogNotFound
// when there is none and an error wrapping ErrCorrupt when the stored value
// is damaged.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(logKey(index))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return decodeLog(index, v, log) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return raft.ErrLogNotFound
	}
	return translate(err)
}

// StoreLog stores one entry.
func (s *Store) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores entries durably, in one synced transaction unless
// Badger's transaction limit splits it; the parts are written in order.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	start := 0 // the first log of the part being written
	for i, l := range logs {
		e := badger.NewEntry(logKey(l.Index), encodeLog(l))
		err := txn.SetEntry(e)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return translate(err)
			}
			// What is committed is stored: the bounds say so at once, so
			// that a failure of a later part leaves them true.
			s.widen(logs[start].Index, logs[i-1].Index)
			start = i
			txn = s.db.NewTransaction(true)
			err = txn.SetEntry(e)
		}
		if err != nil {
			return translate(err)
		}
	}
	if err := txn.Commit(); err != nil {
		return translate(err)
	}
	s.widen(logs[start].Index, logs[len(logs)-1].Index)
	return nil
}

// widen extends the bounds to cover [lo, hi], just stored.
func (s *Store) widen(lo, hi uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == 0 || lo < s.first {
		s.first = lo
	}
	if hi > s.last {
		s.last = hi
	}
}

// DeleteRange deletes the entries from min to max inclusive, in as few
// synced transactions as Badger allows. Only indexes inside the stored
// bounds are visited, so the cost is proportional to what is deleted.
func (s *Store) DeleteRange(min, max uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == 0 || min > max {
		return nil
	}
	lo, hi := min, max
	if lo < s.first {
		lo = s.first
	}
	if hi > s.last {
		hi = s.last
	}
	if lo > hi {
		return nil
	}
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	for i := lo; ; i++ {
		k := logKey(i)
		err := txn.Delete(k)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return translate(err)
			}
			txn = s.db.NewTransaction(true)
			err = txn.Delete(k)
		}
		if err != nil {
			return translate(err)
		}
		if i == hi {
			break
		}
	}
	if err := txn.Commit(); err != nil {
		return translate(err)
	}
	return s.reloadBoundsAfter(lo, hi)
}

// reloadBoundsAfter re-reads the bounds after [lo, hi] was deleted, from
// just outside the range, so that neither seek walks over its tombstones.
// s.mu is held.
func (s *Store) reloadBoundsAfter(lo, hi uint64) error {
	if lo <= s.first {
		next, err := s.seek(hi+1, false)
		if err != nil {
			return err
		}
		s.first = next
		if next == 0 {
			s.last = 0
		}
	}
	if hi >= s.last && s.last != 0 {
		prev := uint64(0)
		if lo > 1 {
			p, err := s.seek(lo-1, true)
			if err != nil {
				return err
			}
			prev = p
		}
		s.last = prev
		if prev == 0 {
			s.first = 0
		}
	}
	return nil
}

// Set stores a stable value durably.
func (s *Store) Set(key, val []byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return translate(s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(stableKey(key), append([]byte(nil), val...))
	}))
}

// Get returns a stable value, or ErrKeyNotFound (text "not found").
func (s *Store) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(stableKey(key))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, translate(err)
	}
	return out, nil
}

// SetUint64 stores a stable uint64 durably.
func (s *Store) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 returns a stable uint64, or 0 and ErrKeyNotFound.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable key %q holds %d bytes, want 8", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Sync flushes Badger's write-ahead log; every write is already synced, so
// it is only useful before copying the directory.
func (s *Store) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return translate(s.db.Sync())
}

func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrDBClosed):
		return ErrClosed
	case errors.Is(err, ErrCorrupt), errors.Is(err, raft.ErrLogNotFound):
		return err
	default:
		return fmt.Errorf("raftbadger: %w", err)
	}
}

func encodeLog(l *raft.Log) []byte {
	n := 1 + 8 + 8 + 1 + 8 + binary.MaxVarintLen64*2 + len(l.Data) + len(l.Extensions) + 4
	b := make([]byte, 0, n)
	b = append(b, logFormatV1)
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	b = append(b, l.Extensions...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeLog(index uint64, v []byte, l *raft.Log) error {
	corrupt := func(why string) error {
		return fmt.Errorf("%w: log %d: %s", ErrCorrupt, index, why)
	}
	if len(v) < 1+8+8+1+8+1+1+4 {
		return corrupt("too short")
	}
	body, sum := v[:len(v)-4], binary.BigEndian.Uint32(v[len(v)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return corrupt("checksum mismatch")
	}
	if body[0] != logFormatV1 {
		return corrupt(fmt.Sprintf("unknown format %d", body[0]))
	}
	if got := binary.BigEndian.Uint64(body[1:]); got != index {
		return corrupt(fmt.Sprintf("holds index %d", got))
	}
	l.Index = index
	l.Term = binary.BigEndian.Uint64(body[9:])
	l.Type = raft.LogType(body[17])
	l.AppendedAt = time.Time{}
	if at := int64(binary.BigEndian.Uint64(body[18:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	rest := body[26:]
	data, rest, ok := readBytes(rest)
	if !ok {
		return corrupt("bad data length")
	}
	ext, rest, ok := readBytes(rest)
	if !ok || len(rest) != 0 {
		return corrupt("bad extensions length")
	}
	// The value buffer is only valid inside the transaction: copy.
	l.Data = bytes.Clone(data)
	l.Extensions = bytes.Clone(ext)
	return nil
}

func readBytes(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	// Only the minimal encoding of a length is valid, as encodeLog writes.
	if k <= 0 || k != len(binary.AppendUvarint(nil, n)) || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}
