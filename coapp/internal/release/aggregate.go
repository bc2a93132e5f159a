package release

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"coapp.coop/coapp/api"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

type aggAcc struct {
	key      map[string]json.RawMessage
	count    float64
	sum      float64
	subjects []pseudonym.Pseudonym // distinct, up to k
}

// Aggregate computes req over the records a scan of p releases: counts,
// sums or means by group; groups of fewer than k people suppressed; with
// req.DP, Laplace noise for req.DP.Epsilon (sums and means spend half on
// the count). It fills the result's groups and suppressed count.
func Aggregate(v *ledger.View, p *Plan, keys Keys, req *api.AggregateRequest) (api.AggregateResult, error) {
	k := p.d.K
	maxContrib := 0
	if req.DP != nil {
		maxContrib = max(req.DP.MaxContributions, 1)
	}
	groups := map[string]*aggAcc{}
	contributed := map[pseudonym.Pseudonym]int{}
	var st Stats
	err := Scan(v, p, keys, &st, func(row *Row, s pseudonym.Pseudonym, _ string) error {
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
				return api.Invalid("field", "%s is not numeric in the dataset (generalised to ranges?)", req.Field)
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
		if len(a.subjects) < k && !slices.Contains(a.subjects, s) {
			a.subjects = append(a.subjects, s)
		}
		return nil
	})
	if err != nil {
		return api.AggregateResult{}, err
	}
	res := api.AggregateResult{Dataset: p.d.Name, Purpose: req.Purpose, AsOf: p.asOf, Op: req.Op, Groups: []api.AggregateGroup{}}
	ids := make([]string, 0, len(groups))
	for id := range groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		a := groups[id]
		count, sum := a.count, a.sum
		if req.DP != nil {
			eps := req.DP.Epsilon
			l := float64(maxContrib)
			bound := math.Max(math.Abs(req.DP.Lower), math.Abs(req.DP.Upper))
			switch req.Op {
			case "count":
				count += laplace(l / eps)
			case "sum", "mean":
				// The count is released too: it gets half the epsilon.
				count += laplace(l / (eps / 2))
				sum += laplace(l * bound / (eps / 2))
			}
		}
		// Groups of fewer than k people are not released; with DP, the
		// judgement is on the noisy count alone (the exact number of
		// people would leak through which groups appear).
		if (req.DP == nil && len(a.subjects) < k) || (req.DP != nil && count < float64(k)) {
			res.Suppressed++
			continue
		}
		g := api.AggregateGroup{Key: a.key, Count: math.Round(count*1000) / 1000}
		switch req.Op {
		case "sum":
			g.Value = sum
		case "mean":
			g.Value = sum / math.Max(count, 1)
		}
		res.Groups = append(res.Groups, g)
	}
	return res, nil
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

// Shares counts each member's contribution to a dataset: the records an
// export would draw on (consented, not erased, before k-suppression)
// dated in [from, to) (zero: unbounded).
func Shares(v *ledger.View, p *Plan, keys Keys, from, to time.Time) (api.SharesReport, error) {
	rep := api.SharesReport{Dataset: p.d.Name, AsOf: p.asOf, From: from, To: to, Shares: []api.Share{}}
	records := map[string]int{}
	subjects := map[string]map[pseudonym.Pseudonym]bool{}
	all := map[pseudonym.Pseudonym]bool{}
	var st Stats
	err := Scan(v, p, keys, &st, func(r *Row, s pseudonym.Pseudonym, _ string) error {
		t, _ := time.Parse(api.DateLayout, r.Date)
		if (!from.IsZero() && t.Before(from.Truncate(24*time.Hour))) || (!to.IsZero() && !t.Before(to)) {
			return nil
		}
		records[r.Member]++
		if subjects[r.Member] == nil {
			subjects[r.Member] = map[pseudonym.Pseudonym]bool{}
		}
		subjects[r.Member][s] = true
		all[s] = true
		rep.Records++
		return nil
	})
	if err != nil {
		return api.SharesReport{}, err
	}
	rep.Subjects = len(all)
	subjTotal := 0
	for _, s := range subjects {
		subjTotal += len(s)
	}
	for m, c := range records {
		sh := api.Share{Member: m, Records: c, Subjects: len(subjects[m])}
		if rep.Records > 0 {
			sh.RecordShare = float64(c) / float64(rep.Records)
		}
		if subjTotal > 0 {
			sh.SubjectShare = float64(sh.Subjects) / float64(subjTotal)
		}
		rep.Shares = append(rep.Shares, sh)
	}
	sort.Slice(rep.Shares, func(i, j int) bool { return rep.Shares[i].Member < rep.Shares[j].Member })
	return rep, nil
}

// Included reports whether an export as planned released a record of
// subject (a pseudonym in a member's domain, as the member's consents name
// the person): whether one of its groups reached k people. A record in the
// federation's domain is the person's when its consent was decided under
// subject (see Scan).
func Included(v *ledger.View, p *Plan, keys Keys, subject pseudonym.Pseudonym) (bool, error) {
	groups := KGroups{}
	var mine []string
	var st Stats
	err := scan(v, p, keys, &st, func(_ *Row, s, consentSubject pseudonym.Pseudonym, g string) error {
		groups.Add(g, s, p.d.K)
		if consentSubject == subject {
			mine = append(mine, g)
		}
		return nil
	})
	for _, g := range mine {
		if groups.Reached(g, p.d.K) {
			return true, err
		}
	}
	return false, err
}
