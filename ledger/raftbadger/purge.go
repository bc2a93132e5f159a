package raftbadger

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// Purge removes every log from index 1 to through from the database's
// files, not only from its index: those still stored are deleted, and the
// versions of every deleted one (the usual case: key material written long
// before it is destroyed, its logs compacted since) are merged out of the
// files. Logs after through are untouched. It flushes the memtables (the
// only public way Badger has: a DropPrefix of a key space of its own) and
// then compacts every level into one (Flatten), which drops the versions a
// deletion hides. Writes wait while the flush runs; the compaction runs
// beside them. It is idempotent.
func (s *Store) Purge(through uint64) error {
	if through == 0 {
		return nil
	}
	if err := s.DeleteRange(1, through); err != nil {
		return err
	}
	if err := s.Flush(); err != nil {
		return err
	}
	return s.Compact()
}

// Compact merges every level of the store into one, which drops the
// values that deletes already written to a table shadow, then rewrites
// the value-log files that are mostly garbage. Writes go on meanwhile.
func (s *Store) Compact() error {
	if err := s.db.Flatten(2); err != nil {
		return translate(err)
	}
	return s.RunGC()
}

// prefixFlush is a key space of the store's own, which it writes and drops
// to make Badger flush its memtables.
const prefixFlush byte = 0x03

// Flush writes every memtable to a table, and removes the memtables'
// files, which hold every write since the last flush. Writes wait while
// it runs: Badger flushes on demand only within a DropPrefix.
func (s *Store) Flush() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	k := []byte{prefixFlush}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(k, []byte{0}) }); err != nil {
		return translate(err)
	}
	return translate(s.db.DropPrefix(k))
}

// RunGC rewrites the value-log files that are mostly garbage, until
// Badger finds none left to rewrite.
func (s *Store) RunGC() error {
	for {
		err := s.db.RunValueLogGC(0.01)
		switch {
		case err == nil:
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return nil
		default:
			return translate(err)
		}
	}
}
