package format

import (
	"encoding/base64"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/consent"
)

// Ledger kinds of the federation's entries.
const (
	// KindGenesis founds a federation (Genesis).
	KindGenesis = "coapp.genesis/v1"
	// KindNode announces, updates or removes a node's addresses
	// (api.NodeInfo).
	KindNode = "coapp.node/v1"
	// KindToken creates or revokes an API token (TokenOp).
	KindToken = "coapp.token/v1"
	// KindRecord is an exchange record (a binary RecordPayload).
	KindRecord = "coapp.record/v1"
	// KindBatch is a member's signature over the records that follow it
	// (see EncodeBatch).
	KindBatch = "coapp.batch/v1"
	// KindSchema registers a schema version (api.Schema).
	KindSchema = "coapp.schema/v1"
	// KindMemberKey registers a member's Ed25519 public key (MemberKey),
	// with which every replica verifies what the member signs. The first
	// key of a member is the one that counts.
	KindMemberKey = "coapp.member-key/v1"
	// KindPurpose defines a federation purpose beyond DPV's built-in ones
	// (consent.Purpose).
	KindPurpose = "coapp.purpose/v1"
	// KindProposal puts a proposal to the vote (a SignedBody of an
	// api.Proposal).
	KindProposal = "coapp.proposal/v1"
	// KindVote is a member's vote (a SignedBody of an api.Vote).
	KindVote = "coapp.vote/v1"
	// KindExport is an export's audit entry (a SignedBody of an
	// api.ExportAudit).
	KindExport = "coapp.export/v1"
	// KindKeyRotation replaces a member's Ed25519 key: the new public key,
	// signed with the key it replaces (a SignedBody of a KeyRotation).
	KindKeyRotation = "coapp.member-key-rotation/v1"
	// KindConsent is a consent event (consent.Signed).
	KindConsent = consent.Kind
)

// Kinds lists every kind a federation's state follows.
var Kinds = []string{
	KindRecord, KindBatch, KindGenesis, KindNode, KindToken, KindSchema, KindMemberKey, KindPurpose,
	KindConsent, KindProposal, KindVote, KindExport, KindKeyRotation,
}

// Genesis founds a federation.
type Genesis struct {
	Federation string `json:"federation"`
	Founder    string `json:"founder"`
	// Members are the founding members besides the founder; Rules the
	// governance rules (defaults when absent).
	Members []string   `json:"members,omitempty"`
	Rules   *api.Rules `json:"rules,omitempty"`
	// MemberKeys are founding members' Ed25519 public keys: the founder's,
	// made by the bootstrapping node, and those given at bootstrap. A
	// member without one registers its key with its first signed entry.
	MemberKeys map[string][]byte `json:"member_keys,omitempty"`
	// SignedRecords makes every replica refuse records that no batch
	// signature of their author covers (see KindBatch). Federations
	// founded before batch signatures lack it, and keep accepting
	// unsigned records.
	SignedRecords bool `json:"signed_records,omitempty"`
	// KeyFingerprint identifies the federation key file the founding
	// node used (see coapp.KeyFingerprint): a node that reopens, joins or
	// is restored checks its own key file against it. It reveals nothing
	// of the secret. Federations founded before it lack it, and their
	// key files cannot be checked.
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
}

// TokenOp creates or revokes an API token. Only the SHA-256 of the token's
// secret is ever written.
type TokenOp struct {
	Op     string `json:"op"` // "create" or "revoke"
	ID     string `json:"id"`
	Hash   []byte `json:"hash,omitempty"`
	Member string `json:"member,omitempty"`
	Admin  bool   `json:"admin,omitempty"`
}

// MemberKey is the payload of KindMemberKey.
type MemberKey struct {
	Member    string `json:"member"`
	PublicKey []byte `json:"public_key"`
}

// KeyRotation is the body of a KindKeyRotation entry.
type KeyRotation struct {
	Member    string    `json:"member"`
	PublicKey []byte    `json:"public_key"`
	At        time.Time `json:"at"`
}

// SigningContext is what a member signs for a signed entry of kind: the
// kind's context, then the body's bytes.
func SigningContext(kind string, body []byte) []byte {
	return append([]byte("coapp/v1/"+kind+"|"), body...)
}

// EncodeSigned writes a signed entry's payload with the body's bytes
// exactly as signed (encoding/json would compact and re-escape them, and
// the signature would no longer verify).
func EncodeSigned(s *api.SignedBody) []byte {
	b := make([]byte, 0, len(s.Body)+len(s.Signer)+128)
	b = append(b, `{"body":`...)
	b = append(b, s.Body...)
	b = append(b, `,"signer":`...)
	b = AppendQuoted(b, s.Signer)
	b = append(b, `,"sig":"`...)
	b = base64.StdEncoding.AppendEncode(b, s.Sig)
	return append(b, `"}`...)
}

// SignedID is the id of a signed entry (and of a consent event): a
// name-based UUID of its payload, so that the same signed bytes sent
// twice are one entry.
func SignedID(payload []byte) uuid.UUID { return uuid.NewSHA1(signedNamespace, payload) }

var signedNamespace = uuid.MustParse("6f1d4d3e-5b7a-4c55-9f1e-3c0a7b2d8e41")
