// Package raftfloor runs raw hashicorp/raft with a trivial state machine on
// the ledger's own Raft log store and TCP transport: the floor that the
// ledger's and the node's benchmarks compare themselves with, measured in
// the same run on the same machine.
package raftfloor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"coapp.coop/internal/logging"
	"coapp.coop/ledger/raftbadger"
)

// Cluster is a Raft cluster of trivial state machines on loopback.
type Cluster struct {
	nodes []*node
}

type node struct {
	raft  *raft.Raft
	store *raftbadger.Store
	trans *raft.NetworkTransport
}

// Options tunes the floor. Tuned applies the ledger's Raft settings
// (MaxAppendEntries 256 and a buffered apply channel); otherwise Raft's
// defaults apply.
type Options struct {
	Nodes int
	Tuned bool
	// MemTableSize of each node's Badger store; 0 for raftbadger's default.
	MemTableSize int64
}

// Start starts a cluster of opts.Nodes nodes with their stores under dir,
// and returns once it has a leader.
func Start(ctx context.Context, dir string, opts Options) (*Cluster, error) {
	if opts.Nodes < 1 {
		opts.Nodes = 1
	}
	c := &Cluster{}
	logger := logging.HCLog(logging.Discard(nil), "raft")
	var servers []raft.Server
	configs := make([]*raft.Config, opts.Nodes)
	for i := 0; i < opts.Nodes; i++ {
		store, err := raftbadger.Open(filepath.Join(dir, fmt.Sprintf("floor-%d", i)), raftbadger.Config{MemTableSize: opts.MemTableSize})
		if err != nil {
			c.Close()
			return nil, err
		}
		trans, err := raft.NewTCPTransportWithConfig("127.0.0.1:0", nil, &raft.NetworkTransportConfig{MaxPool: 3, Timeout: 10 * time.Second, Logger: logger})
		if err != nil {
			_ = store.Close()
			c.Close()
			return nil, err
		}
		rc := raft.DefaultConfig()
		rc.LocalID = raft.ServerID(fmt.Sprintf("floor-%d", i))
		rc.Logger = logger
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
		rc.NoLegacyTelemetry = true
		if opts.Tuned {
			rc.MaxAppendEntries = 256
			rc.BatchApplyCh = true
		}
		configs[i] = rc
		c.nodes = append(c.nodes, &node{store: store, trans: trans})
		servers = append(servers, raft.Server{ID: rc.LocalID, Address: trans.LocalAddr()})
	}
	for i, n := range c.nodes {
		logs, err := raft.NewLogCache(512, n.store)
		if err != nil {
			c.Close()
			return nil, err
		}
		snaps := raft.NewDiscardSnapshotStore()
		if i == 0 {
			if err := raft.BootstrapCluster(configs[i], logs, n.store, snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
				c.Close()
				return nil, err
			}
		}
		if n.raft, err = raft.NewRaft(configs[i], trivialFSM{}, logs, n.store, snaps, n.trans); err != nil {
			c.Close()
			return nil, err
		}
	}
	for c.Leader() == nil {
		select {
		case <-ctx.Done():
			c.Close()
			return nil, fmt.Errorf("raftfloor: no leader: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return c, nil
}

// Leader returns the leader's Raft, or nil.
func (c *Cluster) Leader() *raft.Raft {
	for _, n := range c.nodes {
		if n.raft != nil && n.raft.State() == raft.Leader {
			return n.raft
		}
	}
	return nil
}

// Apply applies one command through the leader and waits for it.
func (c *Cluster) Apply(cmd []byte) error {
	r := c.Leader()
	if r == nil {
		return errors.New("raftfloor: no leader")
	}
	return r.Apply(cmd, 10*time.Second).Error()
}

// Close stops every node.
func (c *Cluster) Close() {
	for _, n := range c.nodes {
		if n.raft != nil {
			_ = n.raft.Shutdown().Error()
		}
		if n.trans != nil {
			_ = n.trans.Close()
		}
		if n.store != nil {
			_ = n.store.Close()
		}
	}
}

// trivialFSM applies nothing.
type trivialFSM struct{}

func (trivialFSM) Apply(*raft.Log) any                 { return nil }
func (trivialFSM) Snapshot() (raft.FSMSnapshot, error) { return trivialSnapshot{}, nil }
func (trivialFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type trivialSnapshot struct{}

func (trivialSnapshot) Persist(s raft.SnapshotSink) error { return s.Close() }
func (trivialSnapshot) Release()                          {}
