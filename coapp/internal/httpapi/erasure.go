package httpapi

import (
	"net/http"
	"strconv"

	"coapp.coop/coapp/api"
)

// erasure answers how far each node purged an erasure (?local=true: this
// node alone).
func (a *API) erasure(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	index, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || index == 0 {
		return api.Invalid("id", "the raft_index of an erasure, a positive integer")
	}
	switch r.URL.Query().Get("local") {
	case "true":
		return writeJSON(w, http.StatusOK, api.ErasureStatus{Index: index, Nodes: []api.NodeErasure{a.svc.ErasureHere(index)}})
	case "", "false":
	default:
		return api.Invalid("local", "true or false")
	}
	st, err := a.svc.Erasure(r.Context(), c, index)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}
