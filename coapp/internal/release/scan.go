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
func Scan(v *ledger.View, p *Plan, keys Keys, st *Stats, fn func(r *Row, ledgerSubject pseudonym.Pseudonym, group string) error) error {
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
		if ss == nil || ss.author != e.Author {
			// A subject's consent, as of the plan's index and time, is
			// the same for every record of theirs from one member.
			ss = &subjectState{subject: head.Subject, author: e.Author, legacy: legacy}
			d := p.state.Decide(string(head.Subject), e.Author, p.d.Category, p.purpose, p.at, p.asOf)
			ss.allowed = d.Allowed
			if ss.allowed && p.consentAt > p.asOf {
				ss.allowed = p.state.Decide(string(head.Subject), e.Author, p.d.Category, p.purpose, p.consentTime, p.consentAt).Allowed
			}
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
		if !ss.allowed {
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
		schema := pt.schema[head.Version]
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
		if err := fn(row, head.Subject, group.String()); err != nil {
			return err
		}
	}
	return nil
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
