package server

import (
	"context"
	"sort"
	"sync"
	"time"

	"coapp.coop/coapp/api"
)

// ErasureHere reports this node's progress on the erasure at Raft index
// index.
func (s *Service) ErasureHere(index uint64) api.NodeErasure {
	st := s.ledger.PurgeStatus()
	ne := api.NodeErasure{
		Node:     s.ledger.ID(),
		Erased:   st.Destroyed >= index,
		Purged:   st.Purged >= index,
		Verified: st.Verified >= index,
		Pending:  st.Pending, PendingSince: st.Since, Error: st.Error,
	}
	if ne.Purged {
		ne.PurgedAt = st.PurgedAt
	}
	if ne.Verified {
		ne.VerifiedAt = st.VerifiedAt
	}
	return ne
}

// Erasure asks every node of the cluster for its progress on the erasure
// at Raft index index, in parallel and briefly (2 s): a node that does not
// answer is reported unreachable.
func (s *Service) Erasure(ctx context.Context, c api.Caller, index uint64) (api.ErasureStatus, error) {
	st, err := s.ledger.Status()
	if err != nil {
		return api.ErasureStatus{}, Translate(err)
	}
	out := api.ErasureStatus{Index: index, Nodes: make([]api.NodeErasure, len(st.Servers))}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, sv := range st.Servers {
		out.Nodes[i] = api.NodeErasure{Node: sv.ID, Unreachable: true}
		if sv.ID == st.ID {
			out.Nodes[i] = s.ErasureHere(index)
			continue
		}
		known, ok := s.state.Node(sv.ID)
		if !ok || known.HTTPAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := c.Token
			if token == "" {
				token = s.forwardToken()
			}
			if remote, err := s.dial(known.HTTPAddr, token, "").ErasureStatus(ctx, index, true); err == nil && len(remote.Nodes) == 1 {
				out.Nodes[i] = remote.Nodes[0]
			}
		}()
	}
	wg.Wait()
	sort.Slice(out.Nodes, func(a, b int) bool { return out.Nodes[a].Node < out.Nodes[b].Node })
	out.Done = len(out.Nodes) > 0
	for _, n := range out.Nodes {
		out.Done = out.Done && n.Verified
	}
	return out, nil
}
