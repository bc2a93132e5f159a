package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/coapp/internal/release"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// Dataset release: exports, aggregates, shares and the audit trail. A
// release is computed on the node that received the request, from its
// own copy of the ledger; its audit entry, signed by the member, is
// appended on the leader before a byte leaves.

// releaseKeys is what a release reads of the node's keys.
type releaseKeys struct{ s *Service }

func (k releaseKeys) DataKey(v *ledger.View, p pseudonym.Pseudonym, legacy bool) (pseudonym.Secret, error) {
	return k.s.DataKey(v, p, legacy)
}

func (k releaseKeys) Pseudonym(d pseudonym.Domain, id string) (pseudonym.Pseudonym, error) {
	return k.s.keys.Pseudonym(d, id)
}

// asOf resolves a request's as-of index against a dataset: the latest
// applied when 0. It returns the latest applied index too.
func (s *Service) asOf(d *api.DatasetInfo, want uint64) (asOf, latest uint64, err error) {
	applied := s.state.Applied()
	if applied == 0 {
		return 0, 0, api.ErrNotBootstrapped
	}
	latest = applied - 1
	asOf = want
	if asOf == 0 {
		asOf = latest
	}
	if asOf > latest || asOf < d.Created {
		return 0, 0, api.Invalid("as_of", "an index from %d (the dataset's creation) to %d (the latest applied)", d.Created, latest)
	}
	return asOf, latest, nil
}

// granted finds the dataset a release names, and checks the caller's
// grant on it for the purpose, now.
func (s *Service) granted(c api.Caller, dataset, purpose string) (api.DatasetInfo, error) {
	d, ok := s.state.Dataset(dataset)
	if !ok {
		return api.DatasetInfo{}, fmt.Errorf("%w: dataset %s", api.ErrNotFound, dataset)
	}
	if _, err := s.state.GrantFor(d.Name, c.Member, purpose, time.Now()); err != nil {
		return api.DatasetInfo{}, err
	}
	return d, nil
}

// Export writes dataset req.Dataset to w for c.Member, who must hold a
// grant for req.Purpose. It first computes the export and appends its
// audit entry, and only then writes the same bytes to w: no export leaves
// without its audit entry. before, when not nil, is called with the audit
// (and the output's media type) once it is in the ledger, before any byte
// is written.
func (s *Service) Export(ctx context.Context, c api.Caller, req api.ExportRequest, before func(a api.ExportAudit, contentType string), w io.Writer) (api.ExportAudit, error) {
	a, err := s.export(ctx, c, req, before, w)
	return a, Translate(err)
}

func (s *Service) export(ctx context.Context, c api.Caller, req api.ExportRequest, before func(api.ExportAudit, string), w io.Writer) (api.ExportAudit, error) {
	if err := req.Validate(); err != nil {
		return api.ExportAudit{}, err
	}
	if err := s.CatchUp(ctx, c); err != nil {
		return api.ExportAudit{}, err
	}
	s.AwaitView(ctx)
	formatName := req.Format
	if formatName == "" {
		formatName = "jsonl"
	}
	d, err := s.granted(c, req.Dataset, req.Purpose)
	if err != nil {
		return api.ExportAudit{}, err
	}
	asOf, latest, err := s.asOf(&d, req.AsOf)
	if err != nil {
		return api.ExportAudit{}, err
	}
	// The export is computed into a scratch file beside the ledger
	// (dataset pseudonyms only) and hashed, its audit entry appended, and
	// only then the same rows written to w.
	var pe *release.Prepared
	decidedAt := time.Now().UTC()
	err = s.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		p, err := release.NewPlan(v, s.state, d, req.Purpose, asOf, latest, decidedAt)
		if err != nil {
			return err
		}
		wr, err := release.NewWriter(formatName, p.Columns())
		if err != nil {
			return err
		}
		pe, err = release.Prepare(v, p, releaseKeys{s}, wr, s.cfg.Dir)
		return err
	})
	if err != nil {
		return api.ExportAudit{}, err
	}
	defer pe.Close()
	counts, err := pe.Release(io.Discard)
	if err != nil {
		return api.ExportAudit{}, err
	}
	if counts.Unreadable > 0 {
		s.log.Warn("export skips records that cannot be decrypted", "dataset", d.Name, "records", counts.Unreadable)
	}
	audit := api.ExportAudit{
		ID: uuid.Must(uuid.NewV7()), Member: c.Member, Dataset: d.Name, Purpose: req.Purpose, Format: formatName, AsOf: asOf,
		ConsentAt: consentAt(asOf, latest), DecidedAt: decidedAt,
		Rows: counts.Rows, Suppressed: counts.Suppressed, NoConsent: counts.NoConsent, Erased: counts.Erased, Unreadable: counts.Unreadable,
		SHA256: counts.SHA256, At: time.Now().UTC(),
	}
	index, err := s.submitSigned(ctx, c, format.KindExport, audit, audit.At)
	if err != nil {
		return api.ExportAudit{}, err
	}
	audit.Index = index
	if before != nil {
		before(audit, pe.ContentType())
	}
	if _, err := pe.Release(w); err != nil {
		return audit, err
	}
	s.log.Info("dataset exported", "member", c.Member, "dataset", d.Name, "as_of", asOf, "rows", audit.Rows, "suppressed", audit.Suppressed, "audit_index", index)
	return audit, nil
}

// consentAt is the later index at which consent is checked too, when a
// query runs as of an earlier one.
func consentAt(asOf, latest uint64) uint64 {
	if latest > asOf {
		return latest
	}
	return 0
}

// Aggregate answers an AggregateRequest on dataset for c.Member, and
// records it in the ledger (who, what, epsilon) before answering.
func (s *Service) Aggregate(ctx context.Context, c api.Caller, dataset string, req api.AggregateRequest) (api.AggregateResult, error) {
	res, err := s.aggregate(ctx, c, dataset, req)
	return res, Translate(err)
}

func (s *Service) aggregate(ctx context.Context, c api.Caller, dataset string, req api.AggregateRequest) (api.AggregateResult, error) {
	if err := s.CatchUp(ctx, c); err != nil {
		return api.AggregateResult{}, err
	}
	s.AwaitView(ctx)
	d, ok := s.state.Dataset(dataset)
	if !ok {
		return api.AggregateResult{}, fmt.Errorf("%w: dataset %s", api.ErrNotFound, dataset)
	}
	if err := req.Validate(&d); err != nil {
		return api.AggregateResult{}, err
	}
	if _, err := s.granted(c, d.Name, req.Purpose); err != nil {
		return api.AggregateResult{}, err
	}
	eps := 0.0
	if req.DP != nil {
		eps = req.DP.Epsilon
		if left := s.state.BudgetLeft(d.Name, req.Purpose); eps > left+1e-12 {
			return api.AggregateResult{}, fmt.Errorf("%w: %s for %s has %.4g left, the query needs %.4g", api.ErrBudgetSpent, d.Name, req.Purpose, left, eps)
		}
	}
	asOf, latest, err := s.asOf(&d, req.AsOf)
	if err != nil {
		return api.AggregateResult{}, err
	}
	decidedAt := time.Now().UTC()
	var res api.AggregateResult
	err = s.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		p, err := release.NewPlan(v, s.state, d, req.Purpose, asOf, latest, decidedAt)
		if err != nil {
			return err
		}
		res, err = release.Aggregate(v, p, releaseKeys{s}, &req)
		return err
	})
	if err != nil {
		return api.AggregateResult{}, err
	}
	res.Epsilon = eps
	body, _ := json.Marshal(res.Groups)
	sum := sha256.Sum256(body)
	audit := api.ExportAudit{
		ID: uuid.Must(uuid.NewV7()), Member: c.Member, Dataset: d.Name, Purpose: req.Purpose, Format: "aggregate:" + req.Op,
		AsOf: asOf, ConsentAt: consentAt(asOf, latest), DecidedAt: decidedAt, Rows: len(res.Groups), Suppressed: res.Suppressed,
		SHA256: hex.EncodeToString(sum[:]), At: time.Now().UTC(), Epsilon: eps,
	}
	index, err := s.submitSigned(ctx, c, format.KindExport, audit, audit.At)
	if err != nil {
		return api.AggregateResult{}, err
	}
	res.Audit = index
	if req.DP != nil {
		res.BudgetLeft = s.state.BudgetLeft(d.Name, req.Purpose)
	}
	return res, nil
}

// Shares counts each member's contribution to a dataset: the records an
// export would draw on (consented, not erased, before k-suppression)
// dated in [from, to) (zero: unbounded), as of the latest applied index.
func (s *Service) Shares(ctx context.Context, dataset string, from, to time.Time) (api.SharesReport, error) {
	d, ok := s.state.Dataset(dataset)
	if !ok {
		return api.SharesReport{}, fmt.Errorf("%w: dataset %s", api.ErrNotFound, dataset)
	}
	asOf, _, err := s.asOf(&d, 0)
	if err != nil {
		return api.SharesReport{}, err
	}
	var rep api.SharesReport
	err = s.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		p, err := release.NewPlan(v, s.state, d, d.Purpose, asOf, asOf, time.Now().UTC())
		if err != nil {
			return err
		}
		rep, err = release.Shares(v, p, releaseKeys{s}, from, to)
		return err
	})
	return rep, Translate(err)
}

// Audit lists a dataset's exports, oldest first.
func (s *Service) Audit(dataset string) ([]api.ExportAudit, error) {
	if _, ok := s.state.Dataset(dataset); !ok {
		return nil, fmt.Errorf("%w: dataset %s", api.ErrNotFound, dataset)
	}
	out := []api.ExportAudit{}
	for _, a := range s.state.Exports() {
		if a.Dataset == dataset {
			out = append(out, a)
		}
	}
	return out, nil
}

// ExportsOf lists the exports that included data of subject (a raw
// identifier, pseudonymised in c.Member's domain): each export is replayed
// as of its index (exports are reproducible) for that subject alone.
func (s *Service) ExportsOf(ctx context.Context, c api.Caller, subject string) ([]api.ExportAudit, error) {
	p, err := s.SubjectPseudonym(c.Member, subject)
	if err != nil {
		return nil, err
	}
	out := []api.ExportAudit{}
	for _, a := range s.state.Exports() {
		d, ok := s.state.Dataset(a.Dataset)
		if !ok {
			continue
		}
		included := false
		err := s.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
			at := a.DecidedAt
			if at.IsZero() {
				at = a.At
			}
			plan, err := release.NewPlan(v, s.state, d, a.Purpose, a.AsOf, a.ConsentAt, at)
			if err != nil {
				return err
			}
			included, err = release.Included(v, plan, releaseKeys{s}, p)
			return err
		})
		if err != nil {
			return nil, Translate(err)
		}
		if included {
			out = append(out, a)
		}
	}
	return out, nil
}
