package ledger

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"coapp.coop/internal/logging"
	"coapp.coop/ledger/merkle"
)

// Backup writes a consistent copy of this node's state to w, as of one
// applied index read at consistency c: the same stream as a Raft snapshot,
// ending with its SHA-256. It returns the size and root of the log the
// backup holds. Appends go on meanwhile.
func (l *Ledger) Backup(ctx context.Context, w io.Writer, c Consistency) (size uint64, root merkle.Hash, err error) {
	err = l.Read(ctx, c, func(v *View) error {
		size, root = v.m.Size, v.m.Root
		return writeSnapshot(ctxWriter{ctx, w}, v.r.txn, v.m)
	})
	return size, root, err
}

// ctxWriter stops a long copy once ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// ErrNotEmpty is returned by RestoreBackup when its directory already holds
// a ledger.
var ErrNotEmpty = errors.New("ledger: directory already holds a ledger")

// RestoreBackup seeds a new ledger in dir from a backup made by Backup, and
// returns the size and root it restored. dir must not hold a ledger yet.
// Open(ctx, Config{Dir: dir}) then starts a new single-node cluster whose
// log holds every entry of the backup (other nodes join it and receive the
// state by snapshot). The backup's digest and rebuilt Merkle root are
// checked; a damaged backup is refused and leaves dir without a state.
func RestoreBackup(ctx context.Context, dir string, r io.Reader) (size uint64, root merkle.Hash, err error) {
	for _, sub := range []string{"raft", "state", "snapshots"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err == nil && len(entries) > 0 {
			return 0, merkle.Hash{}, fmt.Errorf("%w: %s", ErrNotEmpty, filepath.Join(dir, sub))
		}
	}
	cfg := Config{Dir: dir}
	cfg.setDefaults()
	log := logging.Discard(nil)
	db, err := openState(&cfg, log)
	if err != nil {
		return 0, merkle.Hash{}, err
	}
	f := &fsm{db: db, logger: log, maxTxnBytes: cfg.txnBudget()}
	hr := &hashingReader{r: bufio.NewReaderSize(ctxReader{ctx, r}, 256<<10), h: sha256.New()}
	snap, err := hr.readHeader()
	if err == nil {
		// The new cluster's Raft log starts again at index 1: the state
		// must not skip its entries as already applied.
		snap.Applied = 0
		err = f.replace(hr, snap, nil)
	}
	if err != nil {
		_ = db.Close()
		_ = os.RemoveAll(filepath.Join(dir, "state"))
		return 0, merkle.Hash{}, err
	}
	if err := db.Close(); err != nil {
		return 0, merkle.Hash{}, fmt.Errorf("ledger: close restored state: %w", err)
	}
	return f.cur.Size, f.cur.Root, nil
}

// ctxReader stops a long copy once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
