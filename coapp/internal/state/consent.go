package state

import (
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
	"coapp.coop/ledger/entry"
)

// consent applies a consent event: decoded, its signature verified under
// the author's registered key, and accepted by the index; or refused, the
// same way on every replica.
func (t *step) consent(e entry.Entry) error {
	s, ev, err := consent.Decode(e.Payload, t.s.consents.Vocabulary())
	if err != nil {
		return err
	}
	if s.Signer != e.Author {
		return &consent.Error{Err: consent.ErrForbidden, Field: "signer", Reason: "not the entry's author"}
	}
	pub, ok := t.key(s.Signer)
	if !ok {
		return &consent.Error{Err: consent.ErrBadSignature, Field: "signer", Reason: "no key registered for " + s.Signer}
	}
	if err := s.Verify(pub); err != nil {
		return err
	}
	if t.dry {
		return t.s.consents.Check(s.Signer, &ev)
	}
	return t.s.consents.Apply(e.Index, s.Signer, &ev, s.Event)
}

// WithVocabulary runs fn on the federation's purposes, under the state's
// lock: fn must not keep v.
func (s *State) WithVocabulary(fn func(v *consent.Vocabulary) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(s.consents.Vocabulary())
}

// CheckConsent says whether signer may make event e now, as every replica
// would decide when it applies it.
func (s *State) CheckConsent(signer string, e *consent.Event) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.consents.Check(signer, e)
}

// ConsentRecord returns a consent record with its history.
func (s *State) ConsentRecord(id uuid.UUID) (consent.History, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.consents.Record(id)
}

// ConsentsOf returns a subject's consent records (by pseudonym).
func (s *State) ConsentsOf(subject string) []consent.History {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.consents.Subject(subject)
}

// Decide decides a use of a subject's data for member: with category, both
// tiers (the subject's consent and the member's agreement to share).
func (s *State) Decide(subject, member, category, purpose string, at time.Time, asOf uint64) consent.Decision {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if category == "" {
		return s.consents.Allowed(subject, purpose, at, asOf)
	}
	return s.consents.Usable(subject, member, category, purpose, at, asOf)
}
