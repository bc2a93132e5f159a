package consent

import (
	"regexp"
	"sort"
	"unicode/utf8"
)

// Purpose is a purpose of processing, identified as in the W3C Data
// Privacy Vocabulary ("dpv:ResearchAndDevelopment") or, for the
// federation's own purposes, with its prefix ("coop:MarketStudy"). A
// purpose narrows its Parent: consent to the parent covers it.
type Purpose struct {
	ID     string `json:"id"`
	Parent string `json:"parent,omitempty"`
	Label  string `json:"label"`
}

// builtin is the part of DPV's purpose taxonomy a federation of
// cooperatives needs first; Define adds the rest.
var builtin = []Purpose{
	{ID: "dpv:ServiceProvision", Label: "Provide the service the person uses"},
	{ID: "dpv:ServiceOptimisation", Parent: "dpv:ServiceProvision", Label: "Improve the service"},
	{ID: "dpv:ServicePersonalisation", Parent: "dpv:ServiceProvision", Label: "Personalise the service"},
	{ID: "dpv:ResearchAndDevelopment", Label: "Research and development"},
	{ID: "dpv:AcademicResearch", Parent: "dpv:ResearchAndDevelopment", Label: "Academic research"},
	{ID: "dpv:CommercialResearch", Parent: "dpv:ResearchAndDevelopment", Label: "Commercial research"},
	{ID: "dpv:NonCommercialResearch", Parent: "dpv:ResearchAndDevelopment", Label: "Non-commercial research"},
	{ID: "dpv:Marketing", Label: "Marketing"},
	{ID: "dpv:DirectMarketing", Parent: "dpv:Marketing", Label: "Direct marketing"},
	{ID: "dpv:Advertising", Parent: "dpv:Marketing", Label: "Advertising"},
	{ID: "dpv:EnforceSecurity", Label: "Security"},
	{ID: "dpv:FraudPreventionAndDetection", Parent: "dpv:EnforceSecurity", Label: "Fraud prevention and detection"},
	{ID: "dpv:LegalCompliance", Label: "Legal compliance"},
}

// maxDepth bounds the purpose hierarchy, so that a decision looks at a
// bounded number of ancestors.
const maxDepth = 8

var purposeID = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}:[A-Za-z][A-Za-z0-9]{0,63}$`)

// Vocabulary is the set of purposes a federation uses: DPV's built-in ones
// and those it defines. Purposes are numbered in the order they were
// added, so that decisions compare small integers. The zero value is not
// usable: call NewVocabulary.
type Vocabulary struct {
	ids       map[string]uint16
	purposes  []Purpose
	ancestors [][]uint16 // for each purpose: itself, then its parent, ...
}

// NewVocabulary returns the built-in DPV purposes.
func NewVocabulary() *Vocabulary {
	v := &Vocabulary{ids: map[string]uint16{}}
	for _, p := range builtin {
		if err := v.Define(p); err != nil {
			panic(err) // the built-in list is fixed and valid
		}
	}
	return v
}

// Define adds a purpose. Its id must be new and prefixed ("coop:Name"), its
// parent (if any) already defined, and the hierarchy at most 8 deep.
func (v *Vocabulary) Define(p Purpose) error {
	chain, err := v.check(p)
	if err != nil {
		return err
	}
	v.ids[p.ID] = uint16(len(v.purposes))
	v.purposes = append(v.purposes, p)
	v.ancestors = append(v.ancestors, chain)
	return nil
}

// Check says whether Define would accept p, without adding it.
func (v *Vocabulary) Check(p Purpose) error {
	_, err := v.check(p)
	return err
}

func (v *Vocabulary) check(p Purpose) ([]uint16, error) {
	switch {
	case !purposeID.MatchString(p.ID):
		return nil, fail(ErrInvalid, "id", "a purpose id is prefix:Name, such as coop:MarketStudy")
	case p.Label == "" || len(p.Label) > 200 || !utf8.ValidString(p.Label):
		return nil, fail(ErrInvalid, "label", "1 to 200 bytes of UTF-8")
	}
	if _, dup := v.ids[p.ID]; dup {
		return nil, fail(ErrExists, "id", "purpose %s is already defined", p.ID)
	}
	if len(v.purposes) >= 1<<16-1 {
		return nil, fail(ErrInvalid, "id", "too many purposes")
	}
	chain := []uint16{uint16(len(v.purposes))}
	if p.Parent != "" {
		parent, ok := v.ids[p.Parent]
		if !ok {
			return nil, fail(ErrUnknownPurpose, "parent", "%s", p.Parent)
		}
		if len(v.ancestors[parent]) >= maxDepth {
			return nil, fail(ErrInvalid, "parent", "the purpose hierarchy is at most %d deep", maxDepth)
		}
		chain = append(chain, v.ancestors[parent]...)
	}
	return chain, nil
}

// Lookup returns a purpose by id.
func (v *Vocabulary) Lookup(id string) (Purpose, bool) {
	if v == nil {
		return Purpose{}, false
	}
	i, ok := v.ids[id]
	if !ok {
		return Purpose{}, false
	}
	return v.purposes[i], true
}

// Covers reports whether consent to broader covers narrower: they are the
// same purpose, or broader is an ancestor of narrower.
func (v *Vocabulary) Covers(broader, narrower string) bool {
	b, ok1 := v.ids[broader]
	n, ok2 := v.ids[narrower]
	if !ok1 || !ok2 {
		return false
	}
	for _, a := range v.ancestors[n] {
		if a == b {
			return true
		}
	}
	return false
}

// Purposes returns every purpose, sorted by id.
func (v *Vocabulary) Purposes() []Purpose {
	out := append([]Purpose(nil), v.purposes...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
