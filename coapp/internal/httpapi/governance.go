package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
)

func (a *API) propose(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var p api.Proposal
	if err := decode(r, &p); err != nil {
		return err
	}
	ps, err := a.svc.Propose(r.Context(), c, p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ps)
}

func (a *API) vote(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return api.Invalid("id", "not a UUID")
	}
	var req api.VoteRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ps, err := a.svc.Vote(r.Context(), c, id, req.Choice)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ps)
}

func (a *API) submitSigned(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	if !a.svc.IsLeader() {
		return a.forward(w, r)
	}
	var sub api.SignedSubmission
	if err := decode(r, &sub); err != nil {
		return err
	}
	index, err := a.svc.SubmitSigned(r.Context(), c, sub)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.IndexResponse{Index: index})
}

func (a *API) proposals(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ProposalList{Proposals: a.svc.State().Proposals()})
}

func (a *API) proposal(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return api.Invalid("id", "not a UUID")
	}
	ps, ok := a.svc.State().Proposal(id)
	if !ok {
		return fmt.Errorf("%w: proposal %s", api.ErrNotFound, id)
	}
	return writeJSON(w, http.StatusOK, ps)
}

func (a *API) members(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.MembersInfo{Members: a.svc.State().Members(), Rules: a.svc.State().Rules()})
}

func (a *API) datasets(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.DatasetList{Datasets: a.svc.State().Datasets()})
}

func (a *API) dataset(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	d, ok := a.svc.State().Dataset(r.PathValue("name"))
	if !ok {
		return fmt.Errorf("%w: dataset %s", api.ErrNotFound, r.PathValue("name"))
	}
	return writeJSON(w, http.StatusOK, d)
}

func (a *API) export(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var req api.ExportRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Dataset != "" && req.Dataset != r.PathValue("name") {
		return api.Invalid("dataset", "the path names another dataset")
	}
	req.Dataset = r.PathValue("name")
	before := func(au api.ExportAudit, contentType string) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set(api.HeaderExportSHA256, au.SHA256)
		w.Header().Set(api.HeaderExportAudit, strconv.FormatUint(au.Index, 10))
		w.Header().Set(api.HeaderExportRows, strconv.Itoa(au.Rows))
		w.WriteHeader(http.StatusOK)
	}
	_, err := a.svc.Export(r.Context(), c, req, before, w)
	if err != nil && started(w) {
		// The body was under way: the client sees a short body, whose
		// hash does not match the header.
		a.log.Error("export interrupted", "dataset", req.Dataset, "err", err)
		return nil
	}
	return err
}

func (a *API) aggregate(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var req api.AggregateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	res, err := a.svc.Aggregate(r.Context(), c, r.PathValue("name"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (a *API) shares(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var from, to time.Time
	for _, q := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if s := r.URL.Query().Get(q.name); s != "" {
			t, err := time.Parse(api.DateLayout, s)
			if err != nil {
				return api.Invalid(q.name, "a date, YYYY-MM-DD")
			}
			*q.dst = t
		}
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return api.Invalid("to", "not before from")
	}
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	rep, err := a.svc.Shares(r.Context(), r.PathValue("name"), from, to)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (a *API) audit(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	as, err := a.svc.Audit(r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ExportList{Exports: as})
}

func (a *API) subjectExports(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var req api.SubjectRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	as, err := a.svc.ExportsOf(r.Context(), c, req.Subject)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ExportList{Exports: as})
}
