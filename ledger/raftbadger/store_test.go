package raftbadger

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"coapp.coop/internal/fsscan"
)

func mustOpen(tb testing.TB, dir string, cfg Config) *Store {
	tb.Helper()
	s, err := Open(dir, cfg)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func makeLog(i uint64, size int) *raft.Log {
	data := bytes.Repeat([]byte{byte(i)}, size)
	return &raft.Log{
		Index:      i,
		Term:       i/10 + 1,
		Type:       raft.LogCommand,
		Data:       data,
		Extensions: []byte(fmt.Sprintf("ext-%d", i)),
		AppendedAt: time.Unix(1700000000, int64(i)).UTC(),
	}
}

func storeRange(tb testing.TB, s *Store, lo, hi uint64, size int) {
	tb.Helper()
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		logs = append(logs, makeLog(i, size))
	}
	if err := s.StoreLogs(logs); err != nil {
		tb.Fatalf("StoreLogs(%d..%d): %v", lo, hi, err)
	}
}

func checkBounds(tb testing.TB, s *Store, first, last uint64) {
	tb.Helper()
	f, err := s.FirstIndex()
	if err != nil || f != first {
		tb.Errorf("FirstIndex() = %d, %v; want %d", f, err, first)
	}
	l, err := s.LastIndex()
	if err != nil || l != last {
		tb.Errorf("LastIndex() = %d, %v; want %d", l, err, last)
	}
}

func checkLog(tb testing.TB, s *Store, want *raft.Log) {
	tb.Helper()
	var got raft.Log
	if err := s.GetLog(want.Index, &got); err != nil {
		tb.Fatalf("GetLog(%d): %v", want.Index, err)
	}
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
		!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
		!got.AppendedAt.Equal(want.AppendedAt) {
		tb.Errorf("GetLog(%d) = %+v, want %+v", want.Index, got, *want)
	}
}

func TestEmptyStore(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Config{})
	checkBounds(t, s, 0, 0)
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Errorf("GetLog(1) on an empty store = %v, want raft.ErrLogNotFound", err)
	}
	// hashicorp/raft compares the text of this error.
	if _, err := s.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Errorf(`Get(missing) error = %v, want text "not found"`, err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" || v != 0 {
		t.Errorf(`GetUint64(missing) = %d, %v; want 0, "not found"`, v, err)
	}
	if err := s.DeleteRange(1, 10); err != nil {
		t.Errorf("DeleteRange on an empty store: %v", err)
	}
}

func TestStoreAndGet(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Config{})
	single := makeLog(1, 10)
	single.AppendedAt = time.Time{}
	if err := s.StoreLog(single); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, single)
	storeRange(t, s, 2, 50, 100)
	checkBounds(t, s, 1, 50)
	for i := uint64(2); i <= 50; i++ {
		checkLog(t, s, makeLog(i, 100))
	}
	// An empty data slice and a nil one both come back empty.
	empty := &raft.Log{Index: 51, Term: 9, Type: raft.LogNoop}
	if err := s.StoreLog(empty); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, empty)
}

func TestDeleteRange(t *testing.T) {
	tests := []struct {
		name        string
		lo, hi      uint64
		first, last uint64
	}{
		{"head (compaction)", 1, 40, 41, 100},
		{"tail (conflict truncation)", 60, 100, 1, 59},
		{"beyond both ends", 0, 1000, 0, 0},
		{"exact whole log", 1, 100, 0, 0},
		{"middle", 30, 40, 1, 100},
		{"inverted range", 50, 40, 1, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustOpen(t, t.TempDir(), Config{})
			storeRange(t, s, 1, 100, 16)
			if err := s.DeleteRange(tt.lo, tt.hi); err != nil {
				t.Fatalf("DeleteRange(%d, %d): %v", tt.lo, tt.hi, err)
			}
			checkBounds(t, s, tt.first, tt.last)
			for i := uint64(1); i <= 100; i++ {
				var l raft.Log
				err := s.GetLog(i, &l)
				deleted := tt.lo <= tt.hi && i >= tt.lo && i <= tt.hi
				if deleted && !errors.Is(err, raft.ErrLogNotFound) {
					t.Errorf("GetLog(%d) after deleting it = %v, want ErrLogNotFound", i, err)
				}
				if !deleted && err != nil {
					t.Errorf("GetLog(%d) of a kept entry: %v", i, err)
				}
			}
			// The log goes on after the deletion.
			next := tt.last + 1
			if tt.last == 0 {
				next = 101
			}
			storeRange(t, s, next, next+4, 16)
			first := tt.first
			if first == 0 {
				first = next
			}
			checkBounds(t, s, first, next+4)
		})
	}
}

// TestBatchLargerThanOneTransaction stores a batch that Badger must split,
// and checks that no entry is lost at the split (a bug seen in other Badger
// Raft stores).
func TestBatchLargerThanOneTransaction(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Config{MemTableSize: 1 << 20})
	storeRange(t, s, 1, 3000, 1024)
	checkBounds(t, s, 1, 3000)
	for i := uint64(1); i <= 3000; i++ {
		checkLog(t, s, makeLog(i, 1024))
	}
	if err := s.DeleteRange(1, 2999); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 3000, 3000)
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	storeRange(t, s, 5, 25, 64)
	if err := s.DeleteRange(5, 9); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	var l raft.Log
	if err := s.GetLog(10, &l); !errors.Is(err, ErrClosed) {
		t.Errorf("GetLog after Close = %v, want ErrClosed", err)
	}

	s = mustOpen(t, dir, Config{})
	checkBounds(t, s, 10, 25)
	for i := uint64(10); i <= 25; i++ {
		checkLog(t, s, makeLog(i, 64))
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Errorf("GetUint64(CurrentTerm) after reopen = %d, %v; want 7", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-2" {
		t.Errorf("Get(LastVoteCand) after reopen = %q, %v; want node-2", v, err)
	}
}

func TestStableOverwrite(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Config{})
	for _, v := range []uint64{1, 0, 1 << 60} {
		if err := s.SetUint64([]byte("k"), v); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUint64([]byte("k")); err != nil || got != v {
			t.Errorf("GetUint64 = %d, %v; want %d", got, err, v)
		}
	}
	buf := []byte("value")
	if err := s.Set([]byte("b"), buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X' // the store must have kept its own copy
	if got, _ := s.Get([]byte("b")); string(got) != "value" {
		t.Errorf("Get(b) = %q after the caller changed its buffer, want value", got)
	}
	if err := s.Set([]byte("short"), []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("short")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("GetUint64 of a 2-byte value = %v, want ErrCorrupt", err)
	}
}

func TestCorruptValueDetected(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Config{})
	storeRange(t, s, 1, 3, 32)
	good := encodeLog(makeLog(2, 32))
	flipped := bytes.Clone(good)
	flipped[30] ^= 0x01
	tests := []struct {
		name  string
		index uint64
		value []byte
	}{
		{"bit flipped in data", 2, flipped},
		{"truncated", 2, good[:10]},
		{"entry stored under another index", 3, good},
		{"empty", 1, nil},
	}
	for _, tt := range tests {
		err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(logKey(tt.index), tt.value) })
		if err != nil {
			t.Fatal(err)
		}
		var l raft.Log
		if err := s.GetLog(tt.index, &l); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: GetLog(%d) = %v, want ErrCorrupt", tt.name, tt.index, err)
		}
	}
}

func TestConcurrentReadsAndWrites(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Config{})
	storeRange(t, s, 1, 10, 8)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := uint64(11); i <= 400; i += 10 {
			storeRange(t, s, i, i+9, 8)
		}
	}()
	go func() {
		defer wg.Done()
		for n := 0; n < 400; n++ {
			last, _ := s.LastIndex()
			var l raft.Log
			if err := s.GetLog(last, &l); err != nil {
				t.Errorf("GetLog(LastIndex()=%d): %v", last, err)
				return
			}
		}
	}()
	wg.Wait()
	checkBounds(t, s, 1, 400)
}

func FuzzDecodeLog(f *testing.F) {
	f.Add(uint64(1), encodeLog(makeLog(1, 10)))
	f.Add(uint64(7), encodeLog(&raft.Log{Index: 7, Type: raft.LogNoop}))
	f.Add(uint64(2), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, index uint64, v []byte) {
		var l raft.Log
		if err := decodeLog(index, v, &l); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeLog error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(encodeLog(&l), v) {
			t.Fatalf("decodeLog accepted a value that does not re-encode to itself")
		}
	})
}

// TestPurgeRemovesFromFiles deletes logs as Raft compacts them (their
// bytes stay in the files, the usual case when key material was written
// long before it is destroyed), then purges: no byte of them is left in
// the store's files, and the rest is kept.
func TestPurgeRemovesFromFiles(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Config{})
	marker := func(i uint64) []byte { return []byte(fmt.Sprintf("SECRET-LOG-%06d", i)) }
	var logs []*raft.Log
	for i := uint64(1); i <= 1000; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: marker(i)})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 600); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 601, 1000)
	// A deletion alone leaves the bytes in the files (the memtable's file,
	// then the tables): the scan finds them, so it can fail.
	if found, err := fsscan.Scan(dir, marker(1), marker(600)); err != nil || len(found) == 0 {
		t.Fatalf("deleted logs are not in the files before the purge (%v): the scan proves nothing", err)
	}
	if err := s.Purge(600); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 601, 1000)
	var l raft.Log
	if err := s.GetLog(601, &l); err != nil || !bytes.Equal(l.Data, marker(601)) {
		t.Fatalf("GetLog(601) after purge = %q, %v", l.Data, err)
	}
	var gone, kept [][]byte
	for i := uint64(1); i <= 600; i += 37 {
		gone = append(gone, marker(i))
	}
	kept = append(kept, marker(700))
	found, err := fsscan.Scan(dir, append(gone, kept...)...)
	if err != nil {
		t.Fatal(err)
	}
	sawKept := false
	for _, m := range found {
		if bytes.Equal(m.Needle, kept[0]) {
			sawKept = true
			continue
		}
		t.Errorf("purged log bytes %q still in %s", m.Needle, m.Path)
	}
	if !sawKept {
		t.Error("the scan does not find a kept log: it proves nothing")
	}
	// Writes go on after the purge.
	storeRange(t, s, 1001, 1010, 8)
	checkBounds(t, s, 601, 1010)
}

// TestPurgeReachesEveryLevel stores logs that reach tables of the deeper
// levels before they are deleted: the purge merges their versions out of
// every table.
func TestPurgeReachesEveryLevel(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Config{})
	marker := func(i uint64) []byte { return []byte(fmt.Sprintf("DEEP-SECRET-%06d", i)) }
	for part := uint64(0); part < 4; part++ {
		var logs []*raft.Log
		for i := part*250 + 1; i <= part*250+250; i++ {
			logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: marker(i)})
		}
		if err := s.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil { // each part in a table of its own
			t.Fatal(err)
		}
		if part == 1 {
			if err := s.db.Flatten(2); err != nil { // the first parts down a level
				t.Fatal(err)
			}
		}
	}
	if err := s.DeleteRange(1, 600); err != nil {
		t.Fatal(err)
	}
	var gone [][]byte
	for i := uint64(1); i <= 600; i += 41 {
		gone = append(gone, marker(i))
	}
	found, err := fsscan.Scan(dir, gone...)
	if err != nil || len(found) == 0 {
		t.Fatalf("deleted logs are not in the tables before the purge (%v): the scan proves nothing", err)
	}
	if err := s.Purge(600); err != nil {
		t.Fatal(err)
	}
	found, err = fsscan.Scan(dir, append(gone, marker(900))...)
	if err != nil {
		t.Fatal(err)
	}
	kept := false
	for _, m := range found {
		if bytes.Equal(m.Needle, marker(900)) {
			kept = true
			continue
		}
		t.Errorf("purged log bytes %q still in %s", m.Needle, m.Path)
	}
	if !kept {
		t.Error("a log after the purged range is gone")
	}
	checkBounds(t, s, 601, 1000)
	// Idempotent, and the store reopens with its bounds.
	if err := s.Purge(600); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, dir, Config{})
	checkBounds(t, s2, 601, 1000)
}
