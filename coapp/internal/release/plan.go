package release

import (
	"sort"
	"time"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/state"
	"coapp.coop/consent"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// Keys is what a release needs of the node's keys: subjects' data keys as
// the key store in a view holds them (api.ErrErased when destroyed,
// format.ErrUnreadable when they do not unwrap), and pseudonyms in a
// dataset's domain.
type Keys interface {
	DataKey(v *ledger.View, p pseudonym.Pseudonym, legacy bool) (pseudonym.Secret, error)
	Pseudonym(d pseudonym.Domain, id string) (pseudonym.Pseudonym, error)
}

// Plan is a dataset resolved against its schemas for one release.
type Plan struct {
	d       api.DatasetInfo
	purpose string
	asOf    uint64
	at      time.Time // when consent is decided: the node's clock at the export
	// consentAt, when after asOf, is the latest index when the release
	// ran: a subject must hold consent then too, so that an export as of
	// an earlier index never brings back someone who withdrew since.
	consentAt   uint64
	consentTime time.Time
	types       map[string]*planType
	columns     []string // every field of every type, sorted, for CSV
	oldest      time.Time
	// refused are the record entries every replica refused (no valid
	// batch signature): never part of a dataset.
	refused map[uint64]bool
	state   *state.State
}

type planType struct {
	dt     api.DatasetType
	schema map[int]api.Schema // by version
	quasi  []string           // fields that are quasi-identifiers, sorted
}

// NewPlan resolves a dataset for a release as of an index, for purpose.
//
// at is the time consent is decided at (and retention counted from): the
// node's clock when an export runs, recorded in its audit entry so that a
// replay uses the same. Entries' own times are written by callers (a
// record's is the exchange's date), so they are not used for it.
func NewPlan(v *ledger.View, st *state.State, d api.DatasetInfo, purpose string, asOf, consentAt uint64, at time.Time) (*Plan, error) {
	if _, err := v.Entry(asOf); err != nil {
		return nil, err
	}
	p := &Plan{d: d, purpose: purpose, asOf: asOf, at: at, types: map[string]*planType{}, refused: st.RefusedRecords(), state: st}
	if consentAt > asOf {
		if _, err := v.Entry(consentAt); err != nil {
			return nil, err
		}
		p.consentAt, p.consentTime = consentAt, at
	}
	if d.Retention != "" {
		end, err := consent.AddDuration(p.at, d.Retention)
		if err != nil {
			return nil, err
		}
		p.oldest = p.at.Add(-end.Sub(p.at))
	}
	cols := map[string]bool{}
	for _, dt := range d.Types {
		pt := &planType{dt: dt, schema: map[int]api.Schema{}}
		for i, s := range st.SchemaVersions(dt.Type) {
			pt.schema[i+1] = s
		}
		latest := pt.schema[len(pt.schema)]
		for _, f := range dt.Fields {
			cols[f] = true
			if fd := latest.Field(f); fd != nil && fd.Class == "quasi" {
				if tr, ok := dt.Transforms[f]; !ok || tr.Action != "drop" {
					pt.quasi = append(pt.quasi, f)
				}
			}
		}
		sort.Strings(pt.quasi)
		p.types[dt.Type] = pt
	}
	for c := range cols {
		p.columns = append(p.columns, c)
	}
	sort.Strings(p.columns)
	return p, nil
}

// Columns returns every field of every type of the dataset, sorted.
func (p *Plan) Columns() []string { return p.columns }
