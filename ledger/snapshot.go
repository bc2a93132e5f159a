package ledger

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"coapp.coop/ledger/merkle"
)

// A snapshot streams the whole state database as of one applied index:
//
//	magic "COAPPSN1" (8) | meta (52, as stored) |
//	records: uvarint key length (> 0) | key | uvarint value length | value |
//	uvarint 0 | record count (8, big-endian) | SHA-256 of all preceding bytes
//
// Keys come in Badger's order. Restore refuses a stream whose count, digest
// or rebuilt root does not match, so a damaged snapshot is never served.
var snapshotMagic = []byte("COAPPSN1")

type fsmSnapshot struct {
	txn      *badger.Txn
	m        meta
	f        *fsm
	released sync.Once
}

// Snapshot captures the state at the current applied index: a Badger read
// transaction sees exactly the state committed by the last ApplyBatch, and
// Persist streams it while Apply goes on. The state's read lock is held
// from here to Release, so that nothing drops keys from under the
// transaction while Persist reads it (a Restore's DropAll, a purge's
// DropPrefix): they wait for it.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	f.restoreMu.RLock()
	txn := f.db.NewTransaction(false)
	m, err := newReader(txn, false).meta()
	if err != nil {
		txn.Discard()
		f.restoreMu.RUnlock()
		return nil, err
	}
	f.persisting.Add(1)
	return &fsmSnapshot{txn: txn, m: m, f: f}, nil
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.txn, s.m); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {
	s.released.Do(func() {
		s.txn.Discard()
		s.f.persisting.Add(-1)
		s.f.restoreMu.RUnlock()
	})
}

func writeSnapshot(w io.Writer, txn *badger.Txn, m meta) error {
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 256<<10)
	bw.Write(snapshotMagic)
	bw.Write(m.encode())
	var scratch [binary.MaxVarintLen64]byte
	putBytes := func(b []byte) {
		bw.Write(binary.AppendUvarint(scratch[:0], uint64(len(b))))
		bw.Write(b)
	}
	opts := badger.DefaultIteratorOptions
	opts.PrefetchSize = 256
	it := txn.NewIterator(opts)
	defer it.Close()
	var count uint64
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) == 1 && k[0] == keyMeta || k[0] == prefixPurge || k[0] == prefixKeep {
			continue // meta is in the header; the purge's records are this node's own
		}
		if err := item.Value(func(v []byte) error {
			putBytes(k)
			putBytes(v)
			return nil
		}); err != nil {
			return storageErr(err)
		}
		count++
	}
	bw.Write([]byte{0})
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], count)
	bw.Write(c[:])
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("ledger: write snapshot: %w", err)
	}
	// The digest covers everything up to here; it is not part of itself.
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("ledger: write snapshot: %w", err)
	}
	return nil
}

// hashingReader feeds every byte it reads to a hash.
type hashingReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (hr *hashingReader) ReadByte() (byte, error) {
	c, err := hr.r.ReadByte()
	if err == nil {
		hr.h.Write([]byte{c})
	}
	return c, err
}

func (hr *hashingReader) readFull(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(hr.r, b); err != nil {
		return nil, err
	}
	hr.h.Write(b)
	return b, nil
}

func (hr *hashingReader) readBytes(max uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(hr)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, corrupt("snapshot record of %d bytes", n)
	}
	return hr.readFull(int(n))
}

// readHeader reads and checks the magic and meta that open a snapshot.
func (hr *hashingReader) readHeader() (meta, error) {
	head, err := hr.readFull(len(snapshotMagic) + metaLen)
	if err != nil {
		return meta{}, fmt.Errorf("ledger: read snapshot header: %w", err)
	}
	if !bytes.Equal(head[:len(snapshotMagic)], snapshotMagic) {
		return meta{}, corrupt("not a ledger snapshot")
	}
	return decodeMeta(head[len(snapshotMagic):])
}

// Restore replaces the state with a snapshot. When the local state already
// holds the snapshot's index with the same root (the usual case on restart,
// as the state is kept on disk), it keeps the local state and skips the copy.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	hr := &hashingReader{r: bufio.NewReaderSize(rc, 256<<10), h: sha256.New()}
	snap, err := hr.readHeader()
	if err != nil {
		return err
	}
	if f.holds(snap) {
		f.logger.Info("ledger state already holds the snapshot; kept", "applied", snap.Applied, "size", snap.Size)
		return nil
	}
	f.logger.Info("restoring ledger state from snapshot", "applied", snap.Applied, "size", snap.Size)
	// The values this state holds that the snapshot destroyed get purge
	// markers, so that this node removes their other copies and checks.
	live, err := f.liveKeys()
	if err != nil {
		return err
	}
	f.restoreMu.Lock()
	defer f.restoreMu.Unlock()
	defer f.purge.notify()
	if err := f.replace(hr, snap, live); err != nil {
		// The state is now partial: refuse to apply or serve until a
		// later restore succeeds.
		f.fail(err)
		return err
	}
	f.failed.Store(nil)
	return nil
}

// holds reports whether the local state has applied at least up to snap and
// agrees with its root.
func (f *fsm) holds(snap meta) bool {
	if f.err() != nil || f.cur.Applied < snap.Applied || f.cur.Size < snap.Size {
		return false
	}
	err := f.view(func(r *reader, _ meta) error {
		root, err := merkle.RootAt(r, snap.Size)
		if err == nil && !root.Equal(snap.Root) {
			err = corrupt("root differs")
		}
		return err
	})
	return err == nil
}

// replace drops the state and loads the snapshot's records, then meta last, so
// that a crash part-way leaves no meta and the next start restores again.
// A key the snapshot holds destroyed whose value live held gets a purge
// marker.
func (f *fsm) replace(hr *hashingReader, snap meta, live map[string]fingerprint) error {
	if err := f.db.DropAll(); err != nil {
		return storageErr(err)
	}
	wb := f.db.NewWriteBatch()
	defer wb.Cancel()
	var count uint64
	for {
		k, err := hr.readBytes(1 << 16)
		if err != nil {
			return fmt.Errorf("ledger: read snapshot: %w", err)
		}
		if len(k) == 0 {
			break
		}
		if k[0] < prefixChunk || k[0] > keyDestroy {
			return corrupt("snapshot holds an unknown key space %#x", k[0])
		}
		v, err := hr.readBytes(1 << 30)
		if err != nil {
			return fmt.Errorf("ledger: read snapshot: %w", err)
		}
		if err := wb.Set(k, v); err != nil {
			return storageErr(err)
		}
		if fp, ok := live[string(k[1:])]; ok && k[0] == prefixKey && len(v) == 0 {
			if err := wb.Set(purgeKey(snap.Applied, k[1:]), fp.encode()); err != nil {
				return storageErr(err)
			}
		}
		count++
	}
	c, err := hr.readFull(8)
	if err != nil {
		return fmt.Errorf("ledger: read snapshot: %w", err)
	}
	want := hr.h.Sum(nil)
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(hr.r, got); err != nil {
		return fmt.Errorf("ledger: read snapshot digest: %w", err)
	}
	if binary.BigEndian.Uint64(c) != count {
		return corrupt("snapshot says %d records, holds %d", binary.BigEndian.Uint64(c), count)
	}
	if !bytes.Equal(got, want) {
		return corrupt("snapshot digest mismatch")
	}
	if err := wb.Flush(); err != nil {
		return storageErr(err)
	}
	if err := f.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte{keyMeta}, snap.encode())
	}); err != nil {
		return storageErr(err)
	}
	return f.load()
}
