package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/coapp/internal/server"
)

// Config configures the API.
type Config struct {
	// MaxBodyBytes bounds a request body. Default: 4 MiB.
	MaxBodyBytes int64
	// Transport carries requests handed to the leader (with the node's
	// TLS). Default: http.DefaultTransport.
	Transport http.RoundTripper
	// Logger receives the API's logs. Default: discard.
	Logger *slog.Logger
	// Metrics is what GET /metrics serves: the node's own registry
	// (server.NewRegistry). Default: a registry of the service's Metrics
	// alone.
	Metrics prometheus.Gatherer
}

// API serves a node's HTTP API.
type API struct {
	svc      *server.Service
	cfg      Config
	log      *slog.Logger
	proxy    *httputil.ReverseProxy
	mux      *http.ServeMux
	caughtUp atomic.Bool // set once /readyz has seen the node caught up
	ready    func() error

	metricsHandler http.Handler
}

// New returns the API of a node's service. ready, when not nil, is asked
// by /readyz beyond the ledger's own state (the node's start-up done).
func New(svc *server.Service, cfg Config, ready func() error) *API {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	a := &API{svc: svc, cfg: cfg, log: cfg.Logger, ready: ready}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(svc.Metrics()) // a fresh registry, one collector: cannot collide
		cfg.Metrics = reg
	}
	a.metricsHandler = promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError, // serve the families that could be read
	})
	a.proxy = a.leaderProxy()
	a.mux = http.NewServeMux()
	for _, rt := range a.routeTable() {
		a.mux.Handle(rt.pattern, a.wrap(rt))
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		svc.Metrics().Request("unknown", http.StatusNotFound)
		writeError(w, http.StatusNotFound, api.ErrorDetail{Code: "not_found", Message: "no such route"})
	})
	return a
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// route is a handler under a pattern with its auth rule.
type route struct {
	pattern string
	auth    authRule
	handle  func(w http.ResponseWriter, r *http.Request, c api.Caller) error
}

type authRule int

const (
	public authRule = iota
	member
	admin
)

// Routes lists the method and path of every route the API serves, for
// documentation checks.
func Routes() []string {
	var out []string
	for _, rt := range (&API{}).routeTable() {
		out = append(out, rt.pattern)
	}
	return out
}

// wrap authenticates, bounds the body, recovers from panics, maps errors
// to statuses and counts requests.
func (a *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				a.log.Error("handler panic", "route", rt.pattern, "panic", p)
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, api.ErrorDetail{Code: "internal", Message: "internal error"})
				}
			}
			a.svc.Metrics().Request(rt.pattern, sw.code())
		}()
		limit := a.cfg.MaxBodyBytes
		if rt.pattern == "POST /v1/records/signed" {
			// A follower's sealed batch of a request it accepted:
			// base64 payloads and key requirements take more room.
			limit *= 4
		}
		r.Body = http.MaxBytesReader(sw, r.Body, limit)
		var c api.Caller
		if rt.auth != public {
			token, _ := bearer(r)
			var ok bool
			c, ok = a.svc.State().Authenticate(token)
			if !ok && wellFormed(token) && r.Header.Get(api.HeaderForwardedBy) == "" && !a.svc.IsLeader() {
				// This node's state may lag behind the ledger (a node
				// just joined, a token just created): catch up with the
				// leader, and serve the request here when the token is
				// known then (a member's key is on the node it calls, so
				// signing must happen here); else let the leader decide.
				if a.svc.CatchUp(r.Context(), api.Caller{Token: token}) == nil {
					c, ok = a.svc.State().Authenticate(token)
				}
				if !ok {
					if err := a.forward(sw, r); err != nil {
						a.writeErr(sw, err)
					}
					return
				}
			}
			if !ok {
				writeError(sw, http.StatusUnauthorized, api.ErrorDetail{Code: "unauthenticated", Message: "a valid bearer token is required"})
				return
			}
			if rt.auth == admin && !c.Admin {
				writeError(sw, http.StatusForbidden, api.ErrorDetail{Code: "forbidden", Message: "this needs an admin token"})
				return
			}
			if m := r.Header.Get(HeaderMember); m != "" && c.Admin {
				// A node hands on a call of its Go API, made for member
				// m, with an admin token: an admin may act for any
				// member (it can make a token for any).
				c.Member = m
			}
		}
		if err := rt.handle(sw, r, c); err != nil {
			a.writeErr(sw, err)
		}
	})
}

// HeaderMember names the member an admin's request acts for: a node hands
// on a call of its Go API with it.
const HeaderMember = "X-Coapp-Member"

// bearer returns the request's bearer token.
func bearer(r *http.Request) (string, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(token), ok
}

// wellFormed reports whether token has a token's shape: only those are
// worth asking the leader about.
func wellFormed(token string) bool {
	_, _, ok := format.SplitToken(token)
	return ok
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the writer beneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// started reports whether the answer has begun.
func started(w http.ResponseWriter) bool {
	sw, ok := w.(*statusWriter)
	return ok && sw.status != 0
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, d api.ErrorDetail) {
	d.Message = strings.TrimPrefix(d.Message, "coapp: ") // the package's prefix says nothing to an API client
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: d})
}

// writeErr maps an error to its status, code and safe message: through
// api's table, or as the leader answered it.
func (a *API) writeErr(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	var relayed *client.Error
	if errors.As(err, &mbe) {
		writeError(w, http.StatusRequestEntityTooLarge, api.ErrorDetail{Code: "too_large", Message: fmt.Sprintf("the body is larger than %d bytes", mbe.Limit)})
		return
	}
	if errors.As(err, &relayed) && relayed.Status != 0 {
		// An error from the leader, relayed as it came.
		if relayed.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, relayed.Status, api.ErrorDetail{Code: relayed.Code, Message: relayed.Message, Field: relayed.Field, Kind: relayed.Kind})
		return
	}
	err = server.Translate(err)
	row := api.CodeOf(err)
	d := api.ErrorDetail{Code: row.Code, Kind: row.Kind, Field: row.Field, Message: err.Error()}
	var ve *api.ValidationError
	var ae *api.Error
	switch {
	case errors.As(err, &ve):
		d.Field = ve.Field
	case errors.As(err, &ae) && ae.Field != "":
		d.Field = ae.Field
	}
	switch row.Err {
	case api.ErrInternal:
		a.log.Error("request failed", "err", err)
		d.Message = "internal error"
	case api.ErrCorrupt:
		a.log.Error("corrupt data", "err", err)
		d.Message = "this node detected corrupt data; ask another node"
	case api.ErrNoLeader:
		d.Message = "no leader is available yet; retry"
	case api.ErrTimeout:
		d.Message = "the request timed out; retry (record ids make it safe)"
	}
	if row.Retry {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, row.Status, d)
}

// decode decodes a request body strictly.
func decode(r *http.Request, v any) error { return api.Decode(r.Body, v) }
