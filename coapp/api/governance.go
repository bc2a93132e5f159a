package api

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
)

// Rules are the federation's governance rules, fixed at genesis.
type Rules struct {
	// Majority is the fraction of all members whose yes passes a proposal
	// (more than it). Default 0.5.
	Majority float64 `json:"majority"`
	// Quorum is the fraction of all members who must have voted. Default
	// 0.5.
	Quorum float64 `json:"quorum"`
	// Lifetime is how long a proposal is open, as an ISO 8601 duration.
	// Default P14D.
	Lifetime string `json:"lifetime"`
	// Committees hold delegated powers: a proposal of a kind a committee
	// may decide, put to that committee, is voted by its members alone,
	// under the same majority and quorum, counted over the committee.
	Committees []Committee `json:"committees,omitempty"`
}

// Committee is a group of members with delegated powers: the proposal
// kinds it decides ("dataset", "grant").
type Committee struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Powers  []string `json:"powers"`
}

// Committee returns the committee of that name.
func (r *Rules) Committee(name string) (*Committee, bool) {
	for i := range r.Committees {
		if r.Committees[i].Name == name {
			return &r.Committees[i], true
		}
	}
	return nil, false
}

// WithDefaults returns the rules with their zero fields set to the
// defaults.
func (r Rules) WithDefaults() Rules {
	if r.Majority == 0 {
		r.Majority = 0.5
	}
	if r.Quorum == 0 {
		r.Quorum = 0.5
	}
	if r.Lifetime == "" {
		r.Lifetime = "P14D"
	}
	return r
}

// Validate checks rules with their defaults set.
func (r Rules) Validate() error {
	if r.Majority < 0.5 || r.Majority >= 1 || math.IsNaN(r.Majority) {
		return Invalid("rules.majority", "from 0.5 to below 1")
	}
	if r.Quorum <= 0 || r.Quorum > 1 || math.IsNaN(r.Quorum) {
		return Invalid("rules.quorum", "above 0, at most 1")
	}
	if end, err := consent.AddDuration(time.Unix(0, 0), r.Lifetime); err != nil || !end.After(time.Unix(0, 0)) {
		return Invalid("rules.lifetime", "a positive ISO 8601 duration, such as P14D")
	}
	names := map[string]bool{}
	for i, c := range r.Committees {
		at := fmt.Sprintf("rules.committees[%d]", i)
		if !ValidMember(c.Name) || names[c.Name] {
			return Invalid(at+".name", "a new name of [a-z0-9._-]")
		}
		names[c.Name] = true
		if len(c.Members) == 0 {
			return Invalid(at+".members", "at least one member")
		}
		for j, p := range c.Powers {
			if p != ProposeDataset && p != ProposeGrant {
				return Invalid(fmt.Sprintf("%s.powers[%d]", at, j), "dataset or grant: admitting and removing members is for all members")
			}
		}
	}
	return nil
}

var memberPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidMember reports whether id is a member id: 1 to 64 characters of
// [a-z0-9._-], starting with a letter or digit.
func ValidMember(id string) bool { return memberPattern.MatchString(id) }

// Proposal kinds.
const (
	ProposeAdmit   = "admit-member"
	ProposeRemove  = "remove-member"
	ProposeDataset = "dataset"
	ProposeGrant   = "grant"
)

// Proposal is what a member puts to the vote: one of Member (to admit or
// remove), Dataset or Grant, by Kind.
type Proposal struct {
	ID      uuid.UUID `json:"id"`
	Kind    string    `json:"kind"`
	Member  string    `json:"member,omitempty"`
	Dataset *Dataset  `json:"dataset,omitempty"`
	Grant   *Grant    `json:"grant,omitempty"`
	// Committee, when set, puts the proposal to that committee of the
	// rules, which must hold the power to decide its kind.
	Committee string `json:"committee,omitempty"`
	// At is when it was proposed; it closes at At plus the rules'
	// lifetime.
	At time.Time `json:"at"`
}

// Validate checks a proposal's shape; what it proposes is checked against
// the federation's state by every replica.
func (p *Proposal) Validate() error {
	if p.ID == uuid.Nil {
		return Invalid("id", "required")
	}
	if p.At.IsZero() {
		return Invalid("at", "required")
	}
	switch p.Kind {
	case ProposeAdmit, ProposeRemove:
		if !ValidMember(p.Member) {
			return Invalid("member", "a member id: 1 to 64 characters of [a-z0-9._-]")
		}
		if p.Dataset != nil || p.Grant != nil {
			return Invalid("kind", "a member proposal carries only the member")
		}
	case ProposeDataset:
		if p.Dataset == nil || p.Member != "" || p.Grant != nil {
			return Invalid("dataset", "required, alone, for a dataset proposal")
		}
		return p.Dataset.Validate()
	case ProposeGrant:
		if p.Grant == nil || p.Member != "" || p.Dataset != nil {
			return Invalid("grant", "required, alone, for a grant proposal")
		}
		return p.Grant.Validate()
	default:
		return Invalid("kind", "admit-member, remove-member, dataset or grant")
	}
	return nil
}

// ValidateRequest checks a new proposal as the API documents it: Validate,
// which every replica applies to the proposals in the log (and which for
// that reason does not grow stricter: replicas of two versions would
// decide differently on an entry written before), then what Validate lets
// through, such as a transform's width or keep below zero on a drop.
func (p *Proposal) ValidateRequest() error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Dataset == nil {
		return nil
	}
	for i, t := range p.Dataset.Types {
		names := make([]string, 0, len(t.Transforms))
		for name := range t.Transforms {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			tr := t.Transforms[name]
			at := fmt.Sprintf("dataset.types[%d].transforms.%s", i, name)
			switch {
			case tr.Width < 0 || math.IsNaN(tr.Width) || math.IsInf(tr.Width, 0):
				return Invalid(at+".width", "above 0")
			case tr.Keep < 0:
				return Invalid(at+".keep", "1 or more")
			}
		}
	}
	return nil
}

// Vote choices.
var Choices = []string{"yes", "no", "abstain"}

// Vote is a member's vote on a proposal: "yes", "no" or "abstain".
type Vote struct {
	Proposal uuid.UUID `json:"proposal"`
	Choice   string    `json:"choice"`
	At       time.Time `json:"at"`
}

// VoteRequest is the body of POST /v1/proposals/{id}/votes.
type VoteRequest struct {
	Choice string `json:"choice"`
}

// Validate checks the choice.
func (v *VoteRequest) Validate() error {
	if !slices.Contains(Choices, v.Choice) {
		return Invalid("choice", "yes, no or abstain")
	}
	return nil
}

// ProposalStatus is a proposal with its votes and outcome.
type ProposalStatus struct {
	Proposal
	Proposer string            `json:"proposer"`
	Index    uint64            `json:"index"`
	Closes   time.Time         `json:"closes"`
	Votes    map[string]string `json:"votes"`
	// Outcome is "open", "passed" or "failed"; an open proposal past
	// Closes can take no more votes and did not pass.
	Outcome  string `json:"outcome"`
	Decided  uint64 `json:"decided,omitempty"`  // the index of the deciding vote
	Electors int    `json:"electors,omitempty"` // members when it was decided
}

// Copy returns a deep copy (its votes are its own).
func (ps *ProposalStatus) Copy() ProposalStatus {
	c := *ps
	c.Votes = make(map[string]string, len(ps.Votes))
	for k, x := range ps.Votes {
		c.Votes[k] = x
	}
	return c
}

// MembersInfo is the answer of GET /v1/members.
type MembersInfo struct {
	Members []string `json:"members"`
	Rules   Rules    `json:"rules"`
}

// SignedBody is a member's signed entry: the body's bytes, the member and
// its Ed25519 signature over a context naming the kind.
type SignedBody struct {
	Body   json.RawMessage `json:"body"`
	Signer string          `json:"signer"`
	Sig    []byte          `json:"sig"`
}

// SignedSubmission is the body of POST /v1/signed: a proposal, vote,
// export audit or key rotation signed by the calling member, with its
// public key for its first signed entry.
type SignedSubmission struct {
	Kind      string     `json:"kind"`
	Signed    SignedBody `json:"signed"`
	PublicKey []byte     `json:"public_key,omitempty"`
	At        time.Time  `json:"at"`
}

// IndexResponse is the answer of POST /v1/signed: where the entry is.
type IndexResponse struct {
	Index uint64 `json:"index"`
}
