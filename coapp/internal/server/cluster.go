package server

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger"
)

// Status describes this node alone (GET /v1/status).
func (s *Service) Status() (api.NodeStatus, error) {
	st, err := s.ledger.Status()
	if err != nil {
		return api.NodeStatus{}, Translate(err)
	}
	ns := api.NodeStatus{ID: st.ID, RaftAddr: st.Addr, HTTPAddr: s.cfg.URL, State: st.State, AppliedIndex: st.AppliedIndex, Size: st.Size}
	for _, sv := range st.Servers {
		if sv.ID == st.ID {
			ns.Suffrage = suffrage(sv.Voter)
		}
	}
	if !st.LastContact.IsZero() {
		ns.LastContact = st.LastContact.UTC().Format(time.RFC3339Nano)
	}
	return ns, nil
}

func suffrage(voter bool) string {
	if voter {
		return "voter"
	}
	return "nonvoter"
}

// Cluster asks every node of the Raft configuration for its status, in
// parallel and briefly (2 s); a node that does not answer is
// "unreachable".
func (s *Service) Cluster(ctx context.Context, c api.Caller) (api.ClusterInfo, error) {
	st, err := s.ledger.Status()
	if err != nil {
		return api.ClusterInfo{}, Translate(err)
	}
	fed, _ := s.state.Federation()
	info := api.ClusterInfo{Federation: fed.Federation, Leader: st.LeaderID, Nodes: make([]api.NodeStatus, len(st.Servers))}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, sv := range st.Servers {
		known, _ := s.state.Node(sv.ID)
		base := api.NodeStatus{ID: sv.ID, RaftAddr: sv.Addr, HTTPAddr: known.HTTPAddr, Suffrage: suffrage(sv.Voter), State: "unreachable"}
		info.Nodes[i] = base
		if sv.ID == st.ID {
			if self, err := s.Status(); err == nil {
				info.Nodes[i] = self
			}
			continue
		}
		if known.HTTPAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if remote, err := s.dial(known.HTTPAddr, cmp.Or(c.Token, s.forwardToken()), "").Status(ctx); err == nil {
				remote.Suffrage = base.Suffrage
				info.Nodes[i] = remote
			}
		}()
	}
	wg.Wait()
	sort.Slice(info.Nodes, func(a, b int) bool { return info.Nodes[a].ID < info.Nodes[b].ID })
	return info, nil
}

// Join adds a node to the cluster (on the leader) and records its
// addresses in the ledger (an admin's act).
func (s *Service) Join(ctx context.Context, c api.Caller, req api.NodeInfo) (api.NodeInfo, error) {
	out, err := s.join(ctx, c, req)
	return out, Translate(err)
}

func (s *Service) join(ctx context.Context, c api.Caller, req api.NodeInfo) (api.NodeInfo, error) {
	switch {
	case req.ID == "":
		return api.NodeInfo{}, api.Invalid("id", "required")
	case req.RaftAddr == "":
		return api.NodeInfo{}, api.Invalid("raft_addr", "required")
	case !strings.HasPrefix(req.HTTPAddr, "http://") && !strings.HasPrefix(req.HTTPAddr, "https://"):
		return api.NodeInfo{}, api.Invalid("http_addr", "not an http:// or https:// URL")
	case req.Removed:
		return api.NodeInfo{}, api.Invalid("removed", "a joining node is not removed")
	}
	if !s.IsLeader() {
		l, err := s.leader(c)
		if err != nil {
			return api.NodeInfo{}, err
		}
		return l.Join(ctx, req)
	}
	var err error
	if req.Voter {
		err = s.ledger.AddVoter(ctx, req.ID, req.RaftAddr)
	} else {
		err = s.ledger.AddNonvoter(ctx, req.ID, req.RaftAddr)
	}
	if err != nil {
		return api.NodeInfo{}, err
	}
	if _, err := s.appendChecked(ctx, SystemEntry(format.KindNode, c.Member, time.Now().UTC(), req)); err != nil {
		return api.NodeInfo{}, err
	}
	s.log.Info("node joined", "id", req.ID, "raft", req.RaftAddr, "http", req.HTTPAddr, "voter", req.Voter)
	return req, nil
}

// RemoveNode removes a node from the cluster: a dead one, or one leaving,
// the leader included (it steps down once the change commits).
func (s *Service) RemoveNode(ctx context.Context, c api.Caller, id string) error {
	return Translate(s.removeNode(ctx, c, id))
}

func (s *Service) removeNode(ctx context.Context, c api.Caller, id string) error {
	if !s.IsLeader() {
		l, err := s.leader(c)
		if err != nil {
			return err
		}
		return l.RemoveNode(ctx, id)
	}
	if _, ok := s.server(id); !ok {
		return fmt.Errorf("%w: node %s", api.ErrNotFound, id)
	}
	// Record the removal first: once the leader has removed itself it can
	// write nothing more.
	if _, err := s.appendChecked(ctx, SystemEntry(format.KindNode, c.Member, time.Now().UTC(), api.NodeInfo{ID: id, Removed: true})); err != nil {
		return err
	}
	if err := s.ledger.RemoveServer(ctx, id); err != nil {
		return err
	}
	s.log.Info("node removed", "id", id)
	return nil
}

// PromoteNode makes a non-voter a voter.
func (s *Service) PromoteNode(ctx context.Context, c api.Caller, id string) (api.NodeInfo, error) {
	out, err := s.promoteNode(ctx, c, id)
	return out, Translate(err)
}

func (s *Service) promoteNode(ctx context.Context, c api.Caller, id string) (api.NodeInfo, error) {
	if !s.IsLeader() {
		l, err := s.leader(c)
		if err != nil {
			return api.NodeInfo{}, err
		}
		return l.PromoteNode(ctx, id)
	}
	found, ok := s.server(id)
	if !ok {
		return api.NodeInfo{}, fmt.Errorf("%w: node %s", api.ErrNotFound, id)
	}
	if err := s.ledger.AddVoter(ctx, id, found.Addr); err != nil {
		return api.NodeInfo{}, err
	}
	info, _ := s.state.Node(id)
	info.ID, info.RaftAddr, info.Voter = id, found.Addr, true
	if _, err := s.appendChecked(ctx, SystemEntry(format.KindNode, c.Member, time.Now().UTC(), info)); err != nil {
		return api.NodeInfo{}, err
	}
	return info, nil
}

// server returns a server of the Raft configuration.
func (s *Service) server(id string) (ledger.Server, bool) {
	st, err := s.ledger.Status()
	if err != nil {
		return ledger.Server{}, false
	}
	for _, sv := range st.Servers {
		if sv.ID == id {
			return sv, true
		}
	}
	return ledger.Server{}, false
}
