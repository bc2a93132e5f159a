package coapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"coapp.coop/ledger"
)

// NodeStatus is one node as GET /v1/cluster reports it.
type NodeStatus struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	HTTPAddr     string `json:"http_addr"`
	Suffrage     string `json:"suffrage"` // "voter" or "nonvoter"
	State        string `json:"state"`    // "Leader", "Follower", "Candidate", or "unreachable"
	LastContact  string `json:"last_contact,omitempty"`
	AppliedIndex uint64 `json:"applied_index"`
	Size         uint64 `json:"size"`
}

// ClusterInfo is the answer of GET /v1/cluster.
type ClusterInfo struct {
	Federation string       `json:"federation"`
	Leader     string       `json:"leader"`
	Nodes      []NodeStatus `json:"nodes"`
}

// status describes this node alone (GET /v1/status).
func (n *Node) status() (NodeStatus, error) {
	st, err := n.ledger.Status()
	if err != nil {
		return NodeStatus{}, err
	}
	ns := NodeStatus{ID: st.ID, RaftAddr: st.Addr, HTTPAddr: n.httpURL, State: st.State, AppliedIndex: st.AppliedIndex, Size: st.Size}
	for _, s := range st.Servers {
		if s.ID == st.ID {
			ns.Suffrage = suffrage(s.Voter)
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

func (n *Node) handleStatus(w http.ResponseWriter, _ *http.Request, _ caller) error {
	ns, err := n.status()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ns)
}

// handleCluster asks every node of the Raft configuration for its status,
// in parallel and briefly; a node that does not answer is "unreachable".
func (n *Node) handleCluster(w http.ResponseWriter, r *http.Request, _ caller) error {
	st, err := n.ledger.Status()
	if err != nil {
		return err
	}
	fed, _ := n.view.federation()
	info := ClusterInfo{Federation: fed.Federation, Leader: st.LeaderID, Nodes: make([]NodeStatus, len(st.Servers))}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, s := range st.Servers {
		known, _ := n.view.node(s.ID)
		base := NodeStatus{ID: s.ID, RaftAddr: s.Addr, HTTPAddr: known.HTTPAddr, Suffrage: suffrage(s.Voter), State: "unreachable"}
		info.Nodes[i] = base
		if s.ID == st.ID {
			if self, err := n.status(); err == nil {
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
			var remote NodeStatus
			if err := n.getJSON(ctx, known.HTTPAddr+"/v1/status", r.Header.Get("Authorization"), &remote); err == nil {
				remote.Suffrage = base.Suffrage
				info.Nodes[i] = remote
			}
		}()
	}
	wg.Wait()
	sort.Slice(info.Nodes, func(a, b int) bool { return info.Nodes[a].ID < info.Nodes[b].ID })
	return writeJSON(w, http.StatusOK, info)
}

func (n *Node) getJSON(ctx context.Context, url, auth string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", auth)
	resp, err := n.peer.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeAPIError(resp)
	}
	return decodeJSON(resp.Body, v)
}

// handleJoin adds a node to the cluster (on the leader) and records its
// addresses in the ledger.
func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if n.needsLeader() {
		return n.forward(w, r, body)
	}
	var req joinRequest
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.ID == "" {
		return invalid("id", "required")
	}
	if req.RaftAddr == "" {
		return invalid("raft_addr", "required")
	}
	if !strings.HasPrefix(req.HTTPAddr, "http://") && !strings.HasPrefix(req.HTTPAddr, "https://") {
		return invalid("http_addr", "not an http:// or https:// URL")
	}
	if req.Voter {
		err = n.ledger.AddVoter(r.Context(), req.ID, req.RaftAddr)
	} else {
		err = n.ledger.AddNonvoter(r.Context(), req.ID, req.RaftAddr)
	}
	if err != nil {
		return err
	}
	if _, err := n.ledger.Append(r.Context(), systemEntry(KindNode, c.member, time.Now().UTC(), req.NodeInfo)); err != nil {
		return err
	}
	n.logger.Info("node joined", "id", req.ID, "raft", req.RaftAddr, "http", req.HTTPAddr, "voter", req.Voter)
	return writeJSON(w, http.StatusOK, req.NodeInfo)
}

// handleRemoveNode removes a node from the cluster: a dead one, or one
// leaving, the leader included (it steps down once the change commits).
func (n *Node) handleRemoveNode(w http.ResponseWriter, r *http.Request, c caller) error {
	if n.needsLeader() {
		return n.forward(w, r, nil)
	}
	id := r.PathValue("id")
	if !n.inConfig(id) {
		return fmt.Errorf("%w: node %s", ErrNotFound, id)
	}
	// Record the removal first: once the leader has removed itself it can
	// write nothing more.
	if _, err := n.ledger.Append(r.Context(), systemEntry(KindNode, c.member, time.Now().UTC(), NodeInfo{ID: id, Removed: true})); err != nil {
		return err
	}
	if err := n.ledger.RemoveServer(r.Context(), id); err != nil {
		return err
	}
	n.logger.Info("node removed", "id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handlePromote makes a non-voter a voter.
func (n *Node) handlePromote(w http.ResponseWriter, r *http.Request, c caller) error {
	if n.needsLeader() {
		return n.forward(w, r, nil)
	}
	id := r.PathValue("id")
	st, err := n.ledger.Status()
	if err != nil {
		return err
	}
	var found *ledger.Server
	for i := range st.Servers {
		if st.Servers[i].ID == id {
			found = &st.Servers[i]
		}
	}
	if found == nil {
		return fmt.Errorf("%w: node %s", ErrNotFound, id)
	}
	if err := n.ledger.AddVoter(r.Context(), id, found.Addr); err != nil {
		return err
	}
	info, _ := n.view.node(id)
	info.ID, info.RaftAddr, info.Voter = id, found.Addr, true
	if _, err := n.ledger.Append(r.Context(), systemEntry(KindNode, c.member, time.Now().UTC(), info)); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

func (n *Node) inConfig(id string) bool {
	st, err := n.ledger.Status()
	if err != nil {
		return false
	}
	for _, s := range st.Servers {
		if s.ID == id {
			return true
		}
	}
	return false
}

// tokenRequest is the body of POST /v1/tokens.
type tokenRequest struct {
	Member string `json:"member"`
	Admin  bool   `json:"admin"`
}

// TokenResponse is the answer of POST /v1/tokens: the token, shown once.
type TokenResponse struct {
	ID     string `json:"id"`
	Token  string `json:"token"`
	Member string `json:"member"`
	Admin  bool   `json:"admin"`
}

func (n *Node) handleCreateToken(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if n.needsLeader() {
		return n.forward(w, r, body)
	}
	var req tokenRequest
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Member == "" || len(req.Member) > 64 {
		return invalid("member", "required, at most 64 characters")
	}
	token, op, err := newToken(req.Member, req.Admin)
	if err != nil {
		return err
	}
	if _, err := n.ledger.Append(r.Context(), systemEntry(KindToken, c.member, time.Now().UTC(), op)); err != nil {
		return err
	}
	n.awaitView(r.Context())
	return writeJSON(w, http.StatusCreated, TokenResponse{ID: op.ID, Token: token, Member: req.Member, Admin: req.Admin})
}

func (n *Node) handleRevokeToken(w http.ResponseWriter, r *http.Request, c caller) error {
	if n.needsLeader() {
		return n.forward(w, r, nil)
	}
	id := r.PathValue("id")
	if !n.view.hasToken(id) {
		return fmt.Errorf("%w: token %s", ErrNotFound, id)
	}
	if _, err := n.ledger.Append(r.Context(), systemEntry(KindToken, c.member, time.Now().UTC(), tokenOp{Op: "revoke", ID: id})); err != nil {
		return err
	}
	n.awaitView(r.Context())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// awaitView waits, briefly, until the federation view has applied the
// whole ledger as this node has it, so that a token is usable (or revoked)
// on this node when the call returns.
func (n *Node) awaitView(ctx context.Context) {
	st, err := n.ledger.Status()
	if err != nil {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for n.view.applied() < st.Size && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
}

// handleBackup streams a consistent backup of the ledger.
func (n *Node) handleBackup(w http.ResponseWriter, r *http.Request, _ caller) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="coapp.backup"`)
	size, root, err := n.ledger.Backup(r.Context(), w, ledger.Stale)
	if err != nil {
		if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
			// The stream has begun: the client sees a truncated body,
			// which RestoreBackup refuses.
			n.logger.Error("backup stream failed", "err", err)
			return nil
		}
		return err
	}
	n.logger.Info("backup streamed", "size", size, "root", root)
	return nil
}

// decodeJSON decodes a peer's JSON answer.
func decodeJSON(r io.Reader, v any) error {
	if err := json.NewDecoder(io.LimitReader(r, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("coapp: malformed answer from a peer: %w", err)
	}
	return nil
}
