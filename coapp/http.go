package coapp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
	"coapp.coop/ledger"
	"coapp.coop/ledger/merkle"
	"coapp.coop/pseudonym"
)

// errorBody is the JSON shape of every error response:
// {"error":{"code":"...","message":"...","field":"..."}}.
type errorBody struct {
	Error apiErrorJSON `json:"error"`
}

type apiErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// apiError is an error response received from another node.
type apiError struct {
	status int
	apiErrorJSON
}

func (e *apiError) Error() string {
	return fmt.Sprintf("http %d %s: %s", e.status, e.Code, e.Message)
}

func decodeAPIError(resp *http.Response) error {
	var body errorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(data, &body) != nil || body.Error.Code == "" {
		body.Error = apiErrorJSON{Code: "http_error", Message: strings.TrimSpace(string(data))}
	}
	return &apiError{status: resp.StatusCode, apiErrorJSON: body.Error}
}

// forwardedHeader marks a request a node forwarded to the leader, so that it
// is never forwarded twice.
const forwardedHeader = "X-Coapp-Forwarded-By"

// route registers a handler under a pattern with its auth rule, metrics
// and error handling.
type route struct {
	pattern string
	auth    authRule
	handle  func(w http.ResponseWriter, r *http.Request, c caller) error
}

type authRule int

const (
	public authRule = iota
	member
	admin
)

func (n *Node) routeTable() []route {
	return []route{
		{"GET /healthz", public, n.handleHealthz},
		{"GET /readyz", public, n.handleReadyz},
		{"GET /metrics", public, n.handleMetrics},
		{"POST /v1/records", member, n.handlePublish},
		{"POST /v1/records/signed", member, n.handleSignedRecords},
		{"GET /v1/records/{id}", member, n.handleRecord},
		{"GET /v1/ledger", member, n.handleLedger},
		{"GET /v1/ledger/proofs/inclusion", member, n.handleInclusion},
		{"GET /v1/ledger/proofs/consistency", member, n.handleConsistency},
		{"GET /v1/cluster", member, n.handleCluster},
		{"GET /v1/status", member, n.handleStatus},
		{"POST /v1/cluster/join", admin, n.handleJoin},
		{"DELETE /v1/cluster/nodes/{id}", admin, n.handleRemoveNode},
		{"POST /v1/cluster/nodes/{id}/promote", admin, n.handlePromote},
		{"POST /v1/subjects/access", member, n.handleAccess},
		{"POST /v1/subjects/erase", member, n.handleErase},
		{"POST /v1/schemas", admin, n.handlePutSchema},
		{"GET /v1/schemas", member, n.handleSchemas},
		{"GET /v1/schemas/{type}", member, n.handleSchema},
		{"POST /v1/tokens", admin, n.handleCreateToken},
		{"DELETE /v1/tokens/{id}", admin, n.handleRevokeToken},
		{"GET /v1/backup", admin, n.handleBackup},
		{"POST /v1/consents", member, n.handleGiveConsent},
		{"POST /v1/consents/events", member, n.handleSubmitEvent},
		{"POST /v1/consents/list", member, n.handleListConsents},
		{"POST /v1/consents/check", member, n.handleCheckConsent},
		{"POST /v1/consents/verify", member, n.handleVerifyConsent},
		{"GET /v1/consents/{id}", member, n.handleGetConsent},
		{"POST /v1/consents/{id}/{action}", member, n.handleChangeConsent},
		{"GET /v1/purposes", member, n.handlePurposes},
		{"POST /v1/purposes", admin, n.handleDefinePurpose},
		{"GET /v1/members/{id}/key", member, n.handleMemberKey},
		{"POST /v1/members/{id}/key/rotate", member, n.handleRotateKey},
		{"GET /v1/members", member, n.handleMembers},
		{"POST /v1/proposals", member, n.handlePropose},
		{"GET /v1/proposals", member, n.handleProposals},
		{"GET /v1/proposals/{id}", member, n.handleProposal},
		{"POST /v1/proposals/{id}/votes", member, n.handleVote},
		{"POST /v1/signed", member, n.handleSigned},
		{"GET /v1/datasets", member, n.handleDatasets},
		{"GET /v1/datasets/{name}", member, n.handleDataset},
		{"POST /v1/datasets/{name}/export", member, n.handleExport},
		{"POST /v1/datasets/{name}/aggregate", member, n.handleAggregate},
		{"GET /v1/datasets/{name}/shares", member, n.handleShares},
		{"GET /v1/datasets/{name}/audit", member, n.handleAudit},
		{"POST /v1/subjects/exports", member, n.handleSubjectExports},
	}
}

// Routes lists the method and path of every route the API serves, for
// documentation checks.
func (n *Node) Routes() []string {
	var out []string
	for _, r := range n.routeTable() {
		out = append(out, r.pattern)
	}
	return out
}

func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range n.routeTable() {
		mux.Handle(rt.pattern, n.wrap(rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n.metrics.request("unknown", http.StatusNotFound)
		writeError(w, http.StatusNotFound, "not_found", "no such route", "")
	})
	return mux
}

// wrap authenticates, bounds the body, recovers from panics, maps errors
// to statuses and counts requests.
func (n *Node) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				n.logger.Error("handler panic", "route", rt.pattern, "panic", p)
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, "internal", "internal error", "")
				}
			}
			n.metrics.request(rt.pattern, sw.code())
		}()
		limit := n.cfg.MaxBodyBytes
		if rt.pattern == "POST /v1/records/signed" {
			// A follower's sealed batch of a request it accepted:
			// base64 payloads and key requirements take more room.
			limit *= 4
		}
		r.Body = http.MaxBytesReader(sw, r.Body, limit)
		var c caller
		if rt.auth != public {
			var ok bool
			c, ok = n.authenticate(r)
			if !ok && wellFormedToken(r) && r.Header.Get(forwardedHeader) == "" && n.needsLeader() {
				// This node's view may lag behind the ledger (a node just
				// joined, a token just created): catch up with the
				// leader, and serve the request here when the token is
				// known then (a member's key is on the node it calls, so
				// signing must happen here); else let the leader decide.
				if n.catchUp(r) == nil {
					c, ok = n.authenticate(r)
				}
				if !ok {
					if err := n.forwardBody(sw, r); err != nil {
						n.writeErr(sw, err)
					}
					return
				}
			}
			if !ok {
				writeError(sw, http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required", "")
				return
			}
			if rt.auth == admin && !c.admin {
				writeError(sw, http.StatusForbidden, "forbidden", "this needs an admin token", "")
				return
			}
		}
		if err := rt.handle(sw, r, c); err != nil {
			n.writeErr(sw, err)
		}
	})
}

// wellFormedToken reports whether the request carries something shaped
// like a token: only those are worth asking the leader about.
func wellFormedToken(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	_, _, ok = splitToken(strings.TrimSpace(token))
	return ok
}

func (n *Node) authenticate(r *http.Request) (caller, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return caller{}, false
	}
	return n.view.authenticate(strings.TrimSpace(token))
}

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

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	msg = strings.TrimPrefix(msg, "coapp: ") // the package's prefix says nothing to an API client
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{apiErrorJSON{Code: code, Message: msg, Field: field}})
}

// writeErr maps an error to its status, code and safe message.
func (n *Node) writeErr(w http.ResponseWriter, err error) {
	var (
		ve  *ValidationError
		lve *ledger.ValidationError
		ce  *ledger.ConflictError
		ae  *apiError
		mbe *http.MaxBytesError
		vc  *versionConflict
		cse *consent.Error
	)
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", mbe.Limit), "")
	case errors.Is(err, ledger.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the records are larger than the ledger accepts in one request", "records")
	case errors.As(err, &ve):
		writeError(w, http.StatusBadRequest, "invalid", ve.Error(), ve.Field)
	case errors.As(err, &lve):
		writeError(w, http.StatusBadRequest, "invalid", lve.Error(), lve.Field)
	case errors.As(err, &cse):
		status, code := consentStatus(cse.Err)
		writeError(w, status, code, cse.Error(), cse.Field)
	case errors.Is(err, ErrNotMember), errors.Is(err, ErrForbidden):
		writeError(w, http.StatusForbidden, "forbidden", err.Error(), "")
	case errors.Is(err, ErrRefused):
		writeError(w, http.StatusConflict, "refused", err.Error(), "id")
	case errors.Is(err, ErrBudgetSpent):
		writeError(w, http.StatusConflict, "budget_spent", err.Error(), "dp.epsilon")
	case errors.Is(err, ErrVoted), errors.Is(err, ErrClosed):
		writeError(w, http.StatusConflict, "conflict", err.Error(), "")
	case errors.Is(err, ErrBadSignature):
		writeError(w, http.StatusBadRequest, "bad_signature", err.Error(), "")
	case errors.Is(err, ledger.ErrKeyConflict):
		// Another writer created a subject's data key first: the
		// publishing node reads it and seals again.
		writeError(w, http.StatusConflict, "key_conflict", "a subject's data key changed meanwhile; seal again", "keys")
	case errors.Is(err, ErrErased), errors.Is(err, ledger.ErrKeyDestroyed):
		writeError(w, http.StatusGone, "erased", "the subject was erased: nothing more is published about them", "")
	case errors.As(err, &vc):
		writeError(w, http.StatusConflict, "conflict", vc.Error(), "version")
	case errors.As(err, &ce):
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("record id %s is already used for a different record", ce.ID), "id")
	case errors.Is(err, ErrNotFound), errors.Is(err, ledger.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "not found", "")
	case errors.Is(err, ledger.ErrOutOfRange):
		writeError(w, http.StatusBadRequest, "out_of_range", err.Error(), "")
	case errors.Is(err, ledger.ErrNotLeader), errors.Is(err, ledger.ErrNoLeader), errors.Is(err, errNoLeaderHTTP):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "no_leader", "no leader is available yet; retry", "")
	case errors.As(err, &ae):
		// An error from the leader, relayed as it came.
		writeError(w, ae.status, ae.Code, ae.Message, ae.Field)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "timeout", "the request timed out; retry (record ids make it safe)", "")
	case errors.Is(err, ledger.ErrCorrupt):
		n.logger.Error("corrupt data", "err", err)
		writeError(w, http.StatusInternalServerError, "corrupt", "this node detected corrupt data; ask another node", "")
	default:
		n.logger.Error("request failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
	}
}

// consentStatus maps consent's sentinels to statuses and codes.
func consentStatus(err error) (int, string) {
	switch {
	case errors.Is(err, consent.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, consent.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, consent.ErrExists), errors.Is(err, consent.ErrChain):
		return http.StatusConflict, "conflict"
	case errors.Is(err, consent.ErrWithdrawn):
		return http.StatusConflict, "withdrawn"
	case errors.Is(err, consent.ErrExpired):
		return http.StatusConflict, "expired"
	case errors.Is(err, consent.ErrUnknownPurpose):
		return http.StatusBadRequest, "unknown_purpose"
	case errors.Is(err, consent.ErrBadSignature):
		return http.StatusBadRequest, "bad_signature"
	case errors.Is(err, consent.ErrBadReceipt):
		return http.StatusBadRequest, "bad_receipt"
	}
	return http.StatusBadRequest, "invalid"
}

// decodeBody decodes a JSON body strictly: unknown fields and trailing data
// are errors.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return invalid(jsonErrField(err), "%s", jsonErrReason(err))
	}
	if dec.More() {
		return invalid("body", "trailing data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("body", "trailing data after the JSON value")
	}
	return nil
}

func jsonErrField(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		return ute.Field
	}
	if s := err.Error(); strings.HasPrefix(s, "json: unknown field ") {
		if name := strings.Trim(strings.TrimPrefix(s, "json: unknown field "), `"`); name != "" {
			return name
		}
	}
	return "body"
}

func jsonErrReason(err error) string {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	var te *time.ParseError
	switch {
	case errors.As(err, &ute):
		return fmt.Sprintf("expected %s, got %s", ute.Type, ute.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return "not an RFC 3339 time"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return "unknown field"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated body"
	default:
		return "malformed JSON"
	}
}

// consistency reads ?consistency=stale|leader|linearizable.
func consistency(r *http.Request) (ledger.Consistency, error) {
	c, err := ledger.ParseConsistency(r.URL.Query().Get("consistency"))
	if err != nil {
		return 0, invalid("consistency", "not one of stale, leader, linearizable")
	}
	return c, nil
}

func queryUint(r *http.Request, name string) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, invalid(name, "required")
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, invalid(name, "not a non-negative integer")
	}
	return v, nil
}

// needsLeader is true when this node must hand the request to the leader:
// writes, and reads at leader or linearizable consistency.
func (n *Node) needsLeader() bool {
	return !n.ledger.IsLeader()
}

// forwardBody forwards a request whose body has not been read.
func (n *Node) forwardBody(w http.ResponseWriter, r *http.Request) error {
	var body []byte
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodDelete {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return err
		}
	}
	return n.forward(w, r, body)
}

// forward sends the request to the leader's HTTP API and copies its answer
// back. body is the request body already read, or nil.
func (n *Node) forward(w http.ResponseWriter, r *http.Request, body []byte) error {
	return n.forwardTo(w, r, r.Method, r.URL.RequestURI(), body)
}

// forwardTo sends body to another route of the leader's API, with the
// request's credentials, and copies its answer back.
func (n *Node) forwardTo(w http.ResponseWriter, r *http.Request, method, uri string, body []byte) error {
	if r.Header.Get(forwardedHeader) != "" {
		return ledger.ErrNotLeader // the leader changed under a forwarded request
	}
	st, err := n.ledger.Status()
	if err != nil {
		return err
	}
	if st.LeaderID == "" {
		return ledger.ErrNoLeader
	}
	leader, ok := n.view.node(st.LeaderID)
	if !ok || leader.HTTPAddr == "" {
		return errNoLeaderHTTP
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, leader.HTTPAddr+uri, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
	req.Header.Set(forwardedHeader, n.ledger.ID())
	resp, err := n.peer.Do(req)
	if err != nil {
		n.logger.Warn("forward to the leader failed", "leader", st.LeaderID, "err", err)
		return ledger.ErrNoLeader
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Retry-After"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, err = io.Copy(w, resp.Body)
	return err
}

func (n *Node) handleHealthz(w http.ResponseWriter, _ *http.Request, _ caller) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz answers 200 once a leader is known and this node has caught
// up: applied everything committed that it knew of, with the federation
// view following. Once caught up it stays ready while a leader is known,
// so that the few entries always in flight under load do not make it flap.
func (n *Node) handleReadyz(w http.ResponseWriter, _ *http.Request, _ caller) error {
	st, err := n.ledger.Status()
	switch {
	case err != nil:
		return err
	case st.LeaderID == "":
		writeError(w, http.StatusServiceUnavailable, "no_leader", "no leader known", "")
		return nil
	case n.caughtUp.Load():
	case st.AppliedIndex < st.CommitIndex:
		writeError(w, http.StatusServiceUnavailable, "catching_up", fmt.Sprintf("applied %d of %d", st.AppliedIndex, st.CommitIndex), "")
		return nil
	case n.view.applied() < st.Size:
		writeError(w, http.StatusServiceUnavailable, "catching_up", "federation view behind the ledger", "")
		return nil
	default:
		n.caughtUp.Store(true)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "leader": st.LeaderID, "applied_index": st.AppliedIndex})
}

// publishRequest is the body of POST /v1/records.
type publishRequest struct {
	Records []Record `json:"records"`
}

type publishResponse struct {
	Receipts []Receipt `json:"receipts"`
}

func (n *Node) handlePublish(w http.ResponseWriter, r *http.Request, c caller) error {
	var req publishRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	receipts, err := n.publish(r.Context(), r, c.member, req.Records)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, publishResponse{Receipts: receipts})
}

// Publish validates records and appends them for member, atomically: on
// error nothing was written. Records whose ids the ledger already holds
// with the same content get their original receipts. The records are
// pseudonymised, sealed and signed with member's key on this node; the
// append runs on the leader (ledger.ErrNotLeader elsewhere: the HTTP API
// sends the sealed, signed batch to the leader).
func (n *Node) Publish(ctx context.Context, member string, records []Record) ([]Receipt, error) {
	return n.publish(ctx, nil, member, records)
}

func (n *Node) publish(ctx context.Context, r *http.Request, member string, records []Record) ([]Receipt, error) {
	if len(records) == 0 {
		return nil, invalid("records", "required: at least one record")
	}
	follower := n.needsLeader()
	if r == nil && follower {
		return nil, ledger.ErrNotLeader
	}
	if _, known := n.view.memberKey(member); !known && follower {
		// The member's key, or the schemas, may be in the ledger
		// already but not yet applied here.
		if err := n.catchUp(r); err != nil {
			return nil, err
		}
	}
	key, err := n.signingKey(member)
	if err != nil {
		return nil, err
	}
	preps := make([]prepared, len(records))
	tr := &transformer{keys: n.keys, member: member}
	for i := range records {
		at := fmt.Sprintf("records[%d]", i)
		if err := records[i].validate(at); err != nil {
			return nil, err
		}
		s, ok := n.view.schema(records[i].Type, records[i].Version)
		if !ok && follower {
			// Registered through the leader a moment ago, perhaps.
			if err := n.catchUp(r); err != nil {
				return nil, err
			}
			s, ok = n.view.schema(records[i].Type, records[i].Version)
		}
		if !ok {
			if records[i].Version != 0 {
				return nil, invalid(at+".version", "no version %d of the schema of %s", records[i].Version, records[i].Type)
			}
			return nil, invalid(at+".type", "no schema is registered for %s", records[i].Type)
		}
		p, err := records[i].prepare(tr, &s, at)
		if err != nil {
			return nil, err
		}
		preps[i] = p
	}
	// Seal each record under its subject's data key, and append with the
	// requirement that those keys are still the ones in the key store. A
	// key created meanwhile by another request conflicts: read it, retry.
	var rs []ledger.Receipt
	for attempt := 0; ; attempt++ {
		rs, err = n.sealAndAppend(ctx, r, member, key, preps)
		var ke *ledger.KeyError
		var ae *apiError
		switch {
		case errors.As(err, &ke):
			// That remembered key was stale, or another writer created
			// it first: read it again.
			n.cache.forgetKey(ke.Name)
		case errors.As(err, &ae) && ae.Code == "key_conflict":
			// The same, found by the leader: catch up with it, and read
			// the batch's keys again.
			n.forgetSubjects(preps)
			if cerr := n.catchUp(r); cerr != nil {
				return nil, cerr
			}
			err = fmt.Errorf("%w (on the leader)", ledger.ErrKeyConflict)
		case errors.Is(err, ErrBadSignature) || errors.As(err, &ae) && ae.Code == "bad_signature":
			// The member rotated its key meanwhile: sign again with
			// the new one.
			next, kerr := n.signingKey(member)
			if kerr != nil {
				return nil, kerr
			}
			if attempt < 3 && !next.Equal(key) {
				key = next
				continue
			}
		}
		if attempt < 3 && errors.Is(err, ledger.ErrKeyConflict) {
			continue
		}
		break
	}
	if errors.Is(err, ledger.ErrKeyDestroyed) {
		return nil, ErrErased
	}
	if err != nil {
		return nil, err
	}
	out := make([]Receipt, len(rs))
	for i, rc := range rs {
		out[i] = Receipt{ID: rc.ID, Index: rc.Index, Leaf: rc.Leaf}
	}
	return out, nil
}

// forgetSubjects drops the remembered data keys of the batch's subjects.
func (n *Node) forgetSubjects(preps []prepared) {
	ps := make([]pseudonym.Pseudonym, len(preps))
	for i := range preps {
		ps[i] = preps[i].payload.Subject
	}
	n.cache.forget(ps)
}

func (n *Node) sealAndAppend(ctx context.Context, r *http.Request, member string, key ed25519.PrivateKey, preps []prepared) ([]ledger.Receipt, error) {
	subjects := make([]pseudonym.Pseudonym, len(preps))
	for i := range preps {
		subjects[i] = preps[i].payload.Subject
	}
	keys, reqs, created, err := n.subjectKeys(ctx, subjects)
	if err != nil {
		return nil, err
	}
	entries := make([]ledger.Entry, len(preps))
	seen := make(map[uuid.UUID]int, len(preps))
	for i := range preps {
		e, err := preps[i].seal(keys[preps[i].payload.Subject])
		if err != nil {
			return nil, err
		}
		if j, dup := seen[e.ID]; dup && string(entries[j].Payload) != string(e.Payload) {
			return nil, invalid(fmt.Sprintf("records[%d].id", i), "repeats records[%d].id with different content", j)
		}
		seen[e.ID] = i
		entries[i] = e
	}
	rs, err := n.submitRecords(ctx, r, member, key, entries, reqs)
	if err == nil {
		for s, k := range created {
			n.cache.rememberSubject(s, k)
		}
	}
	return rs, err
}

// read runs fn at the request's consistency, on this node or the leader.
func (n *Node) read(w http.ResponseWriter, r *http.Request, fn func(v *ledger.View) (any, error)) error {
	c, err := consistency(r)
	if err != nil {
		return err
	}
	if c != ledger.Stale && n.needsLeader() {
		return n.forward(w, r, nil)
	}
	var out any
	err = n.ledger.Read(r.Context(), c, func(v *ledger.View) error {
		var err error
		out, err = fn(v)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleRecord(w http.ResponseWriter, r *http.Request, _ caller) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return invalid("id", "not a UUID")
	}
	n.awaitView(r.Context()) // for its refusal, if any
	return n.read(w, r, func(v *ledger.View) (any, error) {
		e, rc, err := v.ByID(id)
		if err != nil {
			return nil, err
		}
		if e.Kind != KindRecord {
			return nil, ErrNotFound
		}
		info, err := recordInfo(e, rc)
		if err == nil {
			if err := n.view.recordRefusal(rc.Index); err != nil {
				info.Refused = strings.TrimPrefix(err.Error(), "coapp: ")
			}
		}
		return info, err
	})
}

// LedgerInfo is the answer of GET /v1/ledger.
type LedgerInfo struct {
	Size uint64      `json:"size"`
	Root merkle.Hash `json:"root"`
}

func (n *Node) handleLedger(w http.ResponseWriter, r *http.Request, _ caller) error {
	return n.read(w, r, func(v *ledger.View) (any, error) {
		return LedgerInfo{Size: v.Size(), Root: v.Root()}, nil
	})
}

// InclusionProof is the answer of GET /v1/ledger/proofs/inclusion.
type InclusionProof struct {
	Index uint64        `json:"index"`
	Size  uint64        `json:"size"`
	Root  merkle.Hash   `json:"root"`
	Leaf  merkle.Hash   `json:"leaf"`
	Proof []merkle.Hash `json:"proof"`
}

func (n *Node) handleInclusion(w http.ResponseWriter, r *http.Request, _ caller) error {
	index, err := queryUint(r, "index")
	if err != nil {
		return err
	}
	size, err := queryUint(r, "size")
	if err != nil {
		return err
	}
	if index >= size {
		return invalid("index", "must be below size")
	}
	return n.read(w, r, func(v *ledger.View) (any, error) {
		root, err := v.RootAt(size)
		if err != nil {
			return nil, err
		}
		proof, err := v.InclusionProof(index, size)
		if err != nil {
			return nil, err
		}
		leaf, err := v.LeafHash(index)
		if err != nil {
			return nil, err
		}
		return InclusionProof{Index: index, Size: size, Root: root, Leaf: leaf, Proof: nonNil(proof)}, nil
	})
}

// ConsistencyProof is the answer of GET /v1/ledger/proofs/consistency.
type ConsistencyProof struct {
	From     uint64        `json:"from"`
	To       uint64        `json:"to"`
	FromRoot merkle.Hash   `json:"from_root"`
	ToRoot   merkle.Hash   `json:"to_root"`
	Proof    []merkle.Hash `json:"proof"`
}

func (n *Node) handleConsistency(w http.ResponseWriter, r *http.Request, _ caller) error {
	from, err := queryUint(r, "from")
	if err != nil {
		return err
	}
	to, err := queryUint(r, "to")
	if err != nil {
		return err
	}
	if from > to {
		return invalid("from", "must not be above to")
	}
	return n.read(w, r, func(v *ledger.View) (any, error) {
		fr, err := v.RootAt(from)
		if err != nil {
			return nil, err
		}
		tr, err := v.RootAt(to)
		if err != nil {
			return nil, err
		}
		proof, err := v.ConsistencyProof(from, to)
		if err != nil {
			return nil, err
		}
		return ConsistencyProof{From: from, To: to, FromRoot: fr, ToRoot: tr, Proof: nonNil(proof)}, nil
	})
}

func nonNil(p []merkle.Hash) []merkle.Hash {
	if p == nil {
		return []merkle.Hash{}
	}
	return p
}

func slogErrorLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}
