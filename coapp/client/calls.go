package client

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/consent"
)

// Publish appends records atomically and returns their receipts.
func (c *Client) Publish(ctx context.Context, records []Record) ([]Receipt, error) {
	var out api.PublishResponse
	err := c.do(ctx, http.MethodPost, "/v1/records", api.PublishRequest{Records: records}, &out, true)
	return out.Receipts, err
}

// PublishJSON is Publish for a request body the caller encoded already:
// {"records":[...]}, as POST /v1/records takes it (for an app that
// receives its records as JSON, or a load generator). It retries as
// Publish does.
func (c *Client) PublishJSON(ctx context.Context, body []byte) ([]Receipt, error) {
	var out api.PublishResponse
	err := c.send(ctx, http.MethodPost, "/v1/records", body, &out, true)
	return out.Receipts, err
}

// PublishSigned hands a batch sealed and signed on another node to this
// one, the leader (POST /v1/records/signed).
func (c *Client) PublishSigned(ctx context.Context, b api.SealedBatch) ([]Receipt, error) {
	var out api.PublishResponse
	err := c.do(ctx, http.MethodPost, "/v1/records/signed", b, &out, true)
	return out.Receipts, err
}

// SubmitSigned hands a member's signed governance entry to this node, the
// leader (POST /v1/signed), and returns its index.
func (c *Client) SubmitSigned(ctx context.Context, s api.SignedSubmission) (uint64, error) {
	var out api.IndexResponse
	err := c.write(ctx, http.MethodPost, "/v1/signed", s, &out)
	return out.Index, err
}

// SubmitEvent hands a member's signed consent event to this node, the
// leader (POST /v1/consents/events).
func (c *Client) SubmitEvent(ctx context.Context, e api.SignedEvent) (ConsentReceipt, error) {
	var out ConsentReceipt
	err := c.write(ctx, http.MethodPost, "/v1/consents/events", e, &out)
	return out, err
}

// Record returns a stored record's receipt and metadata.
func (c *Client) Record(ctx context.Context, id uuid.UUID, consistency string) (RecordInfo, error) {
	var out RecordInfo
	err := c.do(ctx, http.MethodGet, "/v1/records/"+id.String()+query("consistency", consistency), nil, &out, true)
	return out, err
}

// Ledger returns the ledger's size and root.
func (c *Client) Ledger(ctx context.Context, consistency string) (LedgerInfo, error) {
	var out LedgerInfo
	err := c.do(ctx, http.MethodGet, "/v1/ledger"+query("consistency", consistency), nil, &out, true)
	return out, err
}

// InclusionProof returns the proof for the entry at index in the tree of
// size entries.
func (c *Client) InclusionProof(ctx context.Context, index, size uint64, consistency string) (InclusionProof, error) {
	var out InclusionProof
	q := fmt.Sprintf("/v1/ledger/proofs/inclusion?index=%d&size=%d", index, size)
	if consistency != "" {
		q += "&consistency=" + url.QueryEscape(consistency)
	}
	err := c.do(ctx, http.MethodGet, q, nil, &out, true)
	return out, err
}

// ConsistencyProof returns the proof between the trees of from and to
// entries.
func (c *Client) ConsistencyProof(ctx context.Context, from, to uint64, consistency string) (ConsistencyProof, error) {
	var out ConsistencyProof
	q := fmt.Sprintf("/v1/ledger/proofs/consistency?from=%d&to=%d", from, to)
	if consistency != "" {
		q += "&consistency=" + url.QueryEscape(consistency)
	}
	err := c.do(ctx, http.MethodGet, q, nil, &out, true)
	return out, err
}

// Cluster returns the cluster's nodes and leader.
func (c *Client) Cluster(ctx context.Context) (Cluster, error) {
	var out Cluster
	err := c.do(ctx, http.MethodGet, "/v1/cluster", nil, &out, true)
	return out, err
}

// Status returns the status of the node the client talks to.
func (c *Client) Status(ctx context.Context) (NodeStatus, error) {
	var out NodeStatus
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &out, true)
	return out, err
}

// Access returns what the ledger holds about a person, identified as the
// calling member knows them: the right of access. The identifier travels
// in the request body only.
func (c *Client) Access(ctx context.Context, subject string) (SubjectReport, error) {
	var out SubjectReport
	err := c.do(ctx, http.MethodPost, "/v1/subjects/access", api.SubjectRequest{Subject: subject}, &out, true)
	return out, err
}

// Erase destroys a person's data keys on every node: their records can no
// longer be read, and nothing more can be published about them. It returns
// the Raft index of the erasure.
func (c *Client) Erase(ctx context.Context, subject string) (uint64, error) {
	out, err := c.EraseSubject(ctx, subject)
	return out.RaftIndex, err
}

// EraseSubject is Erase, with the pseudonyms whose keys were destroyed.
func (c *Client) EraseSubject(ctx context.Context, subject string) (api.EraseResponse, error) {
	var out api.EraseResponse
	err := c.do(ctx, http.MethodPost, "/v1/subjects/erase", api.SubjectRequest{Subject: subject}, &out, true)
	return out, err
}

// GiveConsent records a consent given to the calling member, or the
// member's own agreement to share (tier "member"). It is retried only
// while no leader is known; set the request's id, so that a retry after a
// lost answer is refused as a conflict rather than a second record.
func (c *Client) GiveConsent(ctx context.Context, req api.ConsentRequest) (ConsentReceipt, error) {
	var out ConsentReceipt
	err := c.write(ctx, http.MethodPost, "/v1/consents", req, &out)
	return out, err
}

// ChangeConsent renews, withdraws, revokes or expires (action) a consent
// record.
func (c *Client) ChangeConsent(ctx context.Context, id uuid.UUID, action string, change api.ConsentChange) (ConsentReceipt, error) {
	var out ConsentReceipt
	err := c.write(ctx, http.MethodPost, "/v1/consents/"+id.String()+"/"+url.PathEscape(action), change, &out)
	return out, err
}

// ConsentRecord returns a consent record of the calling member's with its
// history.
func (c *Client) ConsentRecord(ctx context.Context, id uuid.UUID) (consent.History, error) {
	var out consent.History
	err := c.do(ctx, http.MethodGet, "/v1/consents/"+id.String(), nil, &out, true)
	return out, err
}

// Consents lists the consents of subject (a raw identifier, sent in the
// body only) given to the calling member.
func (c *Client) Consents(ctx context.Context, subject string) (ConsentList, error) {
	var out ConsentList
	err := c.do(ctx, http.MethodPost, "/v1/consents/list", api.SubjectRequest{Subject: subject}, &out, true)
	return out, err
}

// CheckConsent decides whether a subject's data may be used for a purpose.
func (c *Client) CheckConsent(ctx context.Context, req api.CheckRequest) (consent.Decision, error) {
	var out consent.Decision
	err := c.do(ctx, http.MethodPost, "/v1/consents/check", req, &out, true)
	return out, err
}

// VerifyReceipt asks the node to check a receipt against the member keys
// and the ledger it holds. Offline, use consent.Receipt.Verify.
func (c *Client) VerifyReceipt(ctx context.Context, rc consent.Receipt) (VerifyResult, error) {
	var out VerifyResult
	err := c.do(ctx, http.MethodPost, "/v1/consents/verify", api.VerifyRequest{Receipt: rc}, &out, true)
	return out, err
}

// Purposes lists the federation's purposes.
func (c *Client) Purposes(ctx context.Context) ([]consent.Purpose, error) {
	var out api.PurposeList
	err := c.do(ctx, http.MethodGet, "/v1/purposes", nil, &out, true)
	return out.Purposes, err
}

// DefinePurpose adds a federation purpose (admin).
func (c *Client) DefinePurpose(ctx context.Context, p consent.Purpose) error {
	return c.do(ctx, http.MethodPost, "/v1/purposes", p, nil, true)
}

// MemberKeyHistory returns a member's keys.
func (c *Client) MemberKeyHistory(ctx context.Context, member string) (MemberKeys, error) {
	var out MemberKeys
	err := c.do(ctx, http.MethodGet, "/v1/members/"+url.PathEscape(member)+"/key", nil, &out, true)
	return out, err
}

// RotateKey replaces the calling member's signing key (on the node that
// holds it) and returns its keys.
func (c *Client) RotateKey(ctx context.Context, member string) (MemberKeys, error) {
	var out MemberKeys
	err := c.write(ctx, http.MethodPost, "/v1/members/"+url.PathEscape(member)+"/key/rotate", struct{}{}, &out)
	return out, err
}

// MemberKey returns a member's current Ed25519 public key as the ledger
// holds it, to verify its receipts offline.
func (c *Client) MemberKey(ctx context.Context, member string) (ed25519.PublicKey, error) {
	out, err := c.MemberKeyHistory(ctx, member)
	return ed25519.PublicKey(out.PublicKey), err
}

// Propose puts a proposal to the vote as the calling member (kind
// admit-member, remove-member, dataset or grant).
func (c *Client) Propose(ctx context.Context, p api.Proposal) (Proposal, error) {
	var out Proposal
	err := c.write(ctx, http.MethodPost, "/v1/proposals", p, &out)
	return out, err
}

// Vote casts the calling member's vote ("yes", "no" or "abstain").
func (c *Client) Vote(ctx context.Context, proposal uuid.UUID, choice string) (Proposal, error) {
	var out Proposal
	err := c.write(ctx, http.MethodPost, "/v1/proposals/"+proposal.String()+"/votes", api.VoteRequest{Choice: choice}, &out)
	return out, err
}

// Proposals lists every proposal, oldest first.
func (c *Client) Proposals(ctx context.Context) ([]Proposal, error) {
	var out api.ProposalList
	err := c.do(ctx, http.MethodGet, "/v1/proposals", nil, &out, true)
	return out.Proposals, err
}

// Members lists the federation's members.
func (c *Client) Members(ctx context.Context) ([]string, error) {
	var out api.MembersInfo
	err := c.do(ctx, http.MethodGet, "/v1/members", nil, &out, true)
	return out.Members, err
}

// Datasets lists the federation's datasets.
func (c *Client) Datasets(ctx context.Context) ([]api.DatasetInfo, error) {
	var out api.DatasetList
	err := c.do(ctx, http.MethodGet, "/v1/datasets", nil, &out, true)
	return out.Datasets, err
}

// ExportResult is what an export's headers say: the audit entry's index,
// the SHA-256 of the body, the rows.
type ExportResult struct {
	SHA256     string
	AuditIndex uint64
	Rows       int
}

// Export streams a dataset's export to w.
func (c *Client) Export(ctx context.Context, dataset string, req api.ExportRequest, w io.Writer) (ExportResult, error) {
	body, err := jsonBody(req)
	if err != nil {
		return ExportResult{}, err
	}
	var res ExportResult
	err = c.stream(ctx, http.MethodPost, "/v1/datasets/"+url.PathEscape(dataset)+"/export", body, func(resp *http.Response) error {
		res.SHA256 = resp.Header.Get(api.HeaderExportSHA256)
		res.AuditIndex, _ = strconv.ParseUint(resp.Header.Get(api.HeaderExportAudit), 10, 64)
		res.Rows, _ = strconv.Atoi(resp.Header.Get(api.HeaderExportRows))
		_, err := io.Copy(w, resp.Body)
		return err
	})
	return res, err
}

// Aggregate asks for counts, sums or means by group.
func (c *Client) Aggregate(ctx context.Context, dataset string, req api.AggregateRequest) (AggregateResult, error) {
	var out AggregateResult
	err := c.write(ctx, http.MethodPost, "/v1/datasets/"+url.PathEscape(dataset)+"/aggregate", req, &out)
	return out, err
}

// Audit lists a dataset's exports.
func (c *Client) Audit(ctx context.Context, dataset string) ([]ExportAudit, error) {
	var out api.ExportList
	err := c.do(ctx, http.MethodGet, "/v1/datasets/"+url.PathEscape(dataset)+"/audit", nil, &out, true)
	return out.Exports, err
}

// SubjectExports lists the exports that included a subject's data (the
// raw identifier travels in the body).
func (c *Client) SubjectExports(ctx context.Context, subject string) ([]ExportAudit, error) {
	var out api.ExportList
	err := c.do(ctx, http.MethodPost, "/v1/subjects/exports", api.SubjectRequest{Subject: subject}, &out, true)
	return out.Exports, err
}

// Shares returns each member's share of a dataset's records and subjects,
// for records dated from, to (YYYY-MM-DD; empty: unbounded).
func (c *Client) Shares(ctx context.Context, dataset, from, to string) (SharesReport, error) {
	var out SharesReport
	q := url.Values{}
	if from != "" {
		q.Set("from", from)
	}
	if to != "" {
		q.Set("to", to)
	}
	path := "/v1/datasets/" + url.PathEscape(dataset) + "/shares"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out, true)
	return out, err
}

// PutSchema registers a schema, or its next version (admin), and returns
// it as registered.
func (c *Client) PutSchema(ctx context.Context, schema api.Schema) (api.Schema, error) {
	var out api.Schema
	err := c.do(ctx, http.MethodPost, "/v1/schemas", schema, &out, true)
	return out, err
}

// Schemas returns the latest version of every registered schema.
func (c *Client) Schemas(ctx context.Context) ([]api.Schema, error) {
	var out api.SchemaList
	err := c.do(ctx, http.MethodGet, "/v1/schemas", nil, &out, true)
	return out.Schemas, err
}

// Join adds a node to the cluster (admin).
func (c *Client) Join(ctx context.Context, n api.NodeInfo) (api.NodeInfo, error) {
	var out api.NodeInfo
	err := c.do(ctx, http.MethodPost, "/v1/cluster/join", n, &out, true)
	return out, err
}

// RemoveNode removes a node from the cluster (admin).
func (c *Client) RemoveNode(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/cluster/nodes/"+url.PathEscape(id), nil, nil, true)
}

// PromoteNode makes a non-voting node a voter (admin).
func (c *Client) PromoteNode(ctx context.Context, id string) (api.NodeInfo, error) {
	var out api.NodeInfo
	err := c.do(ctx, http.MethodPost, "/v1/cluster/nodes/"+url.PathEscape(id)+"/promote", nil, &out, true)
	return out, err
}

// ErasureStatus reports how far each node purged the erasure at Raft index
// index (Erase's answer) from its files; with local, the node the client
// talks to answers for itself alone.
func (c *Client) ErasureStatus(ctx context.Context, index uint64, local bool) (api.ErasureStatus, error) {
	var out api.ErasureStatus
	path := "/v1/subjects/erasures/" + strconv.FormatUint(index, 10)
	if local {
		path += "?local=true"
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out, true)
	return out, err
}

// CreateToken creates a token for member (admin).
func (c *Client) CreateToken(ctx context.Context, member string, admin bool) (Token, error) {
	var out Token
	err := c.do(ctx, http.MethodPost, "/v1/tokens", api.TokenRequest{Member: member, Admin: admin}, &out, false)
	return out, err
}

// RevokeToken revokes a token by its id (admin).
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil, true)
}

// Backup streams a consistent backup of the node's ledger to w (admin).
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	return c.stream(ctx, http.MethodGet, "/v1/backup", nil, func(resp *http.Response) error {
		_, err := io.Copy(w, resp.Body)
		return err
	})
}

// Ready reports whether the node answers /readyz with 200.
func (c *Client) Ready(ctx context.Context) bool {
	req, err := c.request(ctx, http.MethodGet, "/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func query(name, value string) string {
	if value == "" {
		return ""
	}
	return "?" + name + "=" + url.QueryEscape(value)
}
