package server

import (
	"context"
	"errors"
	"strings"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// subjectPseudonyms returns a subject's pseudonyms in the member's domain
// and, with federation, the federation's, under every key version held. A
// subject api.CheckSubject refuses is a *api.ValidationError for
// "subject".
func (s *Service) subjectPseudonyms(member, subject string, federation bool) ([]pseudonym.Pseudonym, error) {
	if err := api.CheckSubject(subject); err != nil {
		return nil, err
	}
	var out []pseudonym.Pseudonym
	domains := []pseudonym.Domain{pseudonym.MemberDomain(member)}
	if federation {
		domains = append(domains, pseudonym.Federation)
	}
	for _, d := range domains {
		ps, err := s.keys.All(d, subject)
		if err != nil {
			return nil, api.Invalid("subject", "cannot be pseudonymised: %v", err)
		}
		out = append(out, ps...)
	}
	return out, nil
}

// Access lists what the ledger holds about a subject, as c.Member sees
// them: the records it published under the subject's pseudonyms in its
// domain and the federation's, with their fields decrypted (erased ones
// marked). It reads the whole log, on the leader.
func (s *Service) Access(ctx context.Context, c api.Caller, subject string) (api.SubjectReport, error) {
	rep, err := s.access(ctx, c, subject)
	return rep, Translate(err)
}

func (s *Service) access(ctx context.Context, c api.Caller, subject string) (api.SubjectReport, error) {
	if err := api.CheckSubject(subject); err != nil {
		return api.SubjectReport{}, err
	}
	if !s.IsLeader() {
		l, err := s.leader(c)
		if err != nil {
			return api.SubjectReport{}, err
		}
		return l.Access(ctx, subject)
	}
	ps, err := s.subjectPseudonyms(c.Member, subject, true)
	if err != nil {
		return api.SubjectReport{}, err
	}
	want := make(map[pseudonym.Pseudonym]bool, len(ps))
	for _, p := range ps {
		want[p] = true
	}
	rep := api.SubjectReport{Pseudonyms: ps, Records: []api.SubjectRecord{}}
	s.AwaitView(ctx) // for records' refusals
	err = s.ledger.Read(ctx, ledger.Leader, func(v *ledger.View) error {
		for e, err := range v.Entries(0, v.Size()) {
			if err != nil {
				return err
			}
			// Only what this member published: another member's records
			// about the same person (under the federation's pseudonym)
			// are theirs to disclose.
			if e.Kind != format.KindRecord || e.Author != c.Member {
				continue
			}
			head, err := format.DecodeRecordPayload(e.Payload)
			if err != nil || !want[head.Subject] {
				continue
			}
			leaf, err := v.LeafHash(e.Index)
			if err != nil {
				return err
			}
			p, fields, err := s.openRecord(v, e)
			sr := api.SubjectRecord{RecordInfo: api.RecordInfo{
				Receipt: api.Receipt{ID: e.ID, Index: e.Index, Leaf: leaf},
				Type:    p.Type, Version: p.Version, Time: e.Time, Member: e.Author,
			}}
			if rerr := s.state.RecordRefusal(e.Index); rerr != nil {
				sr.Refused = strings.TrimPrefix(rerr.Error(), "coapp: ")
			}
			switch {
			case errors.Is(err, api.ErrErased):
				sr.Erased = true
			case errors.Is(err, format.ErrUnreadable):
				sr.Unreadable = true
			case err != nil:
				return err
			default:
				delete(fields, format.ConsentSubjectField) // no field of the record's
				sr.Fields = fields
			}
			rep.Records = append(rep.Records, sr)
		}
		return nil
	})
	return rep, err
}

// Erase destroys a subject's data keys, under their pseudonyms in
// c.Member's domain (every key version), on every replica: the records
// the member published about them can no longer be decrypted anywhere,
// and nothing more can be published about them under those pseudonyms.
// With federation (an admin's act) it also destroys the key under the
// federation's pseudonym, which every member's records about the person
// share. It returns once the destruction is committed, with its Raft
// index; each node then purges its files (ledger.WaitPurged).
func (s *Service) Erase(ctx context.Context, c api.Caller, subject string, federation bool) (api.EraseResponse, error) {
	out, err := s.erase(ctx, c, subject, federation)
	return out, Translate(err)
}

func (s *Service) erase(ctx context.Context, c api.Caller, subject string, federation bool) (api.EraseResponse, error) {
	if err := api.CheckSubject(subject); err != nil {
		return api.EraseResponse{}, err
	}
	if !s.IsLeader() {
		if federation && !c.Admin {
			return api.EraseResponse{}, api.ErrForbidden
		}
		l, err := s.leader(c)
		if err != nil {
			return api.EraseResponse{}, err
		}
		return l.EraseSubject(ctx, subject)
	}
	ps, err := s.subjectPseudonyms(c.Member, subject, federation)
	if err != nil {
		return api.EraseResponse{}, err
	}
	names := make([][]byte, 0, 2*len(ps))
	for _, p := range ps {
		names = append(names, format.SubjectKeyName(p), format.LegacyKeyName(p))
	}
	index, err := s.ledger.Destroy(ctx, names...)
	if err != nil {
		return api.EraseResponse{}, err
	}
	s.cache.forget(ps)
	s.log.Info("subject erased", "member", c.Member, "raft_index", index)
	return api.EraseResponse{Pseudonyms: ps, RaftIndex: index}, nil
}
