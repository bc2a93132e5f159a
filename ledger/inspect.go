package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/raft"

	"coapp.coop/internal/logging"
	"coapp.coop/ledger/merkle"
	"coapp.coop/ledger/raftbadger"
)

// Inspection is what a node's directory holds, as Inspect reads it without
// starting the node.
type Inspection struct {
	// NodeID is the id kept in Dir/node-id: empty before the first start
	// (and in a directory seeded by RestoreBackup).
	NodeID string

	// RaftState reports whether Dir holds a Raft state (a term, log
	// entries or snapshots): the node bootstrapped a cluster or was added
	// to one. A directory seeded by RestoreBackup has none until it
	// starts.
	RaftState bool

	// Servers is the latest cluster configuration in the Raft log and
	// snapshots, committed or not (Leader is never set): the servers this
	// node would count on if it started now. Empty without a Raft state.
	Servers []Server

	// Size and Root describe the state as stored. After a crash the state
	// may trail the Raft log: Open applies the rest.
	Size uint64
	Root merkle.Hash
}

// Empty reports whether the directory holds no ledger: no Raft state and
// no entry.
func (in Inspection) Empty() bool { return !in.RaftState && in.Size == 0 }

// HasServer reports whether id is in the cluster configuration.
func (in Inspection) HasServer(id string) bool {
	for _, s := range in.Servers {
		if s.ID == id {
			return true
		}
	}
	return false
}

// Inspect reads what cfg.Dir holds without starting Raft, listening or
// writing anything of its own: the node's id, the cluster configuration
// in its Raft log and snapshots, and its state, on which it runs fn (when
// fn is not nil and the state exists) with a View as Read gives one. It
// is what a program checks before Open, which would bootstrap, join or
// reopen. It uses cfg.Dir, MemTableSize, BlockCacheSize, SnapshotRetain
// and Logger; a directory that does not exist inspects as empty and is
// not created. A directory in use by a running node is refused (Badger's
// directory lock). Opening a store replays and flushes what a crash left
// in its memtables, as Open would.
func Inspect(ctx context.Context, cfg Config, fn func(*View) error) (Inspection, error) {
	cfg.setDefaults()
	if cfg.Dir == "" {
		return Inspection{}, &ValidationError{Entry: -1, Field: "Config.Dir", Reason: "required"}
	}
	if err := ctx.Err(); err != nil {
		return Inspection{}, err
	}
	logger := logging.Discard(cfg.Logger)
	var in Inspection
	switch b, err := os.ReadFile(filepath.Join(cfg.Dir, "node-id")); {
	case err == nil:
		in.NodeID = strings.TrimSpace(string(b))
	case !errors.Is(err, os.ErrNotExist):
		return Inspection{}, fmt.Errorf("ledger: inspect: %w", err)
	}
	if holds(filepath.Join(cfg.Dir, "raft")) || holds(filepath.Join(cfg.Dir, "snapshots")) {
		if err := inspectRaft(&cfg, in.NodeID, &in); err != nil {
			return Inspection{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return Inspection{}, err
	}
	if holds(filepath.Join(cfg.Dir, "state")) {
		db, err := openState(&cfg, logger)
		if err != nil {
			return Inspection{}, fmt.Errorf("ledger: inspect %s: %w", cfg.Dir, err)
		}
		f := &fsm{db: db, logger: logger}
		err = f.view(func(r *reader, m meta) error {
			in.Size, in.Root = m.Size, m.Root
			if fn == nil {
				return nil
			}
			return fn(&View{r: r, m: m})
		})
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("ledger: inspect: close state: %w", cerr)
		}
		if err != nil {
			return Inspection{}, err
		}
	}
	return in, nil
}

// holds reports whether dir exists and has at least one entry.
func holds(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}

// inspectRaft reads the Raft state in cfg.Dir: whether there is one, and
// its latest configuration, through hashicorp/raft's own reading of the
// log and snapshots (GetConfiguration, which starts nothing), without
// restoring any snapshot.
func inspectRaft(cfg *Config, id string, in *Inspection) error {
	logger := logging.Discard(cfg.Logger)
	var logs *raftbadger.Store
	if holds(filepath.Join(cfg.Dir, "raft")) {
		var err error
		logs, err = raftbadger.Open(filepath.Join(cfg.Dir, "raft"), raftbadger.Config{
			Logger:       logger.With("db", "raft"),
			MemTableSize: cfg.MemTableSize,
		})
		if err != nil {
			return fmt.Errorf("ledger: inspect %s: %w", cfg.Dir, err)
		}
		defer logs.Close()
	}
	hclogger := logging.HCLog(logger, "raft")
	var snaps raft.SnapshotStore = raft.NewInmemSnapshotStore()
	if holds(filepath.Join(cfg.Dir, "snapshots")) {
		fs, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.SnapshotRetain, hclogger)
		if err != nil {
			return fmt.Errorf("ledger: inspect snapshots: %w", err)
		}
		snaps = fs
	}
	// Snapshots without a Raft log: an empty log beside them.
	mem := raft.NewInmemStore()
	var (
		logStore    raft.LogStore    = mem
		stableStore raft.StableStore = mem
	)
	if logs != nil {
		logStore, stableStore = logs, logs
	}
	existing, err := raft.HasExistingState(logStore, stableStore, snaps)
	if err != nil {
		return fmt.Errorf("ledger: inspect: %w", err)
	}
	if !existing {
		return nil
	}
	in.RaftState = true
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	if id == "" {
		rc.LocalID = "inspect"
	}
	rc.Logger = hclogger
	rc.NoSnapshotRestoreOnStart = true
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	conf, err := raft.GetConfiguration(rc, inertFSM{}, logStore, stableStore, snaps, trans)
	if err != nil {
		return fmt.Errorf("ledger: inspect the cluster configuration: %w", err)
	}
	for _, s := range conf.Servers {
		in.Servers = append(in.Servers, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return nil
}

// inertFSM is the FSM GetConfiguration needs and never calls: it starts
// nothing, and restores no snapshot (NoSnapshotRestoreOnStart).
type inertFSM struct{}

func (inertFSM) Apply(*raft.Log) any { return nil }
func (inertFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("ledger: inspect takes no snapshot")
}
func (inertFSM) Restore(rc io.ReadCloser) error { return rc.Close() }
