package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/consent"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// SubjectPseudonym returns a subject's pseudonym in member's domain; a
// subject api.CheckSubject refuses is a *api.ValidationError for
// "subject".
func (s *Service) SubjectPseudonym(member, subject string) (pseudonym.Pseudonym, error) {
	if err := api.CheckSubject(subject); err != nil {
		return "", err
	}
	p, err := s.keys.Pseudonym(pseudonym.MemberDomain(member), subject)
	if err != nil {
		return "", api.Invalid("subject", "cannot be pseudonymised: %v", err)
	}
	return p, nil
}

// giveEvent makes the given event of a request, for member.
func (s *Service) giveEvent(member string, req *api.ConsentRequest) (*consent.Event, error) {
	rec := &consent.Record{
		ID: req.ID, SchemaVersion: consent.SchemaVersion, Tier: req.Tier, Controller: member,
		Purposes: req.Purposes, LegalBasis: req.LegalBasis, DataCategories: req.DataCategories,
		Recipients: req.Recipients, Notice: req.Notice, Language: req.Language, Jurisdiction: req.Jurisdiction,
		WithdrawalMethod: req.WithdrawalMethod, Retention: req.Retention,
	}
	if rec.ID == uuid.Nil {
		rec.ID = uuid.Must(uuid.NewV7())
	}
	if rec.Tier == "" {
		rec.Tier = consent.TierSubject
	}
	if rec.LegalBasis == "" {
		rec.LegalBasis = "dpv:Consent"
	}
	by := req.By
	switch rec.Tier {
	case consent.TierSubject, consent.TierMember:
	default:
		return nil, api.Invalid("tier", "subject or member")
	}
	switch rec.Tier {
	case consent.TierSubject:
		p, err := s.SubjectPseudonym(member, req.Subject)
		if err != nil {
			return nil, err
		}
		rec.Subject = string(p)
		if by == "" {
			by = "subject"
		}
	case consent.TierMember:
		if req.Subject != "" {
			return nil, api.Invalid("subject", "a member's agreement has no subject")
		}
		if by == "" {
			by = member
		}
	}
	at := req.At
	if at.IsZero() {
		at = time.Now().UTC()
	}
	v := req.Validity
	if v.From.IsZero() {
		v.From = at
	}
	return &consent.Event{Record: rec.ID, Type: consent.Given, At: at.UTC(), By: by, Validity: &v, Consent: rec}, nil
}

// changeEvent makes a renew, withdraw, revoke or expire event, linked to
// the record's latest event as this node knows it.
func (s *Service) changeEvent(id uuid.UUID, action string, req *api.ConsentChange) (*consent.Event, error) {
	typ, ok := api.ConsentActions[action]
	if !ok {
		return nil, api.Invalid("action", "renew, withdraw, revoke or expire")
	}
	h, ok := s.state.ConsentRecord(id)
	if !ok {
		return nil, &consent.Error{Err: consent.ErrNotFound, Field: "record", Reason: id.String()}
	}
	at := req.At
	if at.IsZero() {
		at = time.Now().UTC()
	}
	by := req.By
	if by == "" {
		by = "subject"
		if typ == consent.Revoked || typ == consent.Expired || h.Record.Tier == consent.TierMember {
			by = h.Record.Controller
		}
	}
	e := &consent.Event{Record: id, Type: typ, At: at.UTC(), By: by, Prev: h.Latest().Hash, Validity: req.Validity}
	if typ == consent.Renewed && e.Validity != nil && e.Validity.From.IsZero() {
		v := *e.Validity
		v.From = e.At
		e.Validity = &v
	}
	return e, nil
}

// signEvent validates an event against this node's state and signs it as
// member, with the member's key on this node.
func (s *Service) signEvent(member string, e *consent.Event) (api.SignedEvent, error) {
	if err := s.state.WithVocabulary(e.Validate); err != nil {
		return api.SignedEvent{}, err
	}
	if err := s.state.CheckConsent(member, e); err != nil {
		return api.SignedEvent{}, err
	}
	key, err := s.signingKey(member)
	if err != nil {
		return api.SignedEvent{}, err
	}
	sg, err := consent.Sign(e, member, key)
	if err != nil {
		return api.SignedEvent{}, err
	}
	return api.SignedEvent{Payload: sg.Encode(), PublicKey: key.Public().(ed25519.PublicKey)}, nil
}

// GiveConsent records a consent given to c.Member (or the member's own
// agreement to share, for Tier "member"), signed with the member's key,
// and returns its receipt.
func (s *Service) GiveConsent(ctx context.Context, c api.Caller, req api.ConsentRequest) (api.ConsentReceipt, error) {
	rc, err := s.giveConsent(ctx, c, req)
	return rc, Translate(err)
}

func (s *Service) giveConsent(ctx context.Context, c api.Caller, req api.ConsentRequest) (api.ConsentReceipt, error) {
	e, err := s.giveEvent(c.Member, &req)
	if err != nil {
		return api.ConsentReceipt{}, err
	}
	rc, err := s.signAndSubmit(ctx, c, e)
	return rc, requestField(err)
}

// requestField renames the field of a consent error about the record a
// ConsentRequest makes ("consent.purposes[0]") to the request's own
// ("purposes[0]").
func requestField(err error) error {
	var ce *consent.Error
	if errors.As(err, &ce) && strings.HasPrefix(ce.Field, "consent.") {
		out := *ce
		out.Field = strings.TrimPrefix(ce.Field, "consent.")
		return &out
	}
	return err
}

// ChangeConsent renews, withdraws, revokes or expires (action) a consent
// record of c.Member's, and returns the event's receipt.
func (s *Service) ChangeConsent(ctx context.Context, c api.Caller, id uuid.UUID, action string, req api.ConsentChange) (api.ConsentReceipt, error) {
	rc, err := s.changeConsent(ctx, c, id, action, req)
	return rc, Translate(err)
}

func (s *Service) changeConsent(ctx context.Context, c api.Caller, id uuid.UUID, action string, req api.ConsentChange) (api.ConsentReceipt, error) {
	if err := s.CatchUp(ctx, c); err != nil {
		return api.ConsentReceipt{}, err
	}
	e, err := s.changeEvent(id, action, &req)
	if err != nil {
		return api.ConsentReceipt{}, err
	}
	return s.signAndSubmit(ctx, c, e)
}

// signAndSubmit signs an event on this node, where the member's key is,
// and submits it on the leader: here, or through the leader's POST
// /v1/consents/events.
func (s *Service) signAndSubmit(ctx context.Context, c api.Caller, e *consent.Event) (api.ConsentReceipt, error) {
	s.AwaitView(ctx)
	sg, err := s.signEvent(c.Member, e)
	if err != nil {
		return api.ConsentReceipt{}, err
	}
	return s.submitEvent(ctx, c, sg)
}

// SubmitEvent appends an event signed by c.Member, on the leader (POST
// /v1/consents/events), and waits until this node's state applied it.
func (s *Service) SubmitEvent(ctx context.Context, c api.Caller, sub api.SignedEvent) (api.ConsentReceipt, error) {
	rc, err := s.submitEvent(ctx, c, sub)
	return rc, Translate(err)
}

// submitEvent appends a signed event on the leader. An event that another
// one overtook (a chain conflict), or that the replicas refused, is an
// error: the entry stays in the log, inert, refused alike by every
// replica.
func (s *Service) submitEvent(ctx context.Context, c api.Caller, sub api.SignedEvent) (api.ConsentReceipt, error) {
	if !s.IsLeader() {
		l, err := s.leader(c)
		if err != nil {
			return api.ConsentReceipt{}, err
		}
		return l.SubmitEvent(ctx, sub)
	}
	member := c.Member
	s.signedMu.Lock()
	defer s.signedMu.Unlock()
	s.AwaitView(ctx)
	var sg consent.Signed
	var e consent.Event
	err := s.state.WithVocabulary(func(v *consent.Vocabulary) (err error) {
		sg, e, err = consent.Decode(sub.Payload, v)
		return err
	})
	if ce := (*consent.Error)(nil); errors.As(err, &ce) && ce.Field == "" {
		out := *ce
		out.Field = "payload" // not a signed event at all
		return api.ConsentReceipt{}, &out
	}
	if err != nil {
		return api.ConsentReceipt{}, err
	}
	if sg.Signer != member {
		return api.ConsentReceipt{}, &consent.Error{Err: consent.ErrForbidden, Field: "signer", Reason: "a member submits only what it signed"}
	}
	// The same signed event again (a retry) is the same entry: answer
	// with its receipt.
	entryID := format.SignedID(sub.Payload)
	if rc, err := s.consentReceipt(ctx, entryID); err == nil {
		return rc, nil
	}
	var entries []ledger.Entry
	register, _, isNew, err := s.memberKeyEntry(member, sub.PublicKey, time.Now().UTC())
	if err != nil {
		return api.ConsentReceipt{}, err
	}
	if isNew {
		entries = append(entries, register)
	}
	entries = append(entries, ledger.Entry{ID: entryID, Kind: format.KindConsent, Author: member, Time: e.At, Payload: sub.Payload})
	index, err := s.appendChecked(ctx, entries...)
	if err != nil {
		return api.ConsentReceipt{}, err
	}
	s.log.Info("consent event", "member", member, "type", e.Type, "record", e.Record, "index", index)
	return s.consentReceipt(ctx, entryID)
}

// consentReceipt builds the receipt of the consent entry id, with its
// proof in the ledger as it is now.
func (s *Service) consentReceipt(ctx context.Context, id uuid.UUID) (api.ConsentReceipt, error) {
	var rc consent.Receipt
	err := s.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		e, _, err := v.ByID(id)
		if err != nil {
			return err
		}
		if e.Kind != format.KindConsent {
			return api.ErrNotFound
		}
		proof, err := v.InclusionProof(e.Index, v.Size())
		if err != nil {
			return err
		}
		rc = consent.NewReceipt(e, v.Size(), v.Root(), proof)
		return nil
	})
	if err != nil {
		return api.ConsentReceipt{}, err
	}
	sg, e, err := consent.Decode(rc.Entry.Payload, nil)
	if err != nil {
		return api.ConsentReceipt{}, err
	}
	rc.Event = &e
	if h, ok := s.state.ConsentRecord(e.Record); ok {
		pub, _ := s.state.MemberKeyAt(sg.Signer, rc.Index)
		k := consent.Kantara(&h.Record, &e, rc.Entry.ID, pub)
		rc.Kantara = &k
	}
	return api.ConsentReceipt{Record: e.Record, Receipt: rc}, nil
}

// Consents returns the consent records of subject (a raw identifier,
// pseudonymised in c.Member's domain) with their histories.
func (s *Service) Consents(c api.Caller, subject string) (api.ConsentList, error) {
	p, err := s.SubjectPseudonym(c.Member, subject)
	if err != nil {
		return api.ConsentList{}, err
	}
	hs := s.state.ConsentsOf(string(p))
	if hs == nil {
		hs = []consent.History{}
	}
	return api.ConsentList{Subject: p, Consents: hs}, nil
}

// Consent returns a consent record of c.Member's (an admin sees every
// member's).
func (s *Service) Consent(c api.Caller, id uuid.UUID) (consent.History, error) {
	h, ok := s.state.ConsentRecord(id)
	if !ok {
		return consent.History{}, api.ErrNotFound
	}
	if h.Record.Controller != c.Member && !c.Admin {
		return consent.History{}, &api.Error{Err: api.ErrForbidden, Field: "id", Reason: "another member's consent record"}
	}
	return h, nil
}

// CheckConsent decides a CheckRequest for c.Member.
func (s *Service) CheckConsent(c api.Caller, req api.CheckRequest) (consent.Decision, error) {
	p, err := s.SubjectPseudonym(c.Member, req.Subject)
	if err != nil {
		return consent.Decision{}, err
	}
	switch {
	case req.Purpose == "":
		return consent.Decision{}, api.Invalid("purpose", "required")
	case req.Category != "" && !api.ValidTerm(req.Category):
		return consent.Decision{}, api.Invalid("category", "a data category such as pd:Purchase")
	}
	if applied := s.state.Applied(); req.AsOf > 0 && req.AsOf != consent.Latest && req.AsOf >= applied {
		return consent.Decision{}, api.Invalid("as_of", "at most the latest applied index, %d", max(applied, 1)-1)
	}
	err = s.state.WithVocabulary(func(v *consent.Vocabulary) error {
		if _, ok := v.Lookup(req.Purpose); !ok {
			return &consent.Error{Err: consent.ErrUnknownPurpose, Field: "purpose", Reason: req.Purpose}
		}
		return nil
	})
	if err != nil {
		return consent.Decision{}, Translate(err)
	}
	at := req.At
	if at.IsZero() {
		at = time.Now()
	}
	asOf := req.AsOf
	if asOf == 0 {
		asOf = consent.Latest
	}
	return s.state.Decide(string(p), c.Member, req.Category, req.Purpose, at, asOf), nil
}

// VerifyConsentReceipt checks a receipt with the public key the ledger
// holds for its author, and that the ledger still has the entry at its
// index; it returns the event. A receipt that does not verify gives an
// error matching api.ErrBadReceipt (or the consent error that says why).
func (s *Service) VerifyConsentReceipt(ctx context.Context, rc consent.Receipt) (consent.Event, error) {
	pub, ok := s.state.MemberKeyAt(rc.Entry.Author, rc.Index)
	if !ok {
		return consent.Event{}, Translate(&consent.Error{Err: consent.ErrBadReceipt, Field: "entry.author", Reason: "no such member key"})
	}
	e, err := rc.Verify(pub, nil)
	if err != nil {
		return consent.Event{}, Translate(err)
	}
	err = s.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		if rc.Size > v.Size() {
			// Its root cannot be checked here: the proof alone would
			// verify against a root the receipt itself supplies.
			return &consent.Error{Err: consent.ErrBadReceipt, Field: "size",
				Reason: fmt.Sprintf("larger than this node's ledger (%d entries): not verifiable here", v.Size())}
		}
		root, err := v.RootAt(rc.Size)
		if err != nil {
			return err
		}
		if root != rc.Root {
			return &consent.Error{Err: consent.ErrBadReceipt, Field: "root", Reason: "not this ledger's root at that size"}
		}
		return nil
	})
	return e, Translate(err)
}

// IsConsentError reports whether err says why a consent event or receipt
// was refused (and not that the node failed).
func IsConsentError(err error) bool {
	var ce *consent.Error
	return errors.As(err, &ce)
}
