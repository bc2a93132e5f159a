package state

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
)

// Queries of governance, datasets and exports. Each returns a copy.

// Members returns the federation's members, sorted.
func (s *State) Members() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedKeys(s.gov.members)
}

// IsMember reports whether m is a member of the federation.
func (s *State) IsMember(m string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.gov.members[m]
}

// Rules returns the federation's governance rules.
func (s *State) Rules() api.Rules {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.gov.rules
}

// CheckProposal says whether member may propose p now.
func (s *State) CheckProposal(member string, p *api.Proposal) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.checkProposal(member, p)
}

// CheckVote says whether member may cast vt now.
func (s *State) CheckVote(member string, vt *api.Vote) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, err := s.checkVote(member, vt)
	return err
}

// Proposal returns a proposal with its votes and outcome.
func (s *State) Proposal(id uuid.UUID) (api.ProposalStatus, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ps, ok := s.gov.proposals[id]
	if !ok {
		return api.ProposalStatus{}, false
	}
	return ps.Copy(), true
}

// Proposals returns every proposal, oldest first.
func (s *State) Proposals() []api.ProposalStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]api.ProposalStatus, 0, len(s.gov.order))
	for _, id := range s.gov.order {
		out = append(out, s.gov.proposals[id].Copy())
	}
	return out
}

// Dataset returns a dataset that exists.
func (s *State) Dataset(name string) (api.DatasetInfo, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.gov.datasets[name]
	if !ok {
		return api.DatasetInfo{}, false
	}
	return *d, true
}

// Datasets returns every dataset, by name.
func (s *State) Datasets() []api.DatasetInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]api.DatasetInfo, 0, len(s.gov.datasets))
	for _, name := range sortedKeys(s.gov.datasets) {
		out = append(out, *s.gov.datasets[name])
	}
	return out
}

// Exports returns every export's audit entry, oldest first.
func (s *State) Exports() []api.ExportAudit {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]api.ExportAudit(nil), s.gov.exports...)
}

// BudgetLeft is what remains of a dataset's privacy budget for a purpose.
func (s *State) BudgetLeft(dataset, purpose string) float64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.gov.datasets[dataset]
	if !ok {
		return 0
	}
	return d.DPBudget - s.gov.spent[dataset+"\x00"+purpose]
}

// GrantFor finds the grant that lets grantee export dataset for purpose at
// time t, or says why there is none.
func (s *State) GrantFor(dataset, grantee, purpose string, t time.Time) (api.GrantInfo, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var expired, other bool
	for i := len(s.gov.grants) - 1; i >= 0; i-- {
		g := s.gov.grants[i]
		if g.Dataset != dataset || g.Grantee != grantee {
			continue
		}
		if g.Purpose != purpose {
			other = true
			continue
		}
		if !t.Before(g.Until) {
			expired = true
			continue
		}
		return g, nil
	}
	switch {
	case expired:
		return api.GrantInfo{}, fmt.Errorf("%w: the grant to %s for %s on %s expired", api.ErrForbidden, grantee, purpose, dataset)
	case other:
		return api.GrantInfo{}, fmt.Errorf("%w: %s holds a grant on %s for another purpose, not %s", api.ErrForbidden, grantee, dataset, purpose)
	}
	return api.GrantInfo{}, fmt.Errorf("%w: %s holds no grant on %s", api.ErrForbidden, grantee, dataset)
}
