package httpapi

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"

	"coapp.coop/coapp/api"
)

// leaderProxy hands a request to the leader whole, with the caller's
// credentials, and copies its answer back. A request already handed on
// once is never handed on again: the leader changed under it, and the
// caller retries.
func (a *API) leaderProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport: a.cfg.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			target, _ := pr.In.Context().Value(leaderKey{}).(*url.URL)
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(api.HeaderForwardedBy, a.svc.Ledger().ID())
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			a.log.Warn("handing a request to the leader failed", "err", err)
			a.writeErr(w, api.ErrNoLeader)
		},
	}
}

type leaderKey struct{}

// forward hands the request to the leader, or answers why it cannot.
func (a *API) forward(w http.ResponseWriter, r *http.Request) error {
	if r.Header.Get(api.HeaderForwardedBy) != "" {
		return api.ErrNoLeader // the leader changed under a request handed on
	}
	st, err := a.svc.Ledger().Status()
	if err != nil {
		return err
	}
	info, ok := a.svc.State().Node(st.LeaderID)
	if st.LeaderID == "" || !ok || info.HTTPAddr == "" {
		return api.ErrNoLeader
	}
	target, err := url.Parse(info.HTTPAddr)
	if err != nil {
		return api.ErrNoLeader
	}
	a.proxy.ServeHTTP(w, r.WithContext(contextWith(r, target)))
	return nil
}

func contextWith(r *http.Request, target *url.URL) context.Context {
	return context.WithValue(r.Context(), leaderKey{}, target)
}
