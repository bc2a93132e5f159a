package api

import (
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
	"coapp.coop/pseudonym"
)

// ConsentRequest gives a consent: a subject's to the calling member
// (Tier "subject", the default), or the member's own agreement to share
// data categories into the federation (Tier "member", no Subject). Subject
// is the raw identifier: the node pseudonymises it in the member's domain,
// as it does records' subjects, and never stores or logs it.
type ConsentRequest struct {
	ID               uuid.UUID        `json:"id,omitempty"`
	Tier             consent.Tier     `json:"tier,omitempty"`
	Subject          string           `json:"subject,omitempty"`
	Purposes         []string         `json:"purposes"`
	LegalBasis       string           `json:"legal_basis,omitempty"`
	DataCategories   []string         `json:"data_categories"`
	Recipients       []string         `json:"recipients,omitempty"`
	Notice           consent.Notice   `json:"notice"`
	Language         string           `json:"language,omitempty"`
	Jurisdiction     string           `json:"jurisdiction"`
	WithdrawalMethod string           `json:"withdrawal_method"`
	Retention        string           `json:"retention,omitempty"`
	Validity         consent.Validity `json:"validity"`
	// At is when the person gave it (default: now); By who recorded it
	// (default: "subject", or the member for its own agreement).
	At time.Time `json:"at,omitempty"`
	By string    `json:"by,omitempty"`
}

// ConsentChange renews, withdraws, revokes or expires a consent record.
// Validity is required to renew.
type ConsentChange struct {
	Validity *consent.Validity `json:"validity,omitempty"`
	At       time.Time         `json:"at,omitempty"`
	By       string            `json:"by,omitempty"`
}

// ConsentActions are the changes POST /v1/consents/{id}/{action} takes.
var ConsentActions = map[string]consent.Status{
	"renew": consent.Renewed, "withdraw": consent.Withdrawn, "revoke": consent.Revoked, "expire": consent.Expired,
}

// ConsentReceipt is the answer to every consent event: the receipt the
// person keeps (with the event, and its Kantara v1.1 view).
type ConsentReceipt struct {
	Record  uuid.UUID       `json:"record"`
	Receipt consent.Receipt `json:"receipt"`
}

// SignedEvent is the body of POST /v1/consents/events: an event signed by
// the calling member, with its public key when the ledger has none yet.
type SignedEvent struct {
	Payload   []byte `json:"payload"`
	PublicKey []byte `json:"public_key,omitempty"`
}

// SubjectRequest names a subject by raw identifier, in a body (the bodies
// of POST /v1/consents/list, /v1/subjects/access, /v1/subjects/erase and
// /v1/subjects/exports): a person's identifier travels only in a request
// body, never in a URL.
type SubjectRequest struct {
	Subject string `json:"subject"`
}

// ConsentList is the answer of POST /v1/consents/list.
type ConsentList struct {
	Subject  pseudonym.Pseudonym `json:"subject"`
	Consents []consent.History   `json:"consents"`
}

// CheckRequest asks whether a subject's data may be used for a purpose.
// With Category set, both tiers are decided: the subject's consent to the
// member, and the member's agreement to share that category. AsOf is a
// ledger index (default: the latest applied).
type CheckRequest struct {
	Subject  string    `json:"subject"`
	Purpose  string    `json:"purpose"`
	Category string    `json:"category,omitempty"`
	At       time.Time `json:"at,omitempty"`
	AsOf     uint64    `json:"as_of,omitempty"`
}

// VerifyRequest is the body of POST /v1/consents/verify.
type VerifyRequest struct {
	Receipt consent.Receipt `json:"receipt"`
}

// VerifyResult is the answer of POST /v1/consents/verify.
type VerifyResult struct {
	Valid bool           `json:"valid"`
	Event *consent.Event `json:"event,omitempty"`
	Error string         `json:"error,omitempty"`
}

// PurposeList is the answer of GET /v1/purposes.
type PurposeList struct {
	Purposes []consent.Purpose `json:"purposes"`
}
