package httpapi

import (
	"net/http"

	"coapp.coop/coapp/api"
)

// probeRoutes are the routes the probe listener serves: public, read
// only, and saying nothing of the federation's data.
var probeRoutes = map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true}

// Probes returns a handler serving only GET /healthz, /readyz and
// /metrics, as the API does, and 404 for every other path: for a plain
// listener that load balancers, orchestrators' probes and Prometheus
// reach without a client certificate. Requests are counted in the same
// coapp_http_requests_total as the API's.
func (a *API) Probes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routeTable() {
		if probeRoutes[rt.pattern] {
			mux.Handle(rt.pattern, a.wrap(rt))
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.svc.Metrics().Request("unknown", http.StatusNotFound)
		writeError(w, http.StatusNotFound, api.ErrorDetail{Code: "not_found", Message: "the probe listener serves only /healthz, /readyz and /metrics"})
	})
	return mux
}
