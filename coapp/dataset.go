package coapp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
)

// Dataset is a pooled dataset the members own together: which exchange
// types and fields it takes, what more it does to them (on top of the
// schemas' policies), for which purpose, under which data category (what
// the contributing members agreed to share), with which minimum group size
// k, kept how long. It exists once its proposal passes.
type Dataset struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Types       []DatasetType `json:"types"`
	Purpose     string        `json:"purpose"`
	Category    string        `json:"category"`
	K           int           `json:"k"`
	// Retention, an ISO 8601 duration: records older than it, at the
	// export's as-of time, are left out. Empty: kept.
	Retention string `json:"retention,omitempty"`
	// DPBudget is the total epsilon that differentially private
	// aggregates may spend, for each purpose; 0: exact aggregates only.
	DPBudget float64 `json:"dp_budget,omitempty"`
}

// DatasetType is one exchange type in a dataset: the fields taken, and for
// some of them a further transform.
type DatasetType struct {
	Type       string               `json:"type"`
	Fields     []string             `json:"fields"`
	Transforms map[string]Transform `json:"transforms,omitempty"`
}

// Transform is what a dataset does to a field's stored value before export:
// "generalise" a number to ranges of Width, or a string (a postcode, a
// generalised date) to its first Keep characters.
type Transform struct {
	Action string  `json:"action"`
	Width  float64 `json:"width,omitempty"`
	Keep   int     `json:"keep,omitempty"`
}

// DatasetInfo is a dataset that exists: its definition, the proposal that
// created it, and the index at which it passed.
type DatasetInfo struct {
	Dataset
	Proposal uuid.UUID `json:"proposal"`
	Created  uint64    `json:"created"`
}

// Grant gives a member (or an external party, exporting through a
// member's node) access to a dataset for a purpose until a time.
type Grant struct {
	Dataset string    `json:"dataset"`
	Grantee string    `json:"grantee"`
	Purpose string    `json:"purpose"`
	Until   time.Time `json:"until"`
}

// GrantInfo is a grant in force: the proposal that made it and the index.
type GrantInfo struct {
	Grant
	Proposal uuid.UUID `json:"proposal"`
	Index    uint64    `json:"index"`
}

var datasetName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

func (d *Dataset) validate() error {
	switch {
	case !datasetName.MatchString(d.Name):
		return invalid("dataset.name", "1 to 64 characters of [a-z0-9-], starting with a letter")
	case len(d.Description) > 2000:
		return invalid("dataset.description", "at most 2000 bytes")
	case len(d.Types) == 0 || len(d.Types) > 16:
		return invalid("dataset.types", "1 to 16 exchange types")
	case d.K < 1 || d.K > 1000:
		return invalid("dataset.k", "the minimum group size, 1 to 1000")
	case d.DPBudget < 0 || d.DPBudget > 100 || math.IsNaN(d.DPBudget):
		return invalid("dataset.dp_budget", "0 to 100")
	}
	if d.Retention != "" {
		if _, err := consent.AddDuration(time.Unix(0, 0), d.Retention); err != nil {
			return invalid("dataset.retention", "%v", err)
		}
	}
	seen := map[string]bool{}
	for i, t := range d.Types {
		at := fmt.Sprintf("dataset.types[%d]", i)
		if seen[t.Type] {
			return invalid(at+".type", "repeated")
		}
		seen[t.Type] = true
		if len(t.Fields) > maxFields {
			return invalid(at+".fields", "at most %d", maxFields)
		}
		for name, tr := range t.Transforms {
			switch {
			case tr.Action == "generalise" && (tr.Width > 0) != (tr.Keep > 0):
			case tr.Action == "drop":
			default:
				return invalid(at+".transforms."+name, "generalise with width (numbers) or keep (strings), or drop")
			}
		}
	}
	return nil
}

// checkDataset checks a dataset against the federation's schemas and
// purposes.
func (v *view) checkDataset(d *Dataset) error {
	if _, ok := v.consents.Vocabulary().Lookup(d.Purpose); !ok {
		return invalid("dataset.purpose", "unknown purpose %s", d.Purpose)
	}
	if !termPattern.MatchString(d.Category) {
		return invalid("dataset.category", "a data category such as pd:Purchase")
	}
	for i, t := range d.Types {
		at := fmt.Sprintf("dataset.types[%d]", i)
		versions := v.schemas[t.Type]
		if len(versions) == 0 {
			return invalid(at+".type", "no schema is registered for %s", t.Type)
		}
		s := versions[len(versions)-1]
		for j, f := range t.Fields {
			if s.field(f) == nil {
				return invalid(fmt.Sprintf("%s.fields[%d]", at, j), "not a field of %s", t.Type)
			}
		}
		for name := range t.Transforms {
			if s.field(name) == nil {
				return invalid(at+".transforms."+name, "not a field of %s", t.Type)
			}
		}
	}
	return nil
}

var termPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}:[A-Za-z][A-Za-z0-9]{0,63}$`)

func (g *Grant) validate() error {
	switch {
	case !datasetName.MatchString(g.Dataset):
		return invalid("grant.dataset", "a dataset name")
	case g.Grantee == "" || len(g.Grantee) > 256:
		return invalid("grant.grantee", "a member id or an external party's name")
	case g.Purpose == "":
		return invalid("grant.purpose", "required")
	case g.Until.IsZero():
		return invalid("grant.until", "required")
	}
	return nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(jsonErrField(err), "%s", jsonErrReason(err))
	}
	if dec.More() {
		return invalid("body", "trailing data")
	}
	return nil
}

func (v *view) dataset(name string) (DatasetInfo, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	d, ok := v.gov.datasets[name]
	if !ok {
		return DatasetInfo{}, false
	}
	return *d, true
}

func (v *view) datasets() []DatasetInfo {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]DatasetInfo, 0, len(v.gov.datasets))
	for _, d := range v.gov.datasets {
		out = append(out, *d)
	}
	sortDatasets(out)
	return out
}

// grantFor finds the grant that lets grantee export dataset for purpose at
// time t, or says why there is none.
func (v *view) grantFor(dataset, grantee, purpose string, t time.Time) (GrantInfo, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var expired, other bool
	for i := len(v.gov.grants) - 1; i >= 0; i-- {
		g := v.gov.grants[i]
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
		return GrantInfo{}, fmt.Errorf("%w: the grant to %s for %s on %s expired", ErrForbidden, grantee, purpose, dataset)
	case other:
		return GrantInfo{}, fmt.Errorf("%w: %s holds a grant on %s for another purpose, not %s", ErrForbidden, grantee, dataset, purpose)
	}
	return GrantInfo{}, fmt.Errorf("%w: %s holds no grant on %s", ErrForbidden, grantee, dataset)
}
