package consent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// SchemaVersion names the shape of Record and Event: ISO/IEC TS 27560's
// consent record information structure through W3C DPV, as this package
// writes it.
const SchemaVersion = "coapp-consent/1"

// Tier says whose consent a record holds. Both tiers are needed before a
// record is used for a purpose: the subject's consent to its cooperative,
// and the cooperative's agreement, as a member, to share that category of
// data into the federation.
type Tier string

const (
	// TierSubject is a person's consent to a controller (a member).
	TierSubject Tier = "subject"
	// TierMember is a member's agreement to share data categories into
	// the federation.
	TierMember Tier = "member"
)

// Record is a consent record: who consents (a pseudonym, never a raw
// identifier), to whom (the controller, a member cooperative), for which
// purposes and data, under which notice. Its state lives in its events.
type Record struct {
	ID            uuid.UUID `json:"id"`
	SchemaVersion string    `json:"schema_version"`
	Tier          Tier      `json:"tier"`
	// Subject is the person's pseudonym, for TierSubject; empty for
	// TierMember.
	Subject    string `json:"subject,omitempty"`
	Controller string `json:"controller"`
	// Purposes are Vocabulary purpose ids.
	Purposes []string `json:"purposes"`
	// LegalBasis is a DPV consent type, such as dpv:Consent or
	// dpv:ExplicitlyExpressedConsent.
	LegalBasis string `json:"legal_basis"`
	// DataCategories are personal-data categories, such as pd:Purchase.
	DataCategories []string `json:"data_categories"`
	// Recipients are who receives the data ("federation", member ids).
	Recipients []string `json:"recipients,omitempty"`
	Notice     Notice   `json:"notice"`
	// Language of the notice (BCP 47), Jurisdiction (ISO 3166, or "EU").
	Language     string `json:"language,omitempty"`
	Jurisdiction string `json:"jurisdiction"`
	// WithdrawalMethod says how to withdraw: a URI or a short text.
	WithdrawalMethod string `json:"withdrawal_method"`
	// Retention is how long data is kept, as an ISO 8601 duration.
	Retention string `json:"retention,omitempty"`
}

// Notice is what the person was shown: where, and the SHA-256 (hex) of the
// exact text.
type Notice struct {
	URI    string `json:"uri"`
	SHA256 string `json:"sha256"`
}

// Status is the kind of a consent event, after DPV's consent statuses.
type Status string

// The consent events. The current state of a record is its latest event.
const (
	Given     Status = "given"
	Renewed   Status = "renewed"
	Withdrawn Status = "withdrawn"
	Expired   Status = "expired"
	Revoked   Status = "revoked"
)

// Validity is when a consent holds: from From, until Until or for Duration
// (ISO 8601, such as P6M), or until withdrawn when neither is set.
type Validity struct {
	From     time.Time  `json:"from"`
	Until    *time.Time `json:"until,omitempty"`
	Duration string     `json:"duration,omitempty"`
}

// End returns when the validity ends; zero when it does not.
func (v *Validity) End() time.Time {
	if v.Until != nil {
		return v.Until.UTC()
	}
	if v.Duration != "" {
		if end, err := AddDuration(v.From, v.Duration); err == nil {
			return end
		}
	}
	return time.Time{}
}

// Event is one change of a consent record's state. Given carries the
// record; every later event links to the SHA-256 of the previous event's
// bytes (Prev, hex), so the history is a hash chain.
type Event struct {
	Record uuid.UUID `json:"record"`
	Type   Status    `json:"type"`
	// At is when the change happened, in UTC.
	At time.Time `json:"at"`
	// By says who indicated it: "subject" or the controller's member id.
	By       string    `json:"by"`
	Prev     string    `json:"prev,omitempty"`
	Validity *Validity `json:"validity,omitempty"`
	Consent  *Record   `json:"consent,omitempty"`
}

var (
	termPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}:[A-Za-z][A-Za-z0-9]{0,63}$`)
	hexSHA256   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

var legalBases = map[string]bool{
	"dpv:Consent": true, "dpv:InformedConsent": true, "dpv:ExpressedConsent": true,
	"dpv:ExplicitlyExpressedConsent": true,
}

func text(field, s string, max int, required bool) error {
	switch {
	case s == "" && required:
		return fail(ErrInvalid, field, "required")
	case len(s) > max || !utf8.ValidString(s):
		return fail(ErrInvalid, field, "not UTF-8 of at most %d bytes", max)
	}
	return nil
}

func terms(field string, list []string, required bool) error {
	if len(list) == 0 && required {
		return fail(ErrInvalid, field, "required: at least one")
	}
	if len(list) > 32 {
		return fail(ErrInvalid, field, "at most 32")
	}
	for i, t := range list {
		if !termPattern.MatchString(t) {
			return fail(ErrInvalid, fmt.Sprintf("%s[%d]", field, i), "a term is prefix:Name, such as pd:Purchase")
		}
	}
	return nil
}

// Validate checks a record's shape and, when vocab is not nil, that its
// purposes are in it.
func (r *Record) Validate(vocab *Vocabulary) error {
	if r.ID == uuid.Nil {
		return fail(ErrInvalid, "consent.id", "required")
	}
	if r.SchemaVersion != SchemaVersion {
		return fail(ErrInvalid, "consent.schema_version", "must be %q", SchemaVersion)
	}
	switch r.Tier {
	case TierSubject:
		if err := text("consent.subject", r.Subject, 256, true); err != nil {
			return err
		}
	case TierMember:
		if r.Subject != "" {
			return fail(ErrInvalid, "consent.subject", "a member's agreement has no subject")
		}
	default:
		return fail(ErrInvalid, "consent.tier", "subject or member")
	}
	if err := text("consent.controller", r.Controller, 256, true); err != nil {
		return err
	}
	if err := terms("consent.purposes", r.Purposes, true); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, p := range r.Purposes {
		if _, ok := vocab.Lookup(p); vocab != nil && !ok {
			return fail(ErrUnknownPurpose, fmt.Sprintf("consent.purposes[%d]", i), "%s", p)
		}
		if seen[p] {
			return fail(ErrInvalid, fmt.Sprintf("consent.purposes[%d]", i), "repeated")
		}
		seen[p] = true
	}
	if !legalBases[r.LegalBasis] {
		return fail(ErrInvalid, "consent.legal_basis", "dpv:Consent, dpv:InformedConsent, dpv:ExpressedConsent or dpv:ExplicitlyExpressedConsent")
	}
	if err := terms("consent.data_categories", r.DataCategories, true); err != nil {
		return err
	}
	if len(r.Recipients) > 32 {
		return fail(ErrInvalid, "consent.recipients", "at most 32")
	}
	for i, rc := range r.Recipients {
		if err := text(fmt.Sprintf("consent.recipients[%d]", i), rc, 256, true); err != nil {
			return err
		}
	}
	if err := text("consent.notice.uri", r.Notice.URI, 2048, true); err != nil {
		return err
	}
	if !hexSHA256.MatchString(r.Notice.SHA256) {
		return fail(ErrInvalid, "consent.notice.sha256", "the SHA-256 of the notice's text, 64 lower-case hex digits")
	}
	if err := text("consent.language", r.Language, 35, false); err != nil {
		return err
	}
	if err := text("consent.jurisdiction", r.Jurisdiction, 16, true); err != nil {
		return err
	}
	if err := text("consent.withdrawal_method", r.WithdrawalMethod, 2048, true); err != nil {
		return err
	}
	if r.Retention != "" {
		if _, err := AddDuration(time.Unix(0, 0), r.Retention); err != nil {
			return fail(ErrInvalid, "consent.retention", "%v", err)
		}
	}
	return nil
}

// validate checks a validity period.
func (v *Validity) validate() error {
	if v.From.IsZero() {
		return fail(ErrInvalid, "validity.from", "required")
	}
	if y := v.From.Year(); y < 1900 || y > 2200 {
		return fail(ErrInvalid, "validity.from", "outside the years 1900 to 2200")
	}
	if v.Until != nil && v.Duration != "" {
		return fail(ErrInvalid, "validity", "until or duration, not both")
	}
	if v.Duration != "" {
		end, err := AddDuration(v.From, v.Duration)
		if err != nil {
			return fail(ErrInvalid, "validity.duration", "%v", err)
		}
		if !end.After(v.From) {
			return fail(ErrInvalid, "validity.duration", "must be positive")
		}
	}
	if v.Until != nil && !v.Until.After(v.From) {
		return fail(ErrInvalid, "validity.until", "must be after validity.from")
	}
	return nil
}

// Validate checks an event's shape, and its record's when it carries one.
// Whether it may follow the record's history is the Index's to say.
func (e *Event) Validate(vocab *Vocabulary) error {
	if e.Record == uuid.Nil {
		return fail(ErrInvalid, "record", "required")
	}
	if e.At.IsZero() {
		return fail(ErrInvalid, "at", "required")
	}
	if y := e.At.Year(); y < 1900 || y > 2200 {
		return fail(ErrInvalid, "at", "outside the years 1900 to 2200")
	}
	if err := text("by", e.By, 256, true); err != nil {
		return err
	}
	switch e.Type {
	case Given:
		if e.Consent == nil {
			return fail(ErrInvalid, "consent", "required with given")
		}
		if e.Consent.ID != e.Record {
			return fail(ErrInvalid, "consent.id", "must be the event's record")
		}
		if e.Prev != "" {
			return fail(ErrInvalid, "prev", "given starts a record: no previous event")
		}
		if err := e.Consent.Validate(vocab); err != nil {
			return err
		}
	case Renewed, Withdrawn, Expired, Revoked:
		if e.Consent != nil {
			return fail(ErrInvalid, "consent", "only with given")
		}
		if !hexSHA256.MatchString(e.Prev) {
			return fail(ErrInvalid, "prev", "the SHA-256 (hex) of the record's latest event")
		}
	default:
		return fail(ErrInvalid, "type", "given, renewed, withdrawn, expired or revoked")
	}
	switch e.Type {
	case Given, Renewed:
		if e.Validity == nil {
			return fail(ErrInvalid, "validity", "required with %s", e.Type)
		}
		if err := e.Validity.validate(); err != nil {
			return err
		}
	default:
		if e.Validity != nil {
			return fail(ErrInvalid, "validity", "only with given or renewed")
		}
	}
	return nil
}

// Hash returns the SHA-256 of an event's bytes, as the next event's Prev
// names it.
func Hash(eventBytes []byte) string {
	h := sha256.Sum256(eventBytes)
	return hex.EncodeToString(h[:])
}

// Signed is an event as the ledger holds it: the event's bytes, the member
// that signed them, and its Ed25519 signature.
type Signed struct {
	Event  json.RawMessage `json:"event"`
	Signer string          `json:"signer"`
	Sig    []byte          `json:"sig"`
}

const sigContext = "coapp/v1/consent-event|"

func signedMessage(event []byte) []byte {
	return append([]byte(sigContext), event...)
}

// Sign encodes an event and signs it as member signer.
func Sign(e *Event, signer string, key ed25519.PrivateKey) (Signed, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return Signed{}, err
	}
	return Signed{Event: b, Signer: signer, Sig: ed25519.Sign(key, signedMessage(b))}, nil
}

// Verify checks the signature under the signer's public key.
func (s *Signed) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || len(s.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, signedMessage(s.Event), s.Sig) {
		return &Error{Err: ErrBadSignature, Field: "sig", Reason: "the signature of " + s.Signer + " does not verify under the key given"}
	}
	return nil
}

// Encode returns the ledger payload.
func (s *Signed) Encode() []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // only bytes and strings
	}
	return b
}

// maxEventBytes bounds an encoded event.
const maxEventBytes = 16 << 10

// Decode parses a ledger payload strictly: unknown fields, trailing data
// and events that fail Validate are refused with an *Error. The signature
// is not checked here (see Verify).
func Decode(payload []byte, vocab *Vocabulary) (Signed, Event, error) {
	var s Signed
	if err := strict(payload, &s); err != nil {
		return Signed{}, Event{}, err
	}
	if len(s.Event) > maxEventBytes {
		return Signed{}, Event{}, fail(ErrInvalid, "event", "larger than %d bytes", maxEventBytes)
	}
	if err := text("signer", s.Signer, 256, true); err != nil {
		return Signed{}, Event{}, err
	}
	var e Event
	if err := strict(s.Event, &e); err != nil {
		return Signed{}, Event{}, err
	}
	if err := e.Validate(vocab); err != nil {
		return Signed{}, Event{}, err
	}
	return s, e, nil
}

func strict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(ErrInvalid, "", "malformed: %v", err)
	}
	if dec.More() {
		return fail(ErrInvalid, "", "trailing data")
	}
	return nil
}

// AddDuration adds an ISO 8601 duration (PnYnMnWnDTnHnMnS, whole numbers)
// to t, calendar parts first.
func AddDuration(t time.Time, d string) (time.Time, error) {
	if len(d) < 3 || len(d) > 64 || d[0] != 'P' {
		return time.Time{}, fmt.Errorf("duration %q is not ISO 8601 (such as P6M or P1Y2M10DT2H30M)", d)
	}
	var years, months, days int
	var clock time.Duration
	inTime, seen, timed := false, false, false
	num := ""
	for _, c := range d[1:] {
		switch {
		case c >= '0' && c <= '9':
			num += string(c)
			continue
		case c == 'T' && !inTime && num == "":
			inTime = true
			continue
		}
		if num == "" {
			return time.Time{}, fmt.Errorf("duration %q: a number must come before %c", d, c)
		}
		n, err := strconv.Atoi(num)
		if err != nil || n > 100000 {
			return time.Time{}, fmt.Errorf("duration %q: number too large", d)
		}
		num, seen, timed = "", true, inTime
		switch {
		case !inTime && c == 'Y':
			years += n
		case !inTime && c == 'M':
			months += n
		case !inTime && c == 'W':
			days += 7 * n
		case !inTime && c == 'D':
			days += n
		case inTime && c == 'H':
			clock += time.Duration(n) * time.Hour
		case inTime && c == 'M':
			clock += time.Duration(n) * time.Minute
		case inTime && c == 'S':
			clock += time.Duration(n) * time.Second
		default:
			return time.Time{}, fmt.Errorf("duration %q: unexpected %c", d, c)
		}
	}
	if num != "" || !seen || (inTime && !timed) {
		return time.Time{}, fmt.Errorf("duration %q is not ISO 8601 (such as P6M)", d)
	}
	return t.UTC().AddDate(years, months, days).Add(clock), nil
}
