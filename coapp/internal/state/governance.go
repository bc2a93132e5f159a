package state

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/consent"
	"coapp.coop/ledger/entry"
)

// Governance: the members decide, one member one vote. A member proposes
// (admitting or removing a member, creating a dataset, granting access to
// one); members vote; a proposal passes once more than Majority of all
// members voted yes and at least Quorum of them voted at all, and fails
// once it no longer can, or when its lifetime ends. Proposals and votes
// are signed by the member and every replica verifies and tallies them as
// it applies them, so every replica knows the same outcome at the same
// index.

// governance is the part of the state that governance entries build.
type governance struct {
	rules     api.Rules
	members   map[string]bool
	proposals map[uuid.UUID]*api.ProposalStatus
	order     []uuid.UUID
	datasets  map[string]*api.DatasetInfo
	grants    []api.GrantInfo
	exports   []api.ExportAudit
	spent     map[string]float64 // epsilon, by dataset and purpose
}

func newGovernance() governance {
	return governance{
		rules: api.Rules{}.WithDefaults(), members: map[string]bool{},
		proposals: map[uuid.UUID]*api.ProposalStatus{}, datasets: map[string]*api.DatasetInfo{}, spent: map[string]float64{},
	}
}

// proposal records a proposal, or refuses it.
func (t *step) proposal(e entry.Entry) error {
	var p api.Proposal
	signer, err := t.decodeSigned(e, &p)
	if err != nil {
		return err
	}
	if !p.At.Equal(e.Time) {
		return api.Invalid("at", "the proposal's time is the entry's")
	}
	if err := t.s.checkProposal(signer, &p); err != nil {
		return err
	}
	if t.dry {
		return nil
	}
	g := &t.s.gov
	closes, _ := consent.AddDuration(p.At, g.rules.Lifetime)
	g.proposals[p.ID] = &api.ProposalStatus{Proposal: p, Proposer: signer, Index: e.Index, Closes: closes, Votes: map[string]string{}, Outcome: "open"}
	g.order = append(g.order, p.ID)
	return nil
}

// checkProposal says whether member may propose p now.
func (s *State) checkProposal(member string, p *api.Proposal) error {
	g := &s.gov
	if !g.members[member] {
		return fmt.Errorf("%w: %s", api.ErrNotMember, member)
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Committee != "" {
		c, ok := g.rules.Committee(p.Committee)
		switch {
		case !ok:
			return api.Invalid("committee", "no committee %s in the rules", p.Committee)
		case !slices.Contains(c.Powers, p.Kind):
			return api.Invalid("committee", "committee %s cannot decide a %s proposal", p.Committee, p.Kind)
		case !slices.Contains(c.Members, member):
			return fmt.Errorf("%w: %s is not on committee %s", api.ErrNotMember, member, p.Committee)
		}
	}
	if _, dup := g.proposals[p.ID]; dup {
		return api.Invalid("id", "a proposal with this id exists")
	}
	switch p.Kind {
	case api.ProposeAdmit:
		if g.members[p.Member] {
			return api.Invalid("member", "%s is already a member", p.Member)
		}
	case api.ProposeRemove:
		if !g.members[p.Member] {
			return api.Invalid("member", "%s is not a member", p.Member)
		}
	case api.ProposeDataset:
		if _, exists := g.datasets[p.Dataset.Name]; exists {
			return api.Invalid("dataset.name", "dataset %s exists", p.Dataset.Name)
		}
		for _, id := range g.order {
			other := g.proposals[id]
			if other.Kind == api.ProposeDataset && other.Outcome == "open" && other.Dataset.Name == p.Dataset.Name && p.At.Before(other.Closes) {
				return api.Invalid("dataset.name", "proposal %s for dataset %s is open", other.ID, p.Dataset.Name)
			}
		}
		if err := s.checkDataset(p.Dataset); err != nil {
			return err
		}
	case api.ProposeGrant:
		ds, ok := g.datasets[p.Grant.Dataset]
		if !ok {
			return api.Invalid("grant.dataset", "no dataset %s", p.Grant.Dataset)
		}
		if !s.consents.Vocabulary().Covers(ds.Purpose, p.Grant.Purpose) {
			return api.Invalid("grant.purpose", "the dataset is for %s", ds.Purpose)
		}
		if !p.Grant.Until.After(p.At) {
			return api.Invalid("grant.until", "must be after the proposal")
		}
	}
	return nil
}

// checkDataset checks a dataset against the federation's schemas and
// purposes.
func (s *State) checkDataset(d *api.Dataset) error {
	if _, ok := s.consents.Vocabulary().Lookup(d.Purpose); !ok {
		return api.Invalid("dataset.purpose", "unknown purpose %s", d.Purpose)
	}
	if !api.ValidTerm(d.Category) {
		return api.Invalid("dataset.category", "a data category such as pd:Purchase")
	}
	for i, t := range d.Types {
		at := fmt.Sprintf("dataset.types[%d]", i)
		versions := s.schemas[t.Type]
		if len(versions) == 0 {
			return api.Invalid(at+".type", "no schema is registered for %s", t.Type)
		}
		sc := versions[len(versions)-1]
		for j, f := range t.Fields {
			if sc.Field(f) == nil {
				return api.Invalid(fmt.Sprintf("%s.fields[%d]", at, j), "not a field of %s", t.Type)
			}
		}
		for _, name := range sortedKeys(t.Transforms) {
			if sc.Field(name) == nil {
				return api.Invalid(at+".transforms."+name, "not a field of %s", t.Type)
			}
		}
	}
	return nil
}

// vote records a vote, and decides its proposal when the vote makes the
// outcome certain.
func (t *step) vote(e entry.Entry) error {
	var vt api.Vote
	signer, err := t.decodeSigned(e, &vt)
	if err != nil {
		return err
	}
	if !vt.At.Equal(e.Time) {
		return api.Invalid("at", "the vote's time is the entry's")
	}
	ps, err := t.s.checkVote(signer, &vt)
	if err != nil {
		return err
	}
	if t.dry {
		return nil
	}
	ps.Votes[signer] = vt.Choice
	t.s.tally(ps, e.Index)
	return nil
}

func (s *State) checkVote(member string, vt *api.Vote) (*api.ProposalStatus, error) {
	g := &s.gov
	if !g.members[member] {
		return nil, fmt.Errorf("%w: %s", api.ErrNotMember, member)
	}
	if !slices.Contains(api.Choices, vt.Choice) {
		return nil, api.Invalid("choice", "yes, no or abstain")
	}
	ps, ok := g.proposals[vt.Proposal]
	if !ok {
		return nil, fmt.Errorf("%w: proposal %s", api.ErrNotFound, vt.Proposal)
	}
	if ps.Outcome != "open" {
		return nil, fmt.Errorf("%w: it %s", api.ErrClosed, ps.Outcome)
	}
	if !vt.At.Before(ps.Closes) {
		return nil, fmt.Errorf("%w: its lifetime ended at %s", api.ErrClosed, ps.Closes.Format(time.RFC3339))
	}
	if _, voted := ps.Votes[member]; voted {
		return nil, api.ErrVoted
	}
	if ps.Committee != "" {
		if c, ok := g.rules.Committee(ps.Committee); !ok || !slices.Contains(c.Members, member) {
			return nil, fmt.Errorf("%w: %s is not on committee %s", api.ErrNotMember, member, ps.Committee)
		}
	}
	return ps, nil
}

// tally decides a proposal once its outcome is certain, and carries it
// out when it passed.
func (s *State) tally(ps *api.ProposalStatus, index uint64) {
	g := &s.gov
	n := 0
	yes, cast := 0, 0
	electorate := g.members
	if ps.Committee != "" {
		// The committee's members who are still members of the federation.
		electorate = map[string]bool{}
		if c, ok := g.rules.Committee(ps.Committee); ok {
			for _, m := range c.Members {
				if g.members[m] {
					electorate[m] = true
				}
			}
		}
	}
	for m := range electorate { // counts only: the order does not matter
		n++
		if c, ok := ps.Votes[m]; ok {
			cast++
			if c == "yes" {
				yes++
			}
		}
	}
	need := int(math.Floor(g.rules.Majority*float64(n))) + 1 // more than Majority of all members
	quorum := int(math.Ceil(g.rules.Quorum * float64(n)))
	switch {
	case yes >= need && cast >= quorum && ps.Kind == api.ProposeDataset && g.datasets[ps.Dataset.Name] != nil:
		// Another proposal created a dataset of that name meanwhile: it
		// is not replaced.
		ps.Outcome, ps.Decided, ps.Electors = "failed", index, n
	case yes >= need && cast >= quorum:
		ps.Outcome, ps.Decided, ps.Electors = "passed", index, n
		s.carryOut(ps, index)
	case yes+(n-cast) < need:
		ps.Outcome, ps.Decided, ps.Electors = "failed", index, n
	}
}

// carryOut makes a passed proposal so.
func (s *State) carryOut(ps *api.ProposalStatus, index uint64) {
	g := &s.gov
	switch ps.Kind {
	case api.ProposeAdmit:
		g.members[ps.Member] = true
	case api.ProposeRemove:
		delete(g.members, ps.Member)
		// Its tokens stop working on every replica.
		for id, tok := range s.tokens {
			if tok.member == ps.Member {
				delete(s.tokens, id)
			}
		}
		// A member that leaves keeps no access to the datasets.
		kept := g.grants[:0]
		for _, gr := range g.grants {
			if gr.Grantee != ps.Member {
				kept = append(kept, gr)
			}
		}
		g.grants = kept
	case api.ProposeDataset:
		d := *ps.Dataset
		g.datasets[d.Name] = &api.DatasetInfo{Dataset: d, Proposal: ps.ID, Created: index}
	case api.ProposeGrant:
		g.grants = append(g.grants, api.GrantInfo{Grant: *ps.Grant, Proposal: ps.ID, Index: index})
	}
	if ps.Kind == api.ProposeAdmit || ps.Kind == api.ProposeRemove {
		// The electorate changed: open proposals are tallied again, in
		// the order they were made (a removal can decide one whose votes
		// are all in).
		for _, id := range g.order {
			if other := g.proposals[id]; other.Outcome == "open" {
				s.tally(other, index)
			}
		}
	}
}

// export records an export's audit entry, and spends its privacy budget.
func (t *step) export(e entry.Entry) error {
	var a api.ExportAudit
	signer, err := t.decodeSigned(e, &a)
	if err != nil {
		return err
	}
	if err := t.s.checkAudit(signer, &a, e.Time); err != nil {
		return err
	}
	if t.dry {
		return nil
	}
	g := &t.s.gov
	if a.Epsilon != 0 {
		g.spent[a.Dataset+"\x00"+a.Purpose] += a.Epsilon
	}
	a.Index = e.Index
	g.exports = append(g.exports, a)
	return nil
}

// checkAudit says whether member may write an audit entry: it names the
// member, its time is the entry's, the member holds a grant on the dataset
// for the purpose then (so that nobody else writes audit entries or spends
// a dataset's privacy budget), and the budget it spends is left.
func (s *State) checkAudit(member string, a *api.ExportAudit, at time.Time) error {
	g := &s.gov
	if a.Member != member {
		return fmt.Errorf("%w: an audit entry names its signer", api.ErrForbidden)
	}
	if !a.At.Equal(at) {
		return api.Invalid("at", "the audit's time is the entry's")
	}
	granted := false
	for _, gr := range g.grants {
		granted = granted || gr.Dataset == a.Dataset && gr.Grantee == member && gr.Purpose == a.Purpose && at.Before(gr.Until)
	}
	if !granted {
		return fmt.Errorf("%w: %s holds no grant on %s for %s", api.ErrForbidden, member, a.Dataset, a.Purpose)
	}
	if a.Epsilon != 0 {
		d, ok := g.datasets[a.Dataset]
		if !ok || !(a.Epsilon > 0) || g.spent[a.Dataset+"\x00"+a.Purpose]+a.Epsilon > d.DPBudget+1e-12 {
			return fmt.Errorf("%w: %s for %s", api.ErrBudgetSpent, a.Dataset, a.Purpose)
		}
	}
	return nil
}
