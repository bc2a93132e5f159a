package httpapi

import (
	"fmt"
	"net/http"

	"coapp.coop/coapp/api"
	"coapp.coop/ledger"
)

func (a *API) healthz(w http.ResponseWriter, _ *http.Request, _ api.Caller) error {
	return writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
}

// readyz answers 200 once the node can serve what it printed: its start
// done (ready: on a bootstrap, the admin token file written and the view
// holding its token), a leader known, and everything committed that it
// knew of applied, with the federation state following. Once caught up
// it stays ready while a leader is known, so that the few entries always
// in flight under load do not make it flap.
func (a *API) readyz(w http.ResponseWriter, _ *http.Request, _ api.Caller) error {
	st, err := a.svc.Ledger().Status()
	switch {
	case err != nil:
		return err
	case st.LeaderID == "":
		writeError(w, http.StatusServiceUnavailable, api.ErrorDetail{Code: "no_leader", Message: "no leader known"})
		return nil
	case a.caughtUp.Load():
	case st.AppliedIndex < st.CommitIndex:
		writeError(w, http.StatusServiceUnavailable, api.ErrorDetail{Code: "catching_up", Message: fmt.Sprintf("applied %d of %d", st.AppliedIndex, st.CommitIndex)})
		return nil
	case a.svc.State().Applied() < st.Size:
		writeError(w, http.StatusServiceUnavailable, api.ErrorDetail{Code: "catching_up", Message: "federation state behind the ledger"})
		return nil
	default:
		if a.ready != nil {
			if err := a.ready(); err != nil {
				writeError(w, http.StatusServiceUnavailable, api.ErrorDetail{Code: "starting", Message: err.Error()})
				return nil
			}
		}
		a.caughtUp.Store(true)
	}
	return writeJSON(w, http.StatusOK, api.Readiness{Status: "ready", Leader: st.LeaderID, AppliedIndex: st.AppliedIndex})
}

// metrics serves the node's registry in the Prometheus text format (or
// the protobuf format a scraper asks for), gzipped when asked.
func (a *API) metrics(w http.ResponseWriter, r *http.Request, _ api.Caller) error {
	a.metricsHandler.ServeHTTP(w, r)
	return nil
}

func (a *API) status(w http.ResponseWriter, _ *http.Request, _ api.Caller) error {
	ns, err := a.svc.Status()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ns)
}

func (a *API) cluster(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	info, err := a.svc.Cluster(r.Context(), c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

func (a *API) join(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var req api.NodeInfo
	if err := decode(r, &req); err != nil {
		return err
	}
	out, err := a.svc.Join(r.Context(), c, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) removeNode(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	if err := a.svc.RemoveNode(r.Context(), c, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) promote(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	info, err := a.svc.PromoteNode(r.Context(), c, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

func (a *API) putSchema(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var s api.Schema
	if err := decode(r, &s); err != nil {
		return err
	}
	out, err := a.svc.PutSchema(r.Context(), c, s)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

func (a *API) schemas(w http.ResponseWriter, _ *http.Request, _ api.Caller) error {
	return writeJSON(w, http.StatusOK, api.SchemaList{Schemas: a.svc.State().Schemas()})
}

func (a *API) schema(w http.ResponseWriter, r *http.Request, _ api.Caller) error {
	typ := r.PathValue("type")
	versions := a.svc.State().SchemaVersions(typ)
	if len(versions) == 0 {
		return fmt.Errorf("%w: schema %s", api.ErrNotFound, typ)
	}
	return writeJSON(w, http.StatusOK, api.SchemaVersions{Versions: versions})
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var req api.TokenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	out, err := a.svc.CreateToken(r.Context(), c, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	if err := a.svc.RevokeToken(r.Context(), c, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// backup streams a consistent backup of the ledger.
func (a *API) backup(w http.ResponseWriter, r *http.Request, _ api.Caller) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="coapp.backup"`)
	size, root, err := a.svc.Ledger().Backup(r.Context(), w, ledger.Stale)
	if err != nil {
		if started(w) {
			// The stream has begun: the client sees a truncated body,
			// which RestoreBackup refuses.
			a.log.Error("backup stream failed", "err", err)
			return nil
		}
		return err
	}
	a.log.Info("backup streamed", "size", size, "root", root)
	return nil
}

func (a *API) access(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var req api.SubjectRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	rep, err := a.svc.Access(r.Context(), c, req.Subject)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (a *API) erase(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var req api.SubjectRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	out, err := a.svc.Erase(r.Context(), c, req.Subject, c.Admin)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}
