package ledger

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// editState closes nothing: it opens the state database of a closed ledger
// directly and lets fn change it, as damage on disk would.
func editState(t *testing.T, dir string, fn func(txn *badger.Txn) error) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "state")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func filledLedger(t *testing.T, n int) (Config, *Ledger) {
	t.Helper()
	cfg := testConfig(t.TempDir())
	l, err := Open(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		mustAppend(t, l, newEntry(i))
	}
	return cfg, l
}

func closeLedger(t *testing.T, l *Ledger) {
	t.Helper()
	if err := l.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

func rawValue(t *testing.T, txn *badger.Txn, key []byte) []byte {
	t.Helper()
	item, err := txn.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// chunkOf returns the key of the chunk holding index.
func chunkOf(t *testing.T, txn *badger.Txn, index uint64) []byte {
	t.Helper()
	opts := badger.DefaultIteratorOptions
	opts.Reverse = true
	opts.Prefix = []byte{prefixChunk}
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Seek(chunkKey(index))
	if !it.Valid() {
		t.Fatalf("no chunk holds %d", index)
	}
	return it.Item().KeyCopy(nil)
}

// TestDamagedValuesDetected changes stored values behind the ledger's back:
// each change must give a *CorruptionError, never a wrong entry or root.
func TestDamagedValuesDetected(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, txn *badger.Txn) error
		read   bool // reading entry 5 must fail too, not only Verify
	}{
		{"payload byte flipped", func(t *testing.T, txn *badger.Txn) error {
			k := chunkOf(t, txn, 5)
			v := rawValue(t, txn, k)
			return txn.Set(k, flip(v, len(v)-10))
		}, true},
		{"chunk stored under another key", func(t *testing.T, txn *badger.Txn) error {
			return txn.Set(chunkOf(t, txn, 5), rawValue(t, txn, chunkOf(t, txn, 12)))
		}, true},
		{"chunk deleted", func(t *testing.T, txn *badger.Txn) error {
			return txn.Delete(chunkOf(t, txn, 5))
		}, true},
		{"tree node changed", func(t *testing.T, txn *badger.Txn) error {
			return txn.Set(nodeKey(4, 0), flip(rawValue(t, txn, nodeKey(4, 0)), 0))
		}, false},
		{"id index pointing elsewhere", func(t *testing.T, txn *badger.Txn) error {
			return txn.Set(idKey(newEntry(5).ID), rawValue(t, txn, idKey(newEntry(7).ID)))
		}, false},
		{"extra entry beyond the size", func(t *testing.T, txn *badger.Txn) error {
			return txn.Set(chunkKey(20), encodeChunk(20, [][]byte{newEntry(20).Encode()}))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, l := filledLedger(t, 20)
			closeLedger(t, l)
			editState(t, cfg.Dir, func(txn *badger.Txn) error { return tt.damage(t, txn) })
			l, err := Open(testContext(t), cfg)
			if errors.Is(err, ErrCorrupt) {
				return // detected at open, when the tree's edge is rebuilt
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closeLedger(t, l)
			if err := l.Verify(testContext(t)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Verify = %v, want ErrCorrupt", err)
			}
			if !tt.read {
				return
			}
			err = l.Read(testContext(t), Stale, func(v *View) error {
				_, err := v.Entry(5)
				return err
			})
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Errorf("Entry(5) = %v, want a *CorruptionError", err)
			}
		})
	}
}

func TestDamagedMetaRefusedAtOpen(t *testing.T) {
	cfg, l := filledLedger(t, 10)
	closeLedger(t, l)
	editState(t, cfg.Dir, func(txn *badger.Txn) error {
		m := rawValue(t, txn, []byte{keyMeta})
		return txn.Set([]byte{keyMeta}, flip(m, 20))
	})
	if l, err := Open(testContext(t), cfg); !errors.Is(err, ErrCorrupt) {
		if l != nil {
			closeLedger(t, l)
		}
		t.Fatalf("Open with damaged meta = %v, want ErrCorrupt", err)
	}
}

// TestByteFlippedOnDisk flips one byte of an entry's payload inside the
// state database's files, as a failing disk would, and checks that the
// ledger reports corruption instead of serving the changed payload.
func TestByteFlippedOnDisk(t *testing.T) {
	cfg := testConfig(t.TempDir())
	l, err := Open(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte("DISTINCTIVE-PAYLOAD-0123456789")
	for i := 0; i < 50; i++ {
		e := newEntry(i)
		if i == 25 {
			e.Payload = marker
		}
		mustAppend(t, l, e)
	}
	closeLedger(t, l) // flushes the memtable into table files

	flipped := 0
	files, _ := filepath.Glob(filepath.Join(cfg.Dir, "state", "*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for at := bytes.Index(data, marker); at >= 0; {
			data[at+len(marker)/2] ^= 0x04
			flipped++
			next := bytes.Index(data[at+1:], marker)
			if next < 0 {
				break
			}
			at += 1 + next
		}
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if flipped == 0 {
		t.Fatal("payload not found in the state files")
	}

	l, err = Open(testContext(t), cfg)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("Open after the flip = %v, want a corruption error", err)
		}
		return // refused at open: detected, not served
	}
	defer closeLedger(t, l)
	err = l.Read(testContext(t), Stale, func(v *View) error {
		e, err := v.Entry(25)
		if err == nil && !bytes.Equal(e.Payload, marker) {
			t.Errorf("Entry(25) served a changed payload %q", e.Payload)
		}
		return err
	})
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Entry(25) after the flip = %v, want ErrCorrupt", err)
	}
	if err := l.Verify(testContext(t)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify after the flip = %v, want ErrCorrupt", err)
	}
}
