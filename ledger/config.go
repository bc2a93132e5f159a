package ledger

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// Config configures a ledger. DefaultConfig returns one with every default
// filled in; Open also fills any zero field with its default, so a Config
// with only Dir set opens a single-node ledger.
type Config struct {
	// Dir holds everything the node stores: raft/ (the Raft log and stable
	// store), state/ (the ledger state), snapshots/ and node-id. Required.
	Dir string

	// NodeID names this node in the Raft cluster. Default: the id kept in
	// Dir/node-id, or on first start a new random one written there. An ID
	// that differs from the kept one is refused.
	NodeID string

	// BindAddr is the TCP address the Raft transport listens on.
	// Default: "127.0.0.1:7401". Port 0 picks a free port.
	BindAddr string

	// AdvertiseAddr is the address other nodes reach this one at.
	// Default: the address bound.
	AdvertiseAddr string

	// StreamLayer, when set, carries Raft traffic instead of plain TCP on
	// BindAddr (for mutual TLS); the ledger closes it on Close.
	StreamLayer raft.StreamLayer

	// Join, when true, starts the node without bootstrapping a cluster of
	// its own: it waits to be added to an existing cluster by its leader.
	// Default false: an empty Dir bootstraps a cluster whose sole voter is
	// this node.
	Join bool

	// Logger receives the ledger's, Raft's and Badger's logs.
	// Default: discard.
	Logger *slog.Logger

	// HeartbeatTimeout and ElectionTimeout bound how long a follower waits
	// for the leader before an election. Default: 1s each.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration

	// LeaderLeaseTimeout is how long a leader stays leader without hearing
	// from a quorum. Default: 500ms; at most HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration

	// CommitTimeout is the longest a follower waits to learn of a commit
	// when no new entries arrive. Default: 50ms.
	CommitTimeout time.Duration

	// SnapshotInterval is how often Raft checks whether to snapshot, and
	// SnapshotThreshold how many new Raft log entries trigger one.
	// Defaults: 2m and 8192.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64

	// TrailingLogs is how many Raft log entries a snapshot leaves behind,
	// so that a lagging follower catches up from the log rather than a new
	// snapshot. Default: 10240 (1.25 x SnapshotThreshold); Open refuses
	// a value below SnapshotThreshold.
	TrailingLogs uint64

	// SnapshotRetain is how many snapshots are kept on disk. Default: 2.
	SnapshotRetain int

	// MaxAppendEntries is how many Raft log entries the leader writes or
	// sends at once. Default: 256; at most 1024.
	MaxAppendEntries int

	// ApplyTimeout bounds how long a command waits to enter Raft's queue.
	// Default: 10s.
	ApplyTimeout time.Duration

	// MaxBatchBytes is the largest Raft command in bytes. Concurrent
	// Appends are grouped into commands up to this size; one Append larger
	// than it is refused with ErrTooLarge. Default and maximum: 1 MiB less
	// 16 KiB.
	MaxBatchBytes int

	// MaxEntryBytes is the largest payload in bytes. Default: 256 KiB.
	MaxEntryBytes int

	// MemTableSize is the size in bytes of a Badger memtable, for the state
	// and the Raft log. A Badger transaction holds at most about 15% of
	// it, which bounds MaxBatchBytes. Default: 64 MiB.
	MemTableSize int64

	// BlockCacheSize is the size in bytes of the state's Badger block
	// cache. Default: 64 MiB.
	BlockCacheSize int64

	// PurgeRetry is how long the purge of destroyed keys waits before it
	// tries again what is left to do (a snapshot Raft could not take yet,
	// a check that found a value). Default: 5s.
	PurgeRetry time.Duration

	// PurgeDelay is how long the purge waits, once it learns of a
	// committed erasure, before it starts a round, so that one round (a
	// snapshot, a forced compaction of both stores, a scan of the files)
	// covers every erasure committed meanwhile. Each node adds up to half
	// as much again at random, so that the replicas' rounds rarely stall
	// their writes at once. Default: 10s; negative means no delay.
	PurgeDelay time.Duration
}

// DefaultConfig returns a Config for a single-node ledger in dir, with every
// default filled in.
func DefaultConfig(dir string) Config {
	c := Config{Dir: dir}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1:7401"
	}
	def(&c.HeartbeatTimeout, time.Second)
	def(&c.ElectionTimeout, time.Second)
	def(&c.LeaderLeaseTimeout, 500*time.Millisecond)
	def(&c.CommitTimeout, 50*time.Millisecond)
	def(&c.SnapshotInterval, 2*time.Minute)
	def(&c.ApplyTimeout, 10*time.Second)
	def(&c.PurgeRetry, 5*time.Second)
	def(&c.PurgeDelay, 10*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = c.SnapshotThreshold + c.SnapshotThreshold/4
	}
	if c.SnapshotRetain == 0 {
		c.SnapshotRetain = 2
	}
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = 256
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = maxBatchBytes
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = 256 << 10
	}
	if c.MemTableSize == 0 {
		c.MemTableSize = 64 << 20
	}
	if c.BlockCacheSize == 0 {
		c.BlockCacheSize = 64 << 20
	}
}

// maxBatchBytes is the largest Raft command: 1 MiB less room for the Raft
// log's own fields, so that a log is stored inline (see validate).
const maxBatchBytes = 1<<20 - 16<<10

// txnBudget is the share of a Badger transaction the FSM fills before it
// commits and starts another, between Raft logs: a third of Badger's limit
// (15% of a memtable), leaving room for the estimate's slack.
func (c *Config) txnBudget() int64 { return c.MemTableSize * 15 / 100 / 3 }

func (c *Config) validate() error {
	bad := func(field, format string, args ...any) error {
		return &ValidationError{Entry: -1, Field: "Config." + field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case c.Dir == "":
		return bad("Dir", "required")
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return bad("LeaderLeaseTimeout", "%v is above HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.TrailingLogs < c.SnapshotThreshold:
		return bad("TrailingLogs", "%d is below SnapshotThreshold %d: lagging followers would loop on snapshots", c.TrailingLogs, c.SnapshotThreshold)
	case c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024:
		return bad("MaxAppendEntries", "%d is outside 1..1024", c.MaxAppendEntries)
	case c.MaxEntryBytes < 1:
		return bad("MaxEntryBytes", "must be positive")
	case c.MaxBatchBytes < c.MaxEntryBytes:
		return bad("MaxBatchBytes", "%d is below MaxEntryBytes %d", c.MaxBatchBytes, c.MaxEntryBytes)
	case c.MaxBatchBytes > maxBatchBytes:
		// A command stays inline in the Raft store's tables (below Badger's
		// largest value threshold, 1 MiB), never in its value log, whose
		// head file no collection rewrites: so that a purge reaches every
		// copy of the key material it carried.
		return bad("MaxBatchBytes", "%d is above %d", c.MaxBatchBytes, maxBatchBytes)
	case int64(c.MaxBatchBytes)*3 > c.txnBudget():
		// One command's writes (entries, ids, nodes) must fit in one
		// Badger transaction with room to spare.
		return bad("MaxBatchBytes", "%d is too large for MemTableSize %d (at most %d)", c.MaxBatchBytes, c.MemTableSize, c.txnBudget()/3)
	}
	return nil
}
