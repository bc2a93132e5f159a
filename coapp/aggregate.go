package coapp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"

	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// ErrBudgetSpent is returned for a differentially private query that would
// spend more of a dataset's privacy budget, for its purpose, than is left.
var ErrBudgetSpent = errors.New("coapp: privacy budget spent")

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

func (req *AggregateRequest) validate(d *DatasetInfo) error {
	fields := map[string]bool{}
	for _, t := range d.Types {
		for _, f := range t.Fields {
			fields[f] = true
		}
	}
	for i, g := range req.GroupBy {
		if !fields[g] {
			return invalid(fmt.Sprintf("group_by[%d]", i), "not a field of the dataset")
		}
	}
	switch req.Op {
	case "count":
	case "sum", "mean":
		if !fields[req.Field] {
			return invalid("field", "a numeric field of the dataset")
		}
	default:
		return invalid("op", "count, sum or mean")
	}
	if dp := req.DP; dp != nil {
		switch {
		case !(dp.Epsilon > 0) || dp.Epsilon > 10:
			return invalid("dp.epsilon", "above 0, at most 10")
		case dp.MaxContributions < 0 || dp.MaxContributions > 1000:
			return invalid("dp.max_contributions", "0 (meaning 1) to 1000")
		case req.Op != "count" && !(dp.Upper > dp.Lower):
			return invalid("dp.upper", "above dp.lower: values are clipped to [lower, upper]")
		case math.IsInf(dp.Lower, 0) || math.IsInf(dp.Upper, 0) || math.IsNaN(dp.Lower) || math.IsNaN(dp.Upper):
			return invalid("dp", "finite bounds")
		}
		if d.DPBudget == 0 {
			return invalid("dp", "the dataset has no privacy budget: it answers exact aggregates only")
		}
	}
	return nil
}

// laplace draws Laplace(0, scale) noise from crypto/rand.
func laplace(scale float64) float64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	u := (float64(binary.BigEndian.Uint64(b[:])>>11)+0.5)/(1<<53) - 0.5 // (-0.5, 0.5)
	return -scale * math.Copysign(1, u) * math.Log(1-2*math.Abs(u))
}

type aggAcc struct {
	key      map[string]json.RawMessage
	count    float64
	sum      float64
	subjects []pseudonym.Pseudonym // distinct, up to k
}

// Aggregate answers an AggregateRequest on dataset for member, and records
// it in the ledger (who, what, epsilon) before answering. It runs on the
// leader; the HTTP API runs it on any node.
func (n *Node) Aggregate(ctx context.Context, member, dataset string, req AggregateRequest) (AggregateResult, error) {
	return n.aggregate(ctx, nil, member, dataset, req)
}

func (n *Node) aggregate(ctx context.Context, r *http.Request, member, dataset string, req AggregateRequest) (AggregateResult, error) {
	n.awaitView(ctx)
	d, ok := n.view.dataset(dataset)
	if !ok {
		return AggregateResult{}, fmt.Errorf("%w: dataset %s", ErrNotFound, dataset)
	}
	if err := req.validate(&d); err != nil {
		return AggregateResult{}, err
	}
	if _, err := n.view.grantFor(d.Name, member, req.Purpose, time.Now()); err != nil {
		return AggregateResult{}, err
	}
	eps := 0.0
	if req.DP != nil {
		eps = req.DP.Epsilon
		if left := n.view.budgetLeft(d.Name, req.Purpose); eps > left+1e-12 {
			return AggregateResult{}, fmt.Errorf("%w: %s for %s has %.4g left, the query needs %.4g", ErrBudgetSpent, d.Name, req.Purpose, left, eps)
		}
	}
	asOf := req.AsOf
	applied := n.view.applied()
	if asOf == 0 {
		asOf = applied - 1
	}
	if asOf >= applied || asOf < d.Created {
		return AggregateResult{}, invalid("as_of", "an index from %d to %d", d.Created, applied-1)
	}
	maxContrib := 0
	if req.DP != nil {
		maxContrib = max(req.DP.MaxContributions, 1)
	}
	decidedAt := time.Now().UTC()
	groups := map[string]*aggAcc{}
	err := n.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		p, err := n.plan(v, d, req.Purpose, asOf, applied-1, decidedAt)
		if err != nil {
			return err
		}
		contributed := map[pseudonym.Pseudonym]int{}
		var st scanStats
		return n.scan(v, p, &st, func(row *exportRow, s pseudonym.Pseudonym, _ string) error {
			if maxContrib > 0 {
				if contributed[s] >= maxContrib {
					return nil
				}
				contributed[s]++
			}
			x := 0.0
			if req.Op != "count" {
				raw, ok := row.Fields[req.Field]
				if !ok {
					return nil
				}
				f, err := strconv.ParseFloat(string(raw), 64)
				if err != nil {
					return invalid("field", "%s is not numeric in the dataset (generalised to ranges?)", req.Field)
				}
				if req.DP != nil {
					f = math.Min(math.Max(f, req.DP.Lower), req.DP.Upper)
				}
				x = f
			}
			key := make(map[string]json.RawMessage, len(req.GroupBy))
			var id []byte
			for _, g := range req.GroupBy {
				key[g] = row.Fields[g]
				id = append(append(id, row.Fields[g]...), 0)
			}
			a := groups[string(id)]
			if a == nil {
				a = &aggAcc{key: key}
				groups[string(id)] = a
			}
			a.count++
			a.sum += x
			if len(a.subjects) < d.K && !slices.Contains(a.subjects, s) {
				a.subjects = append(a.subjects, s)
			}
			return nil
		})
	})
	if err != nil {
		return AggregateResult{}, err
	}
	res := AggregateResult{Dataset: d.Name, Purpose: req.Purpose, AsOf: asOf, Op: req.Op, Groups: []AggregateGroup{}, Epsilon: eps}
	ids := make([]string, 0, len(groups))
	for id := range groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		a := groups[id]
		count, sum := a.count, a.sum
		if req.DP != nil {
			l := float64(maxContrib)
			bound := math.Max(math.Abs(req.DP.Lower), math.Abs(req.DP.Upper))
			switch req.Op {
			case "count":
				count += laplace(l / eps)
			case "sum":
				// The count is released too: it gets half the epsilon.
				count += laplace(l / (eps / 2))
				sum += laplace(l * bound / (eps / 2))
			case "mean":
				count += laplace(l / (eps / 2))
				sum += laplace(l * bound / (eps / 2))
			}
		}
		// Groups of fewer than k people are not released; with DP, the
		// judgement is on the noisy count alone (the exact number of
		// people would leak through which groups appear).
		if (req.DP == nil && len(a.subjects) < d.K) || (req.DP != nil && count < float64(d.K)) {
			res.Suppressed++
			continue
		}
		g := AggregateGroup{Key: a.key, Count: math.Round(count*1000) / 1000}
		switch req.Op {
		case "sum":
			g.Value = sum
		case "mean":
			g.Value = sum / math.Max(count, 1)
		}
		res.Groups = append(res.Groups, g)
	}
	body, _ := json.Marshal(res.Groups)
	sum := sha256.Sum256(body)
	audit := ExportAudit{
		ID: uuid.Must(uuid.NewV7()), Member: member, Dataset: d.Name, Purpose: req.Purpose, Format: "aggregate:" + req.Op,
		AsOf: asOf, ConsentAt: consentAt(asOf, applied), DecidedAt: decidedAt, Rows: len(res.Groups), Suppressed: res.Suppressed, SHA256: hex.EncodeToString(sum[:]), At: time.Now().UTC(), Epsilon: eps,
	}
	index, err := n.submitSigned(ctx, r, member, KindExport, audit, audit.At)
	if err != nil {
		return AggregateResult{}, err
	}
	res.Audit = index
	if req.DP != nil {
		res.BudgetLeft = n.view.budgetLeft(d.Name, req.Purpose)
	}
	return res, nil
}

// consentAt is the later index at which consent is checked too, when a
// query runs as of an earlier one.
func consentAt(asOf, applied uint64) uint64 {
	if applied-1 > asOf {
		return applied - 1
	}
	return 0
}

// budgetLeft is what remains of a dataset's privacy budget for a purpose.
func (v *view) budgetLeft(dataset, purpose string) float64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	d, ok := v.gov.datasets[dataset]
	if !ok {
		return 0
	}
	return d.DPBudget - v.gov.spent[dataset+"\x00"+purpose]
}

func (n *Node) handleAggregate(w http.ResponseWriter, r *http.Request, c caller) error {
	var req AggregateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := n.catchUp(r); err != nil {
		return err
	}
	res, err := n.aggregate(r.Context(), r, c.member, r.PathValue("name"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}
