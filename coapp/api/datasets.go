package api

import (
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

// ValidDatasetName reports whether name is 1 to 64 characters of
// [a-z0-9-], starting with a letter.
func ValidDatasetName(name string) bool { return datasetName.MatchString(name) }

var termPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}:[A-Za-z][A-Za-z0-9]{0,63}$`)

// ValidTerm reports whether t is a vocabulary term such as pd:Purchase.
func ValidTerm(t string) bool { return termPattern.MatchString(t) }

// Validate checks a dataset's definition; its types, fields and purpose
// are checked against the federation's schemas and vocabulary by every
// replica.
func (d *Dataset) Validate() error {
	switch {
	case !datasetName.MatchString(d.Name):
		return Invalid("dataset.name", "1 to 64 characters of [a-z0-9-], starting with a letter")
	case len(d.Description) > 2000:
		return Invalid("dataset.description", "at most 2000 bytes")
	case len(d.Types) == 0 || len(d.Types) > 16:
		return Invalid("dataset.types", "1 to 16 exchange types")
	case d.K < 1 || d.K > 1000:
		return Invalid("dataset.k", "the minimum group size, 1 to 1000")
	case d.DPBudget < 0 || d.DPBudget > 100 || math.IsNaN(d.DPBudget):
		return Invalid("dataset.dp_budget", "0 to 100")
	}
	if d.Retention != "" {
		if _, err := consent.AddDuration(time.Unix(0, 0), d.Retention); err != nil {
			return Invalid("dataset.retention", "%v", err)
		}
	}
	seen := map[string]bool{}
	for i, t := range d.Types {
		at := fmt.Sprintf("dataset.types[%d]", i)
		if seen[t.Type] {
			return Invalid(at+".type", "repeated")
		}
		seen[t.Type] = true
		if len(t.Fields) > MaxFields {
			return Invalid(at+".fields", "at most %d", MaxFields)
		}
		for name, tr := range t.Transforms {
			switch {
			case tr.Action == "generalise" && (tr.Width > 0) != (tr.Keep > 0):
			case tr.Action == "drop":
			default:
				return Invalid(at+".transforms."+name, "generalise with width (numbers) or keep (strings), or drop")
			}
		}
	}
	return nil
}

// Validate checks a grant's shape.
func (g *Grant) Validate() error {
	switch {
	case !datasetName.MatchString(g.Dataset):
		return Invalid("grant.dataset", "a dataset name")
	case g.Grantee == "" || len(g.Grantee) > 256:
		return Invalid("grant.grantee", "a member id or an external party's name")
	case g.Purpose == "":
		return Invalid("grant.purpose", "required")
	case g.Until.IsZero():
		return Invalid("grant.until", "required")
	}
	return nil
}

// ExportRequest asks for a dataset's export, for a purpose the caller holds
// a grant for, as of a ledger index (default: the latest this node
// applied), as "jsonl" (default) or "csv".
type ExportRequest struct {
	Dataset string `json:"dataset"`
	Purpose string `json:"purpose"`
	Format  string `json:"format,omitempty"`
	AsOf    uint64 `json:"as_of,omitempty"`
}

// Validate checks the request's shape: a purpose, a format.
func (r *ExportRequest) Validate() error {
	if r.Purpose == "" {
		return Invalid("purpose", "required: the purpose of a grant you hold")
	}
	if r.Format != "" && r.Format != "jsonl" && r.Format != "csv" {
		return Invalid("format", "jsonl or csv")
	}
	return nil
}

// ExportAudit is the audit entry every export appends before it releases a
// byte: who, which dataset, purpose and as-of index, how many rows went out
// and how many were held back, and the SHA-256 of the output. The same
// dataset, purpose, format and index give the same bytes, so anyone can
// check the hash by exporting again.
type ExportAudit struct {
	ID      uuid.UUID `json:"id"`
	Member  string    `json:"member"`
	Dataset string    `json:"dataset"`
	Purpose string    `json:"purpose"`
	Format  string    `json:"format"`
	AsOf    uint64    `json:"as_of"`
	// ConsentAt, when set, is the later index at which the subjects'
	// consent was checked too (the latest when an export as of an earlier
	// index ran): the same dataset, purpose, format, as_of and consent_at
	// give the same bytes.
	ConsentAt uint64 `json:"consent_at,omitempty"`
	// DecidedAt is the time consent was decided at (the node's clock when
	// the export ran); a replay decides at it too.
	DecidedAt  time.Time `json:"decided_at,omitzero"`
	Rows       int       `json:"rows"`
	Suppressed int       `json:"suppressed"`
	NoConsent  int       `json:"no_consent"`
	Erased     int       `json:"erased"`
	// Unreadable counts records skipped because they cannot be decrypted
	// (never written by an honest node).
	Unreadable int       `json:"unreadable,omitempty"`
	SHA256     string    `json:"sha256"`
	At         time.Time `json:"at"`
	// Epsilon is the privacy budget a differentially private aggregate
	// spent.
	Epsilon float64 `json:"epsilon,omitempty"`
	// Index is where the audit entry is in the ledger (set when read).
	Index uint64 `json:"index,omitempty"`
}

// Export headers: the audit entry's index and the output's SHA-256, sent
// before the body (the audit entry is in the ledger before any byte is).
const (
	HeaderExportSHA256 = "Coapp-Export-Sha256"
	HeaderExportAudit  = "Coapp-Export-Audit-Index"
	HeaderExportRows   = "Coapp-Export-Rows"
)

// ExportRow is one released record, as a JSON Lines export writes it.
type ExportRow struct {
	Subject string                     `json:"subject"`
	Member  string                     `json:"member"`
	Type    string                     `json:"type"`
	Date    string                     `json:"date"`
	Fields  map[string]json.RawMessage `json:"fields"`
}

// AggregateRequest asks for counts, sums or means of a dataset's records by
// group, for a purpose the caller holds a grant for. Groups smaller than
// the dataset's k are suppressed. With DP set, the answer is
// differentially private (Laplace noise), and its epsilon is spent from
// the dataset's budget for that purpose, which the ledger accounts for.
type AggregateRequest struct {
	Purpose string   `json:"purpose"`
	GroupBy []string `json:"group_by,omitempty"`
	// Op is count, sum or mean; Field the numeric field for sum and mean.
	Op    string    `json:"op"`
	Field string    `json:"field,omitempty"`
	AsOf  uint64    `json:"as_of,omitempty"`
	DP    *DPParams `json:"dp,omitempty"`
}

// Validate checks a request against the dataset it asks about.
func (req *AggregateRequest) Validate(d *DatasetInfo) error {
	if req.Purpose == "" {
		return Invalid("purpose", "required: the purpose of a grant you hold")
	}
	fields := map[string]bool{}
	for _, t := range d.Types {
		for _, f := range t.Fields {
			fields[f] = true
		}
	}
	for i, g := range req.GroupBy {
		if !fields[g] {
			return Invalid(fmt.Sprintf("group_by[%d]", i), "not a field of the dataset")
		}
	}
	switch req.Op {
	case "count":
	case "sum", "mean":
		if !fields[req.Field] {
			return Invalid("field", "a numeric field of the dataset")
		}
	default:
		return Invalid("op", "count, sum or mean")
	}
	if dp := req.DP; dp != nil {
		switch {
		case !(dp.Epsilon > 0) || dp.Epsilon > 10:
			return Invalid("dp.epsilon", "above 0, at most 10")
		case dp.MaxContributions < 0 || dp.MaxContributions > 1000:
			return Invalid("dp.max_contributions", "0 (meaning 1) to 1000")
		case req.Op != "count" && !(dp.Upper > dp.Lower):
			return Invalid("dp.upper", "above dp.lower: values are clipped to [lower, upper]")
		case math.IsInf(dp.Lower, 0) || math.IsInf(dp.Upper, 0) || math.IsNaN(dp.Lower) || math.IsNaN(dp.Upper):
			return Invalid("dp", "finite bounds")
		}
		if d.DPBudget == 0 {
			return Invalid("dp", "the dataset has no privacy budget: it answers exact aggregates only")
		}
	}
	return nil
}

// DPParams make an aggregate differentially private. Each subject
// contributes at most MaxContributions records (default 1; the first ones
// in ledger order), and, for sums and means, values clipped to [Lower,
// Upper]; so a count's sensitivity is MaxContributions and a sum's
// MaxContributions × max(|Lower|, |Upper|). Sums and means spend half of
// Epsilon on the count (released, and used for the minimum group size)
// and half on the sum.
type DPParams struct {
	Epsilon          float64 `json:"epsilon"`
	MaxContributions int     `json:"max_contributions,omitempty"`
	Lower            float64 `json:"lower,omitempty"`
	Upper            float64 `json:"upper,omitempty"`
}

// AggregateGroup is one released group: its key (the group-by fields'
// values), its count, and for sum and mean the value.
type AggregateGroup struct {
	Key   map[string]json.RawMessage `json:"key"`
	Count float64                    `json:"count"`
	Value float64                    `json:"value,omitempty"`
}

// AggregateResult is an aggregate's answer: the released groups, how many
// were suppressed under k, the epsilon spent and what is left, and the
// audit entry that recorded the query.
type AggregateResult struct {
	Dataset    string           `json:"dataset"`
	Purpose    string           `json:"purpose"`
	AsOf       uint64           `json:"as_of"`
	Op         string           `json:"op"`
	Groups     []AggregateGroup `json:"groups"`
	Suppressed int              `json:"suppressed"`
	Epsilon    float64          `json:"epsilon,omitempty"`
	BudgetLeft float64          `json:"budget_left,omitempty"`
	Audit      uint64           `json:"audit"`
}

// Share is one member's contribution to a dataset over a period.
type Share struct {
	Member       string  `json:"member"`
	Records      int     `json:"records"`
	Subjects     int     `json:"subjects"`
	RecordShare  float64 `json:"record_share"`
	SubjectShare float64 `json:"subject_share"`
}

// SharesReport is each member's share of a dataset's records and distinct
// subjects, for records dated in [From, To), as of an index: the basis of
// a data dividend, visible to every member.
type SharesReport struct {
	Dataset  string    `json:"dataset"`
	AsOf     uint64    `json:"as_of"`
	From     time.Time `json:"from,omitzero"`
	To       time.Time `json:"to,omitzero"`
	Records  int       `json:"records"`
	Subjects int       `json:"subjects"`
	Shares   []Share   `json:"shares"`
}

// DatasetList is the answer of GET /v1/datasets.
type DatasetList struct {
	Datasets []DatasetInfo `json:"datasets"`
}

// ExportList is the answer of GET /v1/datasets/{name}/audit and
// POST /v1/subjects/exports.
type ExportList struct {
	Exports []ExportAudit `json:"exports"`
}

// ProposalList is the answer of GET /v1/proposals.
type ProposalList struct {
	Proposals []ProposalStatus `json:"proposals"`
}
