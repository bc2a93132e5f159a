package coapp

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"coapp.coop/ledger"
)

// HTTP handlers of governance, datasets and exports. Writes are signed on
// the node that receives them, where the member's key is, and appended
// through the leader (POST /v1/signed).

func (n *Node) handlePropose(w http.ResponseWriter, r *http.Request, c caller) error {
	var p Proposal
	if err := decodeBody(r, &p); err != nil {
		return err
	}
	if err := n.catchUp(r); err != nil {
		return err
	}
	ps, err := n.propose(r.Context(), r, c.member, p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ps)
}

// voteRequest is the body of POST /v1/proposals/{id}/votes.
type voteRequest struct {
	Choice string `json:"choice"`
}

func (n *Node) handleVote(w http.ResponseWriter, r *http.Request, c caller) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return invalid("id", "not a UUID")
	}
	var req voteRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := n.catchUp(r); err != nil {
		return err
	}
	ps, err := n.castVote(r.Context(), r, c.member, id, req.Choice)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ps)
}

func (n *Node) handleSigned(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if n.needsLeader() {
		return n.forward(w, r, body)
	}
	var sub signedSubmission
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := decodeBody(r, &sub); err != nil {
		return err
	}
	index, err := n.appendSigned(r.Context(), c.member, sub)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]uint64{"index": index})
}

// viewRead brings this node's view up to the leader's before a read of
// the view, unless the request asks for ?consistency=stale.
func (n *Node) viewRead(r *http.Request) error {
	c, err := consistency(r)
	if err != nil {
		return err
	}
	if c == ledger.Stale {
		return nil
	}
	return n.catchUp(r)
}

func (n *Node) handleProposals(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := n.viewRead(r); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"proposals": n.view.proposals()})
}

func (n *Node) handleProposal(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := n.viewRead(r); err != nil {
		return err
	}
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return invalid("id", "not a UUID")
	}
	ps, ok := n.view.proposal(id)
	if !ok {
		return ErrNotFound
	}
	return writeJSON(w, http.StatusOK, ps)
}

// MembersInfo is the answer of GET /v1/members.
type MembersInfo struct {
	Members []string `json:"members"`
	Rules   Rules    `json:"rules"`
}

func (n *Node) handleMembers(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := n.viewRead(r); err != nil {
		return err
	}
	info := MembersInfo{Members: n.view.members()}
	_ = n.view.withLock(func() error {
		info.Rules = n.view.gov.rules
		return nil
	})
	return writeJSON(w, http.StatusOK, info)
}

func (n *Node) handleDatasets(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := n.viewRead(r); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"datasets": n.view.datasets()})
}

func (n *Node) handleDataset(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := n.viewRead(r); err != nil {
		return err
	}
	d, ok := n.view.dataset(r.PathValue("name"))
	if !ok {
		return ErrNotFound
	}
	return writeJSON(w, http.StatusOK, d)
}

// Export headers: the audit entry's index and the output's SHA-256, sent
// before the body (the audit entry is in the ledger before any byte is).
const (
	HeaderExportSHA256 = "Coapp-Export-Sha256"
	HeaderExportAudit  = "Coapp-Export-Audit-Index"
	HeaderExportRows   = "Coapp-Export-Rows"
)

func (n *Node) handleExport(w http.ResponseWriter, r *http.Request, c caller) error {
	var req ExportRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Dataset != "" && req.Dataset != r.PathValue("name") {
		return invalid("dataset", "the path names another dataset")
	}
	req.Dataset = r.PathValue("name")
	if err := n.catchUp(r); err != nil {
		return err
	}
	before := func(a ExportAudit) {
		ct := "application/x-ndjson"
		if a.Format == "csv" {
			ct = "text/csv; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set(HeaderExportSHA256, a.SHA256)
		w.Header().Set(HeaderExportAudit, strconv.FormatUint(a.Index, 10))
		w.Header().Set(HeaderExportRows, strconv.Itoa(a.Rows))
		w.WriteHeader(http.StatusOK)
	}
	_, err := n.export(r.Context(), r, c.member, req, before, w)
	if err != nil && w.(*statusWriter).status != 0 {
		// The body was under way: the client sees a short body, whose
		// hash does not match the header.
		n.logger.Error("export interrupted", "dataset", req.Dataset, "err", err)
		return nil
	}
	return err
}

func (n *Node) handleShares(w http.ResponseWriter, r *http.Request, _ caller) error {
	var from, to time.Time
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if s := r.URL.Query().Get(name); s != "" {
			t, err := time.Parse("2006-01-02", s)
			if err != nil {
				return invalid(name, "a date, YYYY-MM-DD")
			}
			*dst = t
		}
	}
	if err := n.viewRead(r); err != nil {
		return err
	}
	rep, err := n.Shares(r.Context(), r.PathValue("name"), from, to)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (n *Node) handleAudit(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := n.viewRead(r); err != nil {
		return err
	}
	as, err := n.Audit(r.PathValue("name"))
	if err != nil {
		return err
	}
	if as == nil {
		as = []ExportAudit{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"exports": as})
}

func (n *Node) handleSubjectExports(w http.ResponseWriter, r *http.Request, c caller) error {
	var req subjectRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := n.viewRead(r); err != nil {
		return err
	}
	as, err := n.ExportsOf(r.Context(), c.member, req.Subject)
	if err != nil {
		return err
	}
	if as == nil {
		as = []ExportAudit{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"exports": as})
}

// Members returns the federation's members, sorted.
func (n *Node) Members() []string { return n.view.members() }

// Datasets returns the federation's datasets, by name.
func (n *Node) Datasets() []DatasetInfo { return n.view.datasets() }

// Proposals returns every proposal, oldest first.
func (n *Node) Proposals() []ProposalStatus { return n.view.proposals() }

// MemberKey returns a member's Ed25519 public key as the ledger holds it,
// with which its consent receipts verify offline.
func (n *Node) MemberKey(member string) (ed25519.PublicKey, bool) { return n.view.memberKey(member) }
