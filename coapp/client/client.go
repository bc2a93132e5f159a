// Package client is the Go client of a coapp node's HTTP API, used by the
// coapp command, the tests and the examples.
//
//	c := client.New("http://127.0.0.1:7400", token)
//	receipts, err := c.Publish(ctx, []client.Record{{ID: id, Type: "purchase", ...}})
//
// Calls retry, with backoff and within ctx, when the node answers 503 (no
// leader yet) or cannot be reached. Retrying a publish is safe: records
// carry their ids, so the ledger stores each once.
package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
	"coapp.coop/ledger/merkle"
)

// Record is one exchange to publish. It follows the schema registered for
// its Type, at Version (the latest when 0). Subject is the person's raw
// identifier: the node pseudonymises it before anything is stored.
type Record struct {
	ID      uuid.UUID                  `json:"id"`
	Type    string                     `json:"type"`
	Version int                        `json:"version,omitempty"`
	Subject string                     `json:"subject"`
	Time    time.Time                  `json:"time"`
	Fields  map[string]json.RawMessage `json:"fields,omitempty"`
}

// Receipt acknowledges a published record.
type Receipt struct {
	ID    uuid.UUID   `json:"id"`
	Index uint64      `json:"index"`
	Leaf  merkle.Hash `json:"leaf"`
}

// RecordInfo is a stored record's receipt and metadata.
type RecordInfo struct {
	Receipt
	Type    string    `json:"type"`
	Version int       `json:"version"`
	Time    time.Time `json:"time"`
	Member  string    `json:"member"`
	// Refused says why every replica refused the record, when it did (no
	// valid signature of its member covers it): it stays in the log,
	// inert.
	Refused string `json:"refused,omitempty"`
}

// LedgerInfo is the ledger's size and Merkle root.
type LedgerInfo struct {
	Size uint64      `json:"size"`
	Root merkle.Hash `json:"root"`
}

// InclusionProof proves that the leaf at Index is in the tree of Size
// entries with Root. Verify checks it.
type InclusionProof struct {
	Index uint64        `json:"index"`
	Size  uint64        `json:"size"`
	Root  merkle.Hash   `json:"root"`
	Leaf  merkle.Hash   `json:"leaf"`
	Proof []merkle.Hash `json:"proof"`
}

// Verify checks the proof with hashes alone.
func (p InclusionProof) Verify() error {
	return merkle.VerifyInclusion(p.Leaf, p.Index, p.Size, p.Proof, p.Root)
}

// ConsistencyProof proves the tree of From entries a prefix of the tree of
// To entries.
type ConsistencyProof struct {
	From     uint64        `json:"from"`
	To       uint64        `json:"to"`
	FromRoot merkle.Hash   `json:"from_root"`
	ToRoot   merkle.Hash   `json:"to_root"`
	Proof    []merkle.Hash `json:"proof"`
}

// Verify checks the proof with hashes alone.
func (p ConsistencyProof) Verify() error {
	return merkle.VerifyConsistency(p.From, p.To, p.FromRoot, p.ToRoot, p.Proof)
}

// NodeStatus is one node of the cluster.
type NodeStatus struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	HTTPAddr     string `json:"http_addr"`
	Suffrage     string `json:"suffrage"`
	State        string `json:"state"`
	LastContact  string `json:"last_contact,omitempty"`
	AppliedIndex uint64 `json:"applied_index"`
	Size         uint64 `json:"size"`
}

// Cluster is the federation's cluster as one node sees it.
type Cluster struct {
	Federation string       `json:"federation"`
	Leader     string       `json:"leader"`
	Nodes      []NodeStatus `json:"nodes"`
}

// Token is a new API token, shown once.
type Token struct {
	ID     string `json:"id"`
	Token  string `json:"token"`
	Member string `json:"member"`
	Admin  bool   `json:"admin"`
}

// Error is an error answered by the API: its HTTP status, a stable code
// ("invalid", "conflict", "unauthenticated", ...), a message and, for
// invalid input, the field.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
}

// Error returns the status, code, field and message.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("coapp: %d %s (%s): %s", e.Status, e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("coapp: %d %s: %s", e.Status, e.Code, e.Message)
}

// Client calls one node's API. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
	// Retries bounds the attempts of a call that may be retried; 0 means
	// until ctx ends.
	Retries int
}

// Option configures a Client.
type Option func(*Client)

// WithTLS uses a TLS configuration (for mutual TLS, with a client
// certificate).
func WithTLS(cfg *tls.Config) Option {
	return func(c *Client) {
		c.http.Transport = &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 256}
	}
}

// WithHTTPClient uses hc for every request.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// New returns a client of the API at base (such as "http://127.0.0.1:7400")
// authenticated by token.
func New(base, token string, opts ...Option) *Client {
	c := &Client{
		base:  strings.TrimRight(base, "/"),
		token: token,
		http: &http.Client{
			Timeout:   time.Minute,
			Transport: &http.Transport{MaxIdleConnsPerHost: 256},
		},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Publish appends records atomically and returns their receipts.
func (c *Client) Publish(ctx context.Context, records []Record) ([]Receipt, error) {
	var out struct {
		Receipts []Receipt `json:"receipts"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/records", map[string]any{"records": records}, &out, true)
	return out.Receipts, err
}

// PublishJSON is Publish for a request body the caller encoded already:
// {"records":[...]}, as POST /v1/records takes it (for an app that
// receives its records as JSON, or a load generator). It retries as
// Publish does.
func (c *Client) PublishJSON(ctx context.Context, body []byte) ([]Receipt, error) {
	var out struct {
		Receipts []Receipt `json:"receipts"`
	}
	err := c.send(ctx, http.MethodPost, "/v1/records", body, &out, true)
	return out.Receipts, err
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

// SubjectRecord is one record about a subject: its fields, or Erased.
type SubjectRecord struct {
	RecordInfo
	Fields map[string]json.RawMessage `json:"fields,omitempty"`
	Erased bool                       `json:"erased,omitempty"`
	// Unreadable is set for a record that cannot be decrypted.
	Unreadable bool `json:"unreadable,omitempty"`
}

// SubjectReport is what the ledger holds about a subject.
type SubjectReport struct {
	Pseudonyms []string        `json:"pseudonyms"`
	Records    []SubjectRecord `json:"records"`
}

// Access returns what the ledger holds about a person, identified as the
// calling member knows them: the right of access. The identifier travels
// in the request body only.
func (c *Client) Access(ctx context.Context, subject string) (SubjectReport, error) {
	var out SubjectReport
	err := c.do(ctx, http.MethodPost, "/v1/subjects/access", map[string]string{"subject": subject}, &out, true)
	return out, err
}

// Erase destroys a person's data keys on every node: their records can no
// longer be read, and nothing more can be published about them. It returns
// the Raft index of the erasure.
func (c *Client) Erase(ctx context.Context, subject string) (uint64, error) {
	var out struct {
		RaftIndex uint64 `json:"raft_index"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/subjects/erase", map[string]string{"subject": subject}, &out, true)
	return out.RaftIndex, err
}

// ConsentReceipt is the answer to a consent event: the record's id and the
// receipt the person keeps (consent.Receipt.Verify checks it offline).
type ConsentReceipt struct {
	Record  uuid.UUID       `json:"record"`
	Receipt consent.Receipt `json:"receipt"`
}

// GiveConsent records a consent given to the calling member, or the
// member's own agreement to share (tier "member"). req is anything that
// marshals to the API's ConsentRequest, such as coapp.ConsentRequest. It is
// retried only while no leader is known; set the request's id, so that a
// retry after a lost answer is refused as a conflict rather than a second
// record.
func (c *Client) GiveConsent(ctx context.Context, req any) (ConsentReceipt, error) {
	var out ConsentReceipt
	err := c.write(ctx, http.MethodPost, "/v1/consents", req, &out)
	return out, err
}

// write sends a request that is not idempotent, retrying only while the
// node answers that no leader is known.
func (c *Client) write(ctx context.Context, method, path string, in, out any) error {
	for attempt := 1; ; attempt++ {
		err := c.do(ctx, method, path, in, out, false)
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != "no_leader" || (c.Retries > 0 && attempt >= c.Retries) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(time.Duration(min(50<<min(attempt, 6), 1000)) * time.Millisecond):
		}
	}
}

// ChangeConsent renews, withdraws, revokes or expires (action) a consent
// record; change marshals to the API's ConsentChange (nil for none).
func (c *Client) ChangeConsent(ctx context.Context, id uuid.UUID, action string, change any) (ConsentReceipt, error) {
	if change == nil {
		change = struct{}{}
	}
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

// ConsentList is a subject's consent records with their histories.
type ConsentList struct {
	Subject  string            `json:"subject"`
	Consents []consent.History `json:"consents"`
}

// Consents lists the consents of subject (a raw identifier, sent in the
// body only) given to the calling member.
func (c *Client) Consents(ctx context.Context, subject string) (ConsentList, error) {
	var out ConsentList
	err := c.do(ctx, http.MethodPost, "/v1/consents/list", map[string]string{"subject": subject}, &out, true)
	return out, err
}

// CheckConsent decides whether a subject's data may be used for a purpose;
// req marshals to the API's CheckRequest.
func (c *Client) CheckConsent(ctx context.Context, req any) (consent.Decision, error) {
	var out consent.Decision
	err := c.do(ctx, http.MethodPost, "/v1/consents/check", req, &out, true)
	return out, err
}

// VerifyResult is the node's verdict on a receipt.
type VerifyResult struct {
	Valid bool           `json:"valid"`
	Event *consent.Event `json:"event,omitempty"`
	Error string         `json:"error,omitempty"`
}

// VerifyReceipt asks the node to check a receipt against the member keys
// and the ledger it holds. Offline, use consent.Receipt.Verify.
func (c *Client) VerifyReceipt(ctx context.Context, rc consent.Receipt) (VerifyResult, error) {
	var out VerifyResult
	err := c.do(ctx, http.MethodPost, "/v1/consents/verify", map[string]any{"receipt": rc}, &out, true)
	return out, err
}

// Purposes lists the federation's purposes.
func (c *Client) Purposes(ctx context.Context) ([]consent.Purpose, error) {
	var out struct {
		Purposes []consent.Purpose `json:"purposes"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/purposes", nil, &out, true)
	return out.Purposes, err
}

// DefinePurpose adds a federation purpose (admin).
func (c *Client) DefinePurpose(ctx context.Context, p consent.Purpose) error {
	return c.do(ctx, http.MethodPost, "/v1/purposes", p, nil, true)
}

// MemberKeys is a member's current key and every key it had, from which
// ledger index on (receipts verify under the key in force at their
// index).
type MemberKeys struct {
	Member    string `json:"member"`
	PublicKey []byte `json:"public_key"`
	Keys      []struct {
		From      uint64 `json:"from"`
		PublicKey []byte `json:"public_key"`
	} `json:"keys"`
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
	var out struct {
		PublicKey []byte `json:"public_key"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/members/"+url.PathEscape(member)+"/key", nil, &out, true)
	return ed25519.PublicKey(out.PublicKey), err
}

// Proposal is a proposal put to the members' vote, with its votes and
// outcome ("open", "passed" or "failed").
type Proposal struct {
	ID        uuid.UUID         `json:"id"`
	Kind      string            `json:"kind"`
	Member    string            `json:"member,omitempty"`
	Dataset   json.RawMessage   `json:"dataset,omitempty"`
	Grant     json.RawMessage   `json:"grant,omitempty"`
	Committee string            `json:"committee,omitempty"`
	At        time.Time         `json:"at"`
	Proposer  string            `json:"proposer"`
	Index     uint64            `json:"index"`
	Closes    time.Time         `json:"closes"`
	Votes     map[string]string `json:"votes"`
	Outcome   string            `json:"outcome"`
	Decided   uint64            `json:"decided,omitempty"`
	Electors  int               `json:"electors,omitempty"`
}

// Propose puts a proposal to the vote as the calling member; p marshals to
// the API's Proposal (kind admit-member, remove-member, dataset or grant).
func (c *Client) Propose(ctx context.Context, p any) (Proposal, error) {
	var out Proposal
	err := c.write(ctx, http.MethodPost, "/v1/proposals", p, &out)
	return out, err
}

// Vote casts the calling member's vote ("yes", "no" or "abstain").
func (c *Client) Vote(ctx context.Context, proposal uuid.UUID, choice string) (Proposal, error) {
	var out Proposal
	err := c.write(ctx, http.MethodPost, "/v1/proposals/"+proposal.String()+"/votes", map[string]string{"choice": choice}, &out)
	return out, err
}

// Proposals lists every proposal, oldest first.
func (c *Client) Proposals(ctx context.Context) ([]Proposal, error) {
	var out struct {
		Proposals []Proposal `json:"proposals"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/proposals", nil, &out, true)
	return out.Proposals, err
}

// Members lists the federation's members.
func (c *Client) Members(ctx context.Context) ([]string, error) {
	var out struct {
		Members []string `json:"members"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/members", nil, &out, true)
	return out.Members, err
}

// Datasets lists the federation's datasets (the API's DatasetInfo JSON).
func (c *Client) Datasets(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/datasets", nil, &out, true)
	return out, err
}

// ExportResult is what an export's headers say: the audit entry's index,
// the SHA-256 of the body, the rows.
type ExportResult struct {
	SHA256     string
	AuditIndex uint64
	Rows       int
}

// Export streams a dataset's export to w: req marshals to the API's
// ExportRequest (purpose, format, as_of).
func (c *Client) Export(ctx context.Context, dataset string, req any, w io.Writer) (ExportResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return ExportResult{}, err
	}
	hr, err := c.request(ctx, http.MethodPost, "/v1/datasets/"+url.PathEscape(dataset)+"/export", body)
	if err != nil {
		return ExportResult{}, err
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return ExportResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ExportResult{}, decodeError(resp)
	}
	res := ExportResult{SHA256: resp.Header.Get("Coapp-Export-Sha256")}
	res.AuditIndex, _ = strconv.ParseUint(resp.Header.Get("Coapp-Export-Audit-Index"), 10, 64)
	res.Rows, _ = strconv.Atoi(resp.Header.Get("Coapp-Export-Rows"))
	_, err = io.Copy(w, resp.Body)
	return res, err
}

// AggregateGroup is one released group of an aggregate.
type AggregateGroup struct {
	Key   map[string]json.RawMessage `json:"key"`
	Count float64                    `json:"count"`
	Value float64                    `json:"value,omitempty"`
}

// AggregateResult is an aggregate's answer.
type AggregateResult struct {
	Dataset    string           `json:"dataset"`
	Purpose    string           `json:"purpose"`
	AsOf       uint64           `json:"as_of"`
	Op         string           `json:"op"`
	Groups     []AggregateGroup `json:"groups"`
	Suppressed int              `json:"suppressed"`
	Epsilon    float64          `json:"epsilon,omitempty"`
	BudgetLeft float64          `json:"budget_left,omitempty"`
	Audit      uint64           `json:"audit"`
}

// Aggregate asks for counts, sums or means by group; req marshals to the
// API's AggregateRequest (purpose, group_by, op, field, dp).
func (c *Client) Aggregate(ctx context.Context, dataset string, req any) (AggregateResult, error) {
	var out AggregateResult
	err := c.write(ctx, http.MethodPost, "/v1/datasets/"+url.PathEscape(dataset)+"/aggregate", req, &out)
	return out, err
}

// ExportAudit is an export's audit entry.
type ExportAudit struct {
	ID         uuid.UUID `json:"id"`
	Member     string    `json:"member"`
	Dataset    string    `json:"dataset"`
	Purpose    string    `json:"purpose"`
	Format     string    `json:"format"`
	AsOf       uint64    `json:"as_of"`
	Rows       int       `json:"rows"`
	Suppressed int       `json:"suppressed"`
	NoConsent  int       `json:"no_consent"`
	Erased     int       `json:"erased"`
	// Unreadable counts records skipped because they cannot be decrypted.
	Unreadable int       `json:"unreadable,omitempty"`
	SHA256     string    `json:"sha256"`
	At         time.Time `json:"at"`
	Epsilon    float64   `json:"epsilon,omitempty"`
	Index      uint64    `json:"index,omitempty"`
}

// Audit lists a dataset's exports.
func (c *Client) Audit(ctx context.Context, dataset string) ([]ExportAudit, error) {
	var out struct {
		Exports []ExportAudit `json:"exports"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/datasets/"+url.PathEscape(dataset)+"/audit", nil, &out, true)
	return out.Exports, err
}

// SubjectExports lists the exports that included a subject's data (the
// raw identifier travels in the body).
func (c *Client) SubjectExports(ctx context.Context, subject string) ([]ExportAudit, error) {
	var out struct {
		Exports []ExportAudit `json:"exports"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/subjects/exports", map[string]string{"subject": subject}, &out, true)
	return out.Exports, err
}

// Share is a member's contribution to a dataset.
type Share struct {
	Member       string  `json:"member"`
	Records      int     `json:"records"`
	Subjects     int     `json:"subjects"`
	RecordShare  float64 `json:"record_share"`
	SubjectShare float64 `json:"subject_share"`
}

// SharesReport is each member's share of a dataset.
type SharesReport struct {
	Dataset  string  `json:"dataset"`
	AsOf     uint64  `json:"as_of"`
	Records  int     `json:"records"`
	Subjects int     `json:"subjects"`
	Shares   []Share `json:"shares"`
}

// Shares returns each member's share of a dataset's records and subjects,
// for records dated from, to (YYYY-MM-DD; empty: unbounded).
func (c *Client) Shares(ctx context.Context, dataset, from, to string) (SharesReport, error) {
	var out SharesReport
	err := c.do(ctx, http.MethodGet, "/v1/datasets/"+url.PathEscape(dataset)+"/shares"+query("from", from)+queryAnd("to", to, from != ""), nil, &out, true)
	return out, err
}

func queryAnd(name, value string, and bool) string {
	q := query(name, value)
	if and && q != "" {
		return "&" + q[1:]
	}
	return q
}

// PutSchema registers a schema, or its next version (admin). schema is
// anything that marshals to the API's Schema JSON, such as coapp.Schema
// (see docs/openapi.json). It returns the schema as registered.
func (c *Client) PutSchema(ctx context.Context, schema any) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodPost, "/v1/schemas", schema, &out, true)
	return out, err
}

// Schemas returns the latest version of every registered schema, as JSON.
func (c *Client) Schemas(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/schemas", nil, &out, true)
	return out, err
}

// RemoveNode removes a node from the cluster (admin).
func (c *Client) RemoveNode(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/cluster/nodes/"+url.PathEscape(id), nil, nil, true)
}

// PromoteNode makes a non-voting node a voter (admin).
func (c *Client) PromoteNode(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/nodes/"+url.PathEscape(id)+"/promote", nil, nil, true)
}

// CreateToken creates a token for member (admin).
func (c *Client) CreateToken(ctx context.Context, member string, admin bool) (Token, error) {
	var out Token
	err := c.do(ctx, http.MethodPost, "/v1/tokens", map[string]any{"member": member, "admin": admin}, &out, false)
	return out, err
}

// RevokeToken revokes a token by its id (admin).
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil, true)
}

// Backup streams a consistent backup of the node's ledger to w (admin).
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	req, err := c.request(ctx, http.MethodGet, "/v1/backup", nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	_, err = io.Copy(w, resp.Body)
	return err
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

func (c *Client) request(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends a request, retrying when retry is true and the failure is
// transient, and decodes the answer into out.
func (c *Client) do(ctx context.Context, method, path string, in, out any, retry bool) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	return c.send(ctx, method, path, body, out, retry)
}

// send is do with the request's body encoded.
func (c *Client) send(ctx context.Context, method, path string, body []byte, out any, retry bool) error {
	for attempt := 1; ; attempt++ {
		err, again := c.once(ctx, method, path, body, out)
		if err == nil || !retry || !again || (c.Retries > 0 && attempt >= c.Retries) {
			return err
		}
		wait := time.Duration(min(50<<min(attempt, 6), 2000)) * time.Millisecond
		var ae *Error
		if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable {
			wait = min(wait, time.Second)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// once sends one request; again reports whether it may be retried.
func (c *Client) once(ctx context.Context, method, path string, body []byte, out any) (err error, again bool) {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err, false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne net.Error
		return err, ctx.Err() == nil && (errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection"))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		e := decodeError(resp)
		return e, resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusBadGateway
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil, false
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("coapp: malformed answer: %w", err), false
	}
	return nil, false
}

func decodeError(resp *http.Response) error {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
	} else {
		e.Code, e.Message = "http_"+strconv.Itoa(resp.StatusCode), strings.TrimSpace(string(data))
	}
	return e
}
