package coapp

import (
	"context"
	"crypto/ed25519"
	"io"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/consent"
	"coapp.coop/pseudonym"
)

// The Go API: each method acts as the member it names, trusted as a
// program that embeds the node is. It runs the same use-case as the HTTP
// API. A write runs on the leader: on a follower, the node hands it to the
// leader as the HTTP API does, presenting Config.JoinToken (or the admin
// token it wrote) for the member; without one, it fails with ErrNoLeader.

func as(member string) api.Caller { return api.Caller{Member: member} }

// Publish validates records and appends them for member, atomically: on
// error nothing was written. Records whose ids the ledger already holds
// with the same content get their original receipts. The records are
// pseudonymised, sealed and signed with member's key on this node before
// anything leaves it.
func (n *Node) Publish(ctx context.Context, member string, records []Record) ([]Receipt, error) {
	return n.svc.Publish(ctx, as(member), records)
}

// PutSchema registers a schema, or the next version of one, as member (an
// admin's act): its version must be one above the latest (1 for a new
// type), or it fails with ErrConflict.
func (n *Node) PutSchema(ctx context.Context, member string, s Schema) error {
	_, err := n.svc.PutSchema(ctx, api.Caller{Member: member, Admin: true}, s)
	return err
}

// GiveConsent records a consent given to member (or member's own
// agreement to share, for Tier "member"), signed with member's key, and
// returns its receipt.
func (n *Node) GiveConsent(ctx context.Context, member string, req ConsentRequest) (ConsentReceipt, error) {
	return n.svc.GiveConsent(ctx, as(member), req)
}

// ChangeConsent renews, withdraws, revokes or expires (action) a consent
// record of member's, and returns the event's receipt.
func (n *Node) ChangeConsent(ctx context.Context, member string, id uuid.UUID, action string, req ConsentChange) (ConsentReceipt, error) {
	return n.svc.ChangeConsent(ctx, as(member), id, action, req)
}

// Consents returns the consent records of subject (a raw identifier,
// pseudonymised in member's domain) with their histories.
func (n *Node) Consents(member, subject string) ([]consent.History, error) {
	list, err := n.svc.Consents(as(member), subject)
	return list.Consents, err
}

// CheckConsent decides a CheckRequest for member.
func (n *Node) CheckConsent(member string, req CheckRequest) (consent.Decision, error) {
	return n.svc.CheckConsent(as(member), req)
}

// VerifyConsentReceipt checks a receipt with the public key the ledger
// holds for its author, and that the ledger still has the entry at its
// index; it returns the event.
func (n *Node) VerifyConsentReceipt(ctx context.Context, rc consent.Receipt) (consent.Event, error) {
	return n.svc.VerifyConsentReceipt(ctx, rc)
}

// DefinePurpose adds a federation purpose to the vocabulary (an admin's
// act).
func (n *Node) DefinePurpose(ctx context.Context, member string, p consent.Purpose) error {
	return n.svc.DefinePurpose(ctx, api.Caller{Member: member, Admin: true}, p)
}

// Propose puts a proposal to the members' vote, as member. It returns the
// proposal as recorded.
func (n *Node) Propose(ctx context.Context, member string, p Proposal) (ProposalStatus, error) {
	return n.svc.Propose(ctx, as(member), p)
}

// CastVote records member's vote ("yes", "no" or "abstain") on a proposal
// and returns the proposal after it (passed, when this vote decided it).
func (n *Node) CastVote(ctx context.Context, member string, id uuid.UUID, choice string) (ProposalStatus, error) {
	return n.svc.Vote(ctx, as(member), id, choice)
}

// RotateMemberKey replaces member's signing key with a new one, on the
// node that holds the current one, and returns the new public key.
func (n *Node) RotateMemberKey(ctx context.Context, member string) (ed25519.PublicKey, error) {
	info, err := n.svc.RotateMemberKey(ctx, as(member), member)
	return ed25519.PublicKey(info.PublicKey), err
}

// Access lists what the ledger holds about a subject, as member sees them:
// the records member published under the subject's pseudonyms in its
// domain and the federation's, with their fields decrypted (erased ones
// marked). It reads the whole log.
func (n *Node) Access(ctx context.Context, member, subject string) (SubjectReport, error) {
	return n.svc.Access(ctx, as(member), subject)
}

// Erase destroys a subject's data keys, under their pseudonyms in member's
// domain (every key version), on every replica: the records member
// published about them can no longer be decrypted anywhere, and nothing
// more can be published about them under those pseudonyms. It returns once
// the destruction is committed, with its Raft index; each node then purges
// its files (ledger.WaitPurged).
func (n *Node) Erase(ctx context.Context, member, subject string) ([]pseudonym.Pseudonym, uint64, error) {
	out, err := n.svc.Erase(ctx, as(member), subject, false)
	return out.Pseudonyms, out.RaftIndex, err
}

// EraseFederationWide also destroys the subject's key under the
// federation's pseudonym, which every member's records about the person
// share (schemas with subject_domain "federation"): an admin's act.
func (n *Node) EraseFederationWide(ctx context.Context, member, subject string) ([]pseudonym.Pseudonym, uint64, error) {
	out, err := n.svc.Erase(ctx, api.Caller{Member: member, Admin: true}, subject, true)
	return out.Pseudonyms, out.RaftIndex, err
}

// Export writes dataset req.Dataset to w for member, who must hold a grant
// for req.Purpose. It first computes the export and appends its audit
// entry, and only then writes the same bytes to w: no export leaves
// without its audit entry.
func (n *Node) Export(ctx context.Context, member string, req ExportRequest, w io.Writer) (ExportAudit, error) {
	return n.svc.Export(ctx, as(member), req, nil, w)
}

// Aggregate answers an AggregateRequest on dataset for member, and records
// it in the ledger (who, what, epsilon) before answering.
func (n *Node) Aggregate(ctx context.Context, member, dataset string, req AggregateRequest) (AggregateResult, error) {
	return n.svc.Aggregate(ctx, as(member), dataset, req)
}

// Shares counts each member's contribution to a dataset: the records an
// export would draw on (consented, not erased, before k-suppression)
// dated in [from, to) (zero: unbounded).
func (n *Node) Shares(ctx context.Context, dataset string, from, to time.Time) (SharesReport, error) {
	return n.svc.Shares(ctx, dataset, from, to)
}

// Audit lists a dataset's exports, oldest first.
func (n *Node) Audit(dataset string) ([]ExportAudit, error) { return n.svc.Audit(dataset) }

// ExportsOf lists the exports that included data of subject (a raw
// identifier, pseudonymised in member's domain).
func (n *Node) ExportsOf(ctx context.Context, member, subject string) ([]ExportAudit, error) {
	return n.svc.ExportsOf(ctx, as(member), subject)
}

// Members returns the federation's members, sorted.
func (n *Node) Members() []string { return n.state.Members() }

// Datasets returns the federation's datasets, by name.
func (n *Node) Datasets() []DatasetInfo { return n.state.Datasets() }

// Proposals returns every proposal, oldest first.
func (n *Node) Proposals() []ProposalStatus { return n.state.Proposals() }

// MemberKey returns a member's Ed25519 public key as the ledger holds it,
// with which its consent receipts verify offline.
func (n *Node) MemberKey(member string) (ed25519.PublicKey, bool) { return n.state.MemberKey(member) }
