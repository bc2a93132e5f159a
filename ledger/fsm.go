package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/hashicorp/raft"

	"coapp.coop/ledger/entry"
	"coapp.coop/ledger/merkle"
)

// fsm is the Raft state machine: it applies committed commands to the state
// database. Apply, ApplyBatch, Snapshot and Restore are called by Raft one
// at a time; nothing in them reads a clock or a random source or depends on
// map iteration order, so every replica reaches the same state and root at
// the same index.
type fsm struct {
	db          *badger.DB
	logger      *slog.Logger
	maxTxnBytes int64

	// restoreMu is held for reading by every read of the state and for
	// writing while Restore replaces it.
	restoreMu sync.RWMutex

	// Owned by the FSM goroutine.
	tree *merkle.Tree
	cur  meta
	ids  *idFilter
	// keyHashes remembers the hashes of key store values recently seen, so
	// that most key requirements need no lookup. It is derived state:
	// emptied on restore, kept coherent on create and destroy.
	keyHashes keyHashCache

	failed atomic.Pointer[error] // set when the state can no longer be trusted

	published atomic.Pointer[meta]
	applied   broadcast     // notified when a new state is published
	started   broadcast     // notified when an ApplyBatch begins
	purge     broadcast     // notified when keys are destroyed
	destroyed atomic.Uint64 // the Raft index of the last destroy applied

	// persisting counts the snapshots being written; dropped the purge
	// markers whose keys this process dropped from the files.
	persisting atomic.Int32
	dropMu     sync.Mutex
	dropped    map[string]bool
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

// groupResult is the outcome of one Append call inside a command.
type groupResult struct {
	receipts []Receipt
	err      error
}

func newFSM(db *badger.DB, logger *slog.Logger, maxTxnBytes int64) (*fsm, error) {
	f := &fsm{db: db, logger: logger, maxTxnBytes: maxTxnBytes}
	// A purge cut short by a crash: write back what it saved, and the
	// tombstones of the keys it was dropping.
	if err := f.restoreKept(); err != nil {
		return nil, err
	}
	if err := f.reassertTombstones(); err != nil {
		return nil, err
	}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

// view runs fn on a reader of the current state and its meta.
func (f *fsm) view(fn func(r *reader, m meta) error) error {
	txn := f.db.NewTransaction(false)
	defer txn.Discard()
	r := newReader(txn, false)
	defer r.close()
	m, err := r.meta()
	if err != nil {
		return err
	}
	return fn(r, m)
}

// load reads meta and rebuilds the tree's right edge from the state.
func (f *fsm) load() error {
	return f.view(func(r *reader, m meta) error {
		tree, err := merkle.LoadTree(r, m.Size)
		if err != nil {
			return err
		}
		if got := tree.Root(); !got.Equal(m.Root) {
			return corrupt("stored root %s does not match the tree's %s", m.Root, got)
		}
		f.tree, f.cur = tree, m
		f.ids = loadIDFilter(r.txn)
		f.keyHashes = keyHashCache{}
		if item, err := r.txn.Get([]byte{keyDestroy}); err == nil {
			if v, err := item.ValueCopy(nil); err == nil && len(v) == 8 {
				f.destroyed.Store(binary.BigEndian.Uint64(v))
			}
		}
		f.publish(m)
		return nil
	})
}

func (f *fsm) publish(m meta) {
	f.published.Store(&m)
	f.applied.notify()
}

// state returns the last published meta and a channel closed at the next
// publish.
func (f *fsm) state() (meta, <-chan struct{}) {
	_, ch := f.applied.wait()
	return *f.published.Load(), ch
}

func (f *fsm) err() error {
	if p := f.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *fsm) fail(err error) {
	f.logger.Error("ledger state can no longer be trusted; restart the node", "err", err)
	f.failed.CompareAndSwap(nil, &err)
}

// Apply applies one log; Raft uses ApplyBatch instead when it can.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed logs in one Badger transaction (more only
// when the batch outgrows Badger's limit; then split between logs), with the
// applied index and root written beside the entries.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	f.started.notify()
	resp := make([]any, len(logs))
	if err := f.err(); err != nil {
		for i := range resp {
			resp[i] = err
		}
		return resp
	}
	f.restoreMu.RLock()
	defer f.restoreMu.RUnlock()
	b := f.newBatch()
	defer func() { b.txn.Discard() }()
	applied := 0
	for i, l := range logs {
		if l.Index <= b.m.Applied {
			continue // replayed after a restart: already in the state
		}
		if l.Type == raft.LogCommand && len(l.Data) > 0 && l.Data[0] == cmdDestroy {
			resp[i] = b.applyDestroy(l)
		} else if l.Type == raft.LogCommand {
			resp[i] = b.applyCommand(l)
		}
		b.m.Applied = l.Index
		applied++
		if b.err == nil && b.bytes >= f.maxTxnBytes {
			b.commit(true)
		}
		if b.err != nil {
			break
		}
	}
	if b.err == nil && applied > 0 {
		b.commit(false)
	}
	if b.err != nil {
		f.fail(b.err)
		for i := range resp {
			resp[i] = b.err
		}
	}
	return resp
}

// batch is the write in progress of one ApplyBatch.
type batch struct {
	f     *fsm
	txn   *badger.Txn
	r     *reader
	bytes int64
	tree  *merkle.Tree
	m     meta
	err   error

	// New entries not yet written: their encodings, from index first.
	pending [][]byte
	first   uint64
	// destroyed is the Raft index of a Destroy this batch applied and has
	// not committed yet.
	destroyed uint64
}

func (f *fsm) newBatch() *batch {
	txn := f.db.NewTransaction(true)
	return &batch{f: f, txn: txn, r: newReader(txn, true), tree: f.tree.Clone(), m: f.cur}
}

func (b *batch) set(k, v []byte) {
	if b.err != nil {
		return
	}
	b.bytes += int64(len(k) + len(v) + 32)
	if err := b.txn.Set(k, v); err != nil {
		b.err = fmt.Errorf("ledger: apply at raft index %d: %w", b.m.Applied, storageErr(err))
	}
}

// flushChunks writes the pending entries as chunks of up to chunkMax.
func (b *batch) flushChunks() {
	for i := 0; i < len(b.pending); i += chunkMax {
		j := min(i+chunkMax, len(b.pending))
		b.set(chunkKey(b.first+uint64(i)), encodeChunk(b.first+uint64(i), b.pending[i:j]))
	}
	b.pending = b.pending[:0]
}

// commit writes the pending entries and meta beside them, commits, and
// publishes the new state. With more, it opens a new transaction for the
// rest of the batch.
func (b *batch) commit(more bool) {
	b.flushChunks()
	b.m.Size = b.tree.Size()
	b.m.Root = b.tree.Root()
	b.set([]byte{keyMeta}, b.m.encode())
	if b.err != nil {
		return
	}
	if err := b.txn.Commit(); err != nil {
		b.err = fmt.Errorf("ledger: commit at raft index %d: %w", b.m.Applied, storageErr(err))
		return
	}
	b.f.tree, b.f.cur = b.tree.Clone(), b.m
	b.f.publish(b.m)
	if b.destroyed != 0 {
		b.f.destroyed.Store(b.destroyed)
		b.f.purge.notify()
		b.destroyed = 0
	}
	if more {
		b.txn = b.f.db.NewTransaction(true)
		b.r = newReader(b.txn, true)
		b.bytes = 0
	}
}

// applyDestroy destroys keys: each gets a tombstone, in the batch's
// transaction like any write, so that every replica refuses it from this
// index on. The copies of its value that this node's files still hold
// (older versions in the state's tables, the Raft logs that carried it,
// older snapshots) are removed later by the purger (purge.go); for each key
// that held a value, a purge marker with its fingerprint, written here
// too, tells the purger what to remove and how to check that it is gone.
func (b *batch) applyDestroy(l *raft.Log) any {
	names, ok := decodeDestroy(l.Data)
	if !ok {
		b.f.logger.Error("ledger: undecodable destroy command skipped", "raft_index", l.Index)
		return corrupt("raft log %d holds an undecodable command", l.Index)
	}
	for _, n := range names {
		if v, err := b.r.key(n); err == nil {
			b.set(purgeKey(l.Index, n), newFingerprint(v).encode())
		} else if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrKeyDestroyed) {
			b.err = fmt.Errorf("ledger: destroy keys at raft index %d: %w", l.Index, err)
			return b.err
		}
		b.set(storeKey(prefixKey, n), []byte{}) // the tombstone
		b.f.keyHashes.drop(n)
	}
	b.set([]byte{keyDestroy}, binary.BigEndian.AppendUint64(nil, l.Index))
	b.destroyed = l.Index // the purger learns of it once it is committed, markers and all
	return nil
}

// applyCommand applies each group of a command; it returns []groupResult, or
// an error when the command does not decode (which the leader never
// proposes).
func (b *batch) applyCommand(l *raft.Log) any {
	groups, ok := decodeCommand(l.Data)
	if !ok {
		b.f.logger.Error("ledger: undecodable command skipped", "raft_index", l.Index)
		return corrupt("raft log %d holds an undecodable command", l.Index)
	}
	results := make([]groupResult, len(groups))
	for i, g := range groups {
		results[i] = b.applyGroup(g)
	}
	return results
}

// stored returns the canonical encoding of an entry already in the log or
// pending in this batch.
func (b *batch) stored(index uint64) ([]byte, error) {
	if len(b.pending) > 0 && index >= b.first {
		return b.pending[index-b.first], nil
	}
	_, enc, err := b.r.entry(index)
	if errors.Is(err, ErrNotFound) {
		return nil, corruptAt(index, "id index points at a missing entry")
	}
	return enc, err
}

// applyGroup applies the entries of one Append call: first it checks every
// entry against the log, then it writes the new ones, so a conflict leaves
// nothing of the group behind.
func (b *batch) applyGroup(g group) groupResult {
	encs := g.encs
	var create []KeyRequirement
	for _, kr := range g.keys {
		if h, ok := b.f.keyHashes.get(kr.Name); ok && h == kr.Hash {
			continue // known to hold this value
		}
		v, err := b.r.key(kr.Name)
		switch {
		case errors.Is(err, ErrKeyDestroyed):
			return groupResult{err: &KeyError{Name: kr.Name, Err: ErrKeyDestroyed}}
		case errors.Is(err, ErrNotFound):
			if kr.Create == nil {
				return groupResult{err: &KeyError{Name: kr.Name, Err: ErrNotFound}}
			}
			create = append(create, kr)
		case err != nil:
			b.err = err
			return groupResult{err: err}
		case sha256.Sum256(v) != kr.Hash:
			return groupResult{err: &KeyError{Name: kr.Name, Err: ErrKeyConflict}}
		default:
			b.f.keyHashes.put(kr.Name, kr.Hash)
		}
	}
	receipts := make([]Receipt, len(encs))
	dupOf := make([]int, len(encs)) // -1: new; -2: already in the log; j: same as encs[j]
	var seen map[uuid.UUID]int
	for i, enc := range encs {
		if _, _, _, ok := entry.Split(enc); !ok {
			return groupResult{err: corrupt("command holds an undecodable entry")}
		}
		id := entry.ID(enc)
		dupOf[i] = -1
		if j, ok := seen[id]; ok {
			if !bytes.Equal(encs[j], enc) {
				return groupResult{err: &ValidationError{Entry: i, Field: "id", Reason: "repeated in the call with different content"}}
			}
			dupOf[i] = j
			continue
		}
		if len(encs) > 1 {
			if seen == nil {
				seen = make(map[uuid.UUID]int, len(encs))
			}
			seen[id] = i
		}
		if !b.f.ids.mayContain(id) {
			continue // certainly new
		}
		index, found, err := b.r.lookupID(id)
		if err != nil {
			b.err = err
			return groupResult{err: err}
		}
		if !found {
			continue
		}
		old, err := b.stored(index)
		if err != nil {
			b.err = err
			return groupResult{err: err}
		}
		if !bytes.Equal(old, enc) {
			return groupResult{err: &ConflictError{ID: id, Index: index}}
		}
		receipts[i] = Receipt{ID: id, Index: index, Leaf: merkle.LeafHash(old), Duplicate: true}
		dupOf[i] = -2
	}
	for _, kr := range create {
		b.set(storeKey(prefixKey, kr.Name), kr.Create)
		b.f.keyHashes.put(kr.Name, kr.Hash)
	}
	for i, enc := range encs {
		switch {
		case dupOf[i] >= 0:
			receipts[i] = receipts[dupOf[i]]
			receipts[i].Duplicate = true
		case dupOf[i] == -1:
			receipts[i] = b.appendEntry(enc)
		}
	}
	if b.err != nil {
		return groupResult{err: b.err}
	}
	return groupResult{receipts: receipts}
}

// appendEntry adds one new entry: pending for its chunk, its id index and
// the upper tree nodes it completes.
func (b *batch) appendEntry(enc []byte) Receipt {
	index := b.tree.Size()
	if len(b.pending) == 0 {
		b.first = index
	}
	b.pending = append(b.pending, enc)
	b.bytes += int64(len(enc) + 8)
	leaf := merkle.LeafHash(enc)
	b.tree.Append(leaf, func(n merkle.Node) {
		if n.Level >= nodeMinLevel {
			b.set(nodeKey(n.Level, n.Index), append([]byte(nil), n.Hash[:]...))
		}
	})
	id := entry.ID(enc)
	b.f.ids.add(id)
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, index)
	b.set(idKey(id), v)
	return Receipt{ID: id, Index: index, Leaf: leaf}
}
