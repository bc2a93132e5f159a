package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// Server is one member of the Raft cluster.
type Server struct {
	ID     string
	Addr   string
	Voter  bool
	Leader bool
}

// Status is this node's view of the cluster and of its own progress.
type Status struct {
	ID           string
	Addr         string
	State        string // "Leader", "Follower", "Candidate" or "Shutdown"
	LeaderID     string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64 // Raft index applied to the state
	Size         uint64 // entries in the log as applied here
	// LastContact is when a follower last heard from the leader; zero on
	// the leader.
	LastContact time.Time
	Servers     []Server
}

// Status returns this node's view of the cluster.
func (l *Ledger) Status() (Status, error) {
	if l.closed.Load() {
		return Status{}, ErrClosed
	}
	_, leader := l.raft.LeaderWithID()
	m, _ := l.fsm.state()
	st := Status{
		ID:           l.cfg.NodeID,
		Addr:         l.Addr(),
		State:        l.raft.State().String(),
		LeaderID:     string(leader),
		Term:         l.raft.CurrentTerm(),
		CommitIndex:  l.raft.CommitIndex(),
		AppliedIndex: l.raft.AppliedIndex(),
		Size:         m.Size,
	}
	if st.State != raft.Leader.String() {
		st.LastContact = l.raft.LastContact()
	}
	f := l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return st, l.raftErr(err)
	}
	for _, s := range f.Configuration().Servers {
		st.Servers = append(st.Servers, Server{
			ID:     string(s.ID),
			Addr:   string(s.Address),
			Voter:  s.Suffrage == raft.Voter,
			Leader: s.ID == leader,
		})
	}
	return st, nil
}

// AddVoter adds a voting node to the cluster, or updates its address. It
// must be called on the leader; it returns once the change is committed.
func (l *Ledger) AddVoter(ctx context.Context, id, addr string) error {
	if l.raft.State() != raft.Leader {
		return l.notLeader()
	}
	return l.await(ctx, l.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, l.cfg.ApplyTimeout))
}

// AddNonvoter adds a node that receives the log but does not vote (a read
// replica). It must be called on the leader.
func (l *Ledger) AddNonvoter(ctx context.Context, id, addr string) error {
	if l.raft.State() != raft.Leader {
		return l.notLeader()
	}
	return l.await(ctx, l.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, l.cfg.ApplyTimeout))
}

// RemoveServer removes a node from the cluster. It must be called on the
// leader.
func (l *Ledger) RemoveServer(ctx context.Context, id string) error {
	if l.raft.State() != raft.Leader {
		return l.notLeader()
	}
	return l.await(ctx, l.raft.RemoveServer(raft.ServerID(id), 0, l.cfg.ApplyTimeout))
}

// Snapshot asks Raft for a snapshot now and compacts the Raft log behind it
// (keeping TrailingLogs entries). It returns once the snapshot is on disk.
func (l *Ledger) Snapshot(ctx context.Context) error {
	if l.closed.Load() {
		return ErrClosed
	}
	err := l.await(ctx, l.raft.Snapshot())
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	return err
}

// IsLeader reports whether this node leads the cluster now: cheaper than
// Status for a check on every request.
func (l *Ledger) IsLeader() bool {
	return !l.closed.Load() && l.raft.State() == raft.Leader
}
