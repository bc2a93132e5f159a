package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"coapp.coop/internal/logging"
	"coapp.coop/ledger/raftbadger"
)

// Ledger is a replicated, tamper-evident, append-only log: one node of a
// Raft cluster (of one node by default) whose state is a Merkle tree of
// entries in Badger. It is safe for concurrent use.
type Ledger struct {
	cfg    Config
	logger *slog.Logger

	raft    *raft.Raft
	trans   *raft.NetworkTransport
	logs    *raftbadger.Store
	stateDB *badger.DB
	fsm     *fsm

	reqs chan *appendReq // buffered; sent to under lifeMu
	// lifeMu is held for reading by every Read and every send to reqs, and
	// for writing by Close while it marks the ledger closed: Close waits
	// for reads in progress, and nothing is queued after it.
	lifeMu   sync.RWMutex
	inflight chan *pending
	sem      chan struct{} // one token per command in flight
	closing  chan struct{}
	closed   atomic.Bool
	done     sync.WaitGroup // batcher, responder, observer

	observer  *raft.Observer
	leaders   broadcast     // notified on every leader change
	readyTerm atomic.Uint64 // term in which this leader has applied a barrier

	snaps       *raft.FileSnapshotStore
	purged      atomic.Uint64 // Raft index through which destroyed keys are purged
	purgeDone   broadcast     // notified when a purge is verified
	purgeRounds atomic.Uint64 // purge rounds run since Open

	// The purge's status (purge.go), guarded by purgeMu.
	purgeMu      sync.Mutex
	purgeRec     purgeRecord
	purgeErr     string
	purgeFound   []string
	pendingSince map[uint64]time.Time
	pendingCount int

	closeOnce sync.Once
	closeErr  error
}

// Open opens the ledger in cfg.Dir, creating it if needed. On first start
// without cfg.Join it bootstraps a cluster whose sole voter is this node;
// later starts reopen what is there. When this node is the only voter, Open
// returns once it leads, so the ledger is ready for Append; ctx bounds that
// wait.
func Open(ctx context.Context, cfg Config) (*Ledger, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := logging.Discard(cfg.Logger)
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	id, err := nodeID(cfg.Dir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	cfg.NodeID = id
	l := &Ledger{
		cfg:      cfg,
		logger:   logger.With("node", id),
		reqs:     make(chan *appendReq, 4096),
		inflight: make(chan *pending, maxInflight),
		sem:      make(chan struct{}, maxInflight),
		closing:  make(chan struct{}),
	}
	if err := l.open(ctx); err != nil {
		_ = l.Close(context.Background())
		return nil, err
	}
	return l, nil
}

func (l *Ledger) open(ctx context.Context) error {
	cfg := &l.cfg
	var err error
	l.logs, err = raftbadger.Open(filepath.Join(cfg.Dir, "raft"), raftbadger.Config{
		Logger:       l.logger.With("db", "raft"),
		MemTableSize: cfg.MemTableSize,
	})
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if l.stateDB, err = openState(cfg, l.logger); err != nil {
		return err
	}
	if l.fsm, err = newFSM(l.stateDB, l.logger, cfg.txnBudget()); err != nil {
		return err
	}
	// A snapshot cut short by a crash leaves a directory ending in .tmp,
	// which the snapshot store never reads nor removes; it may hold a key
	// destroyed since.
	if tmps, err := filepath.Glob(filepath.Join(cfg.Dir, "snapshots", "*.tmp")); err == nil {
		for _, t := range tmps {
			if err := os.RemoveAll(t); err != nil {
				return fmt.Errorf("ledger: remove an unfinished snapshot: %w", err)
			}
		}
	}
	hclogger := logging.HCLog(l.logger, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.SnapshotRetain, hclogger) // in Dir/snapshots
	if err != nil {
		return fmt.Errorf("ledger: snapshots: %w", err)
	}
	l.snaps = snaps
	if l.trans, err = newTransport(cfg, hclogger); err != nil {
		return err
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hclogger
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.NoLegacyTelemetry = true
	if err := raft.ValidateConfig(rc); err != nil {
		return &ValidationError{Entry: -1, Field: "Config", Reason: err.Error()}
	}
	logStore, err := raft.NewLogCache(512, l.logs)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	existing, err := raft.HasExistingState(logStore, l.logs, snaps)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if !existing && !cfg.Join {
		boot := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter,
			ID:       rc.LocalID,
			Address:  l.trans.LocalAddr(),
		}}}
		if err := raft.BootstrapCluster(rc, logStore, l.logs, snaps, l.trans, boot); err != nil {
			return fmt.Errorf("ledger: bootstrap: %w", err)
		}
		l.logger.Info("bootstrapped a new cluster", "addr", l.trans.LocalAddr())
	}
	if l.raft, err = raft.NewRaft(rc, l.fsm, logStore, l.logs, snaps, l.trans); err != nil {
		return fmt.Errorf("ledger: start raft: %w", err)
	}
	l.purgeRec = readPurged(cfg.Dir)
	l.purged.Store(l.purgeRec.Purged)
	l.startObserver()
	l.done.Add(3)
	go l.batcher()
	go l.responder()
	go l.purger()
	if l.soleVoter() {
		// Lead, then apply everything in the log before returning, so that
		// the first read after Open sees every entry written before.
		if err := l.WaitLeader(ctx); err != nil {
			return err
		}
		if err := l.barrier(ctx); err != nil {
			return err
		}
	}
	return nil
}

// stateValueLogFileSize is the size of the state's value-log files.
const stateValueLogFileSize = 128 << 20

// openState opens the state database in cfg.Dir/state.
func openState(cfg *Config, logger *slog.Logger) (*badger.DB, error) {
	opts := badger.DefaultOptions(filepath.Join(cfg.Dir, "state")).
		WithLogger(logging.Badger(logger.With("db", "state"))).
		WithMemTableSize(cfg.MemTableSize).
		WithNumMemtables(3).
		WithBlockCacheSize(cfg.BlockCacheSize).
		WithCompression(options.None).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithDetectConflicts(false).
		WithNumCompactors(2).
		WithMetricsEnabled(false).
		// Chunks of entries (tens of KiB under load) go to the value log,
		// written once; ids, tree nodes and meta stay in the LSM tree.
		WithValueThreshold(1 << 10).
		// Badger maps each value-log file at its full size (1 GiB by
		// default), sparse on disk; smaller files keep a node's apparent
		// size near its real one and let garbage collection, which never
		// rewrites the newest file, reach a value sooner.
		WithValueLogFileSize(stateValueLogFileSize)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("ledger: open state: %w", err)
	}
	return db, nil
}

// newTransport listens for Raft traffic on cfg.BindAddr, or on the
// configured stream layer.
func newTransport(cfg *Config, logger hclog.Logger) (*raft.NetworkTransport, error) {
	tc := &raft.NetworkTransportConfig{MaxPool: 3, Timeout: 10 * time.Second, Logger: logger}
	if cfg.StreamLayer != nil {
		tc.Stream = cfg.StreamLayer
		return raft.NewNetworkTransportWithConfig(tc), nil
	}
	var advertise net.Addr
	if cfg.AdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
		if err != nil {
			return nil, &ValidationError{Entry: -1, Field: "Config.AdvertiseAddr", Reason: err.Error()}
		}
		advertise = a
	}
	t, err := raft.NewTCPTransportWithConfig(cfg.BindAddr, advertise, tc)
	if err != nil {
		return nil, fmt.Errorf("ledger: raft transport on %s: %w", cfg.BindAddr, err)
	}
	return t, nil
}

// nodeID returns the node's id: want when given (and consistent with the
// one kept in dir), else the kept one, else a new one written to dir.
func nodeID(dir, want string) (string, error) {
	path := filepath.Join(dir, "node-id")
	kept, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(kept))
		if want != "" && want != id {
			return "", &ValidationError{Entry: -1, Field: "Config.NodeID",
				Reason: fmt.Sprintf("%q differs from %q kept in %s", want, id, path)}
		}
		return id, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("ledger: %w", err)
	}
	id := want
	if id == "" {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("ledger: node id: %w", err)
		}
		id = "node-" + hex.EncodeToString(b[:])
	}
	if err := writeFileSync(path, []byte(id+"\n")); err != nil {
		return "", err
	}
	return id, nil
}

func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// soleVoter reports whether this node is the only voter of its cluster.
func (l *Ledger) soleVoter() bool {
	f := l.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	servers := f.Configuration().Servers
	voters := 0
	self := false
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
			self = self || s.ID == raft.ServerID(l.cfg.NodeID)
		}
	}
	return voters == 1 && self
}

// startObserver follows leader changes, so that waiters wake up at once.
func (l *Ledger) startObserver() {
	ch := make(chan raft.Observation, 16)
	l.observer = raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	l.raft.RegisterObserver(l.observer)
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		for {
			select {
			case <-ch:
				l.leaders.notify()
			case <-l.closing:
				return
			}
		}
	}()
}

// WaitLeader returns once a leader is known (this node or another), or
// with ctx's error.
func (l *Ledger) WaitLeader(ctx context.Context) error {
	for {
		_, ch := l.leaders.wait()
		if _, id := l.raft.LeaderWithID(); id != "" {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("ledger: waiting for a leader: %w", ctx.Err())
		case <-l.closing:
			return ErrClosed
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// notLeader describes the current leader for a caller that needs it.
func (l *Ledger) notLeader() error {
	addr, id := l.raft.LeaderWithID()
	return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
}

// Close stops accepting calls, waits for appends already proposed to finish
// (until ctx is done), then shuts Raft down and closes the stores. Appends
// not yet proposed get ErrClosed. It is safe to call more than once.
func (l *Ledger) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.lifeMu.Lock()
		l.closed.Store(true)
		close(l.closing)
		l.lifeMu.Unlock()
		waited := make(chan struct{})
		go func() { l.done.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-ctx.Done():
			l.closeErr = fmt.Errorf("ledger: close: %w", ctx.Err())
		}
		if err := l.release(); err != nil && l.closeErr == nil {
			l.closeErr = err
		}
		<-waited
	})
	return l.closeErr
}

// release shuts Raft down and closes the transport and stores, whatever
// was opened.
func (l *Ledger) release() error {
	var errs []error
	if l.raft != nil {
		if l.observer != nil {
			l.raft.DeregisterObserver(l.observer)
		}
		if err := l.raft.Shutdown().Error(); err != nil {
			errs = append(errs, err)
		}
	}
	if l.trans != nil {
		errs = append(errs, l.trans.Close())
	}
	if l.stateDB != nil {
		errs = append(errs, l.stateDB.Close())
	}
	if l.logs != nil {
		errs = append(errs, l.logs.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ledger: close: %w", err)
	}
	return nil
}

// ID returns this node's Raft server id.
func (l *Ledger) ID() string { return l.cfg.NodeID }

// Addr returns the Raft address this node advertises.
func (l *Ledger) Addr() string { return string(l.trans.LocalAddr()) }

// MaxBatchBytes returns the most bytes one Append call may carry, entries
// and key requirements encoded (Config.MaxBatchBytes).
func (l *Ledger) MaxBatchBytes() int { return l.cfg.MaxBatchBytes }
