package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// Stats counts what a scan held back.
type Stats struct {
	NoConsent, Erased, Retained, Unreadable int
}

// Row is one released record: its subject under the dataset's pseudonym,
// the member that published it, its type and date, and its fields as the
// dataset exports them.
type Row struct {
	Subject string
	Member  string
	Type    string
	Date    string
	Fields  map[string]json.RawMessage
}

// Scan calls fn with each record of the dataset as of the plan's index
// that may be released: of the dataset's types, within its retention,
// whose subject consented (both tiers) at that index, not erased; fields
// as the dataset exports them, subject pseudonymised in the dataset's
// domain, with its quasi-identifier group. fn also gets the subject's
// ledger-level pseudonym, to count people; it never leaves the node.
//
// Consent is the person's to the member that published the record, as
// that member recorded it: under their pseudonym in the member's domain.
// A record whose schema puts the subject in the member's domain carries
// that pseudonym as its subject. A record in the federation's domain
// (subject_domain "federation") carries the federation pseudonym, which
// is the same for every member's records about the person and cannot be
// mapped back to the member's; its sealed fields carry the member-domain
// pseudonym (format.ConsentSubjectField), and consent is decided under
// it, once the record is opened: such a record is released when its
// person consented to the member that published it, exactly as a
// member-domain record is, never on a consent given to another member. A
// federation-domain record sealed without it (before it was written) is
// never released, and is counted with those without consent; one whose
// key is destroyed is counted erased, as its consent cannot be read.
func Scan(v *ledger.View, p *Plan, keys Keys, st *Stats, fn func(r *Row, ledgerSubject pseudonym.Pseudonym, group string) error) error {
	return scan(v, p, keys, st, func(r *Row, ledgerSubject, _ pseudonym.Pseudonym, group string) error {
		return fn(r, ledgerSubject, group)
	})
}

// scan is Scan, whose fn also gets the pseudonym the subject's consent
// was decided under: theirs in the publishing member's domain.
func scan(v *ledger.View, p *Plan, keys Keys, st *Stats, fn func(r *Row, ledgerSubject, consentSubject pseudonym.Pseudonym, group string) error) error {
	dsDomain := pseudonym.DatasetDomain(p.d.Name)
	// Per-scan caches, bounded so that memory stays flat however large
	// the dataset: a subject's data key (or erasure) and dataset
	// pseudonym, and the dataset pseudonyms of pseudonymised field values.
	type subjectState struct {
		subject pseudonym.Pseudonym
		author  string
		legacy  bool
		allowed bool
		dk      pseudonym.Secret
		erased  bool
		// unreadable: the subject's key does not unwrap
		unreadable bool
		ds         string
		// For records in the federation's domain: the last consent
		// subject read from a record's box, and its decision.
		link        string
		linkAllowed bool
	}
	const cacheMax = 1 << 16
	// Subjects by their pseudonym as stored: binary payloads' bytes (the
	// lookup copies nothing), the first format's strings.
	subjects := map[string]*subjectState{}
	legacySubjects := map[string]*subjectState{}
	values := map[string]string{}
	for e, err := range v.Entries(0, p.asOf+1) {
		if err != nil {
			return err
		}
		if e.Kind != format.KindRecord || p.refused[e.Index] {
			continue
		}
		// The payload's head, without copying it: most records of a
		// large dataset are of subjects seen already.
		var head format.RecordPayload
		var pt *planType
		var ss *subjectState
		legacy := format.IsLegacyPayload(e.Payload)
		if legacy {
			if head, err = format.DecodeRecordPayload(e.Payload); err != nil {
				return fmt.Errorf("coapp: record %s: %w", e.ID, err)
			}
			if pt = p.types[head.Type]; pt == nil {
				continue
			}
			ss = legacySubjects[string(head.Subject)]
		} else {
			bp, err := format.SplitBinaryPayload(e.Payload)
			if err != nil {
				return fmt.Errorf("coapp: record %s: %w", e.ID, err)
			}
			if pt = p.types[string(bp.Type)]; pt == nil {
				continue
			}
			ss = subjects[string(bp.Subject)]
			head = format.RecordPayload{Type: pt.dt.Type, Version: bp.Version, Box: bp.Box}
			if ss != nil {
				head.Subject = ss.subject
			} else {
				head.Subject = bp.Pseudonym()
			}
		}
		if !p.oldest.IsZero() && e.Time.Before(p.oldest) {
			st.Retained++
			continue
		}
		schema := pt.schema[head.Version]
		federated := schema.SubjectDomain == "federation"
		if ss == nil || ss.author != e.Author {
			// A subject's consent, as of the plan's index and time, is
			// the same for every record of theirs from one member. (A
			// federation pseudonym is never a member's: its consent is
			// read from each record, below.)
			ss = &subjectState{subject: head.Subject, author: e.Author, legacy: legacy}
			ss.allowed = !federated && p.allowed(string(head.Subject), e.Author)
			dk, err := keys.DataKey(v, head.Subject, legacy)
			switch {
			case errors.Is(err, api.ErrErased):
				ss.erased = true
			case errors.Is(err, format.ErrUnreadable):
				ss.unreadable = true
			case err != nil:
				return err
			default:
				ds, err := keys.Pseudonym(dsDomain, string(head.Subject))
				if err != nil {
					return err
				}
				ss.dk, ss.ds = dk, string(ds)
			}
			cache, key := subjects, string(format.SubjectKeyName(head.Subject)[2:])
			if legacy {
				cache, key = legacySubjects, string(head.Subject)
			}
			if len(cache) >= cacheMax {
				clear(cache)
			}
			cache[key] = ss
		}
		if !federated && !ss.allowed {
			st.NoConsent++
			continue
		}
		if ss.erased {
			st.Erased++
			continue
		}
		var fields map[string]json.RawMessage
		if len(head.Box) > 0 && !ss.unreadable {
			fields, err = format.OpenFields(ss.dk, e, &head)
		}
		if ss.unreadable || errors.Is(err, format.ErrUnreadable) {
			st.Unreadable++
			continue
		}
		if err != nil {
			return err
		}
		consentSubject := head.Subject
		if federated {
			link, ok := format.JSONString(fields[format.ConsentSubjectField])
			if !ok {
				st.NoConsent++ // sealed before records carried it
				continue
			}
			if link != ss.link {
				ss.link, ss.linkAllowed = link, p.allowed(link, e.Author)
			}
			if !ss.linkAllowed {
				st.NoConsent++
				continue
			}
			consentSubject = pseudonym.Pseudonym(link)
		}
		row := &Row{Subject: ss.ds, Member: e.Author, Type: head.Type, Date: e.Time.UTC().Format(api.DateLayout), Fields: make(map[string]json.RawMessage, len(pt.dt.Fields))}
		for _, f := range pt.dt.Fields {
			raw, ok := fields[f]
			if !ok {
				continue
			}
			fd := schema.Field(f)
			if fd != nil && fd.Policy.Action == "pseudonymise" {
				// A ledger-level pseudonym never leaves: map it into the
				// dataset's domain.
				s, _ := format.JSONString(raw)
				dp, ok := values[s]
				if !ok {
					ps, err := keys.Pseudonym(dsDomain, s)
					if err != nil {
						return err
					}
					dp = string(ps)
					if len(values) >= cacheMax {
						clear(values)
					}
					values[s] = dp
				}
				raw = format.QuoteJSON(dp)
			}
			out, keep, err := applyTransform(pt.dt.Transforms[f], raw)
			if err != nil {
				return fmt.Errorf("coapp: record %s field %s: %w", e.ID, f, err)
			}
			if keep {
				row.Fields[f] = out
			}
		}
		var group strings.Builder
		group.WriteString(head.Type)
		for _, q := range pt.quasi {
			group.WriteByte(0)
			group.Write(row.Fields[q])
		}
		if err := fn(row, head.Subject, consentSubject, group.String()); err != nil {
			return err
		}
	}
	return nil
}

// allowed decides whether the subject (a pseudonym in member's domain)
// consented to member, both tiers, at the plan's index and time, and at
// its later consent index when it has one.
func (p *Plan) allowed(subject, member string) bool {
	if !p.state.Decide(subject, member, p.d.Category, p.purpose, p.at, p.asOf).Allowed {
		return false
	}
	return p.consentAt <= p.asOf || p.state.Decide(subject, member, p.d.Category, p.purpose, p.consentTime, p.consentAt).Allowed
}

// applyTransform applies a dataset's transform to a stored value.
func applyTransform(t api.Transform, raw json.RawMessage) (json.RawMessage, bool, error) {
	switch {
	case t.Action == "":
		return raw, true, nil
	case t.Action == "drop":
		return nil, false, nil
	case t.Width > 0:
		x, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(x, 0) {
			return raw, true, nil // a value already generalised to a range stays as it is
		}
		s, err := pseudonym.GeneraliseNumber(x, t.Width)
		if err != nil {
			return nil, false, err
		}
		return format.QuoteJSON(s), true, nil
	default:
		s, ok := format.JSONString(raw)
		if !ok {
			s = string(raw)
		}
		if r := []rune(s); len(r) > t.Keep {
			s = string(r[:t.Keep]) + "*"
		}
		return format.QuoteJSON(s), true, nil
	}
}

// KGroups counts the distinct subjects of each quasi-identifier group, up
// to k: a group is released when k different people are in it, however
// many records each has. Memory is bounded by groups × k.
type KGroups map[string][]pseudonym.Pseudonym

// Add counts subject s in group.
func (g KGroups) Add(group string, s pseudonym.Pseudonym, k int) {
	seen := g[group]
	if len(seen) >= k {
		return
	}
	for _, x := range seen {
		if x == s {
			return
		}
	}
	g[group] = append(seen, s)
}

// Reached reports whether group holds k people.
func (g KGroups) Reached(group string, k int) bool { return len(g[group]) >= k }
