// Package client is the Go client of a coapp node's HTTP API, used by the
// coapp command, the tests, the examples, and by one node to reach the
// federation's leader.
//
//	c := client.New("http://127.0.0.1:7400", token)
//	receipts, err := c.Publish(ctx, []client.Record{{ID: id, Type: "purchase", ...}})
//	if errors.Is(err, api.ErrForbidden) { ... }
//
// Its types are the API's own (package coapp.coop/coapp/api), and an error
// a node answers maps back to the API's sentinel: errors.Is holds over
// HTTP as it does in-process. The client links neither Badger nor Raft.
//
// Calls retry, with backoff and within ctx, when the node answers 503 (no
// leader yet) or cannot be reached. Retrying a publish is safe: records
// carry their ids, so the ledger stores each once.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"coapp.coop/coapp/api"
)

// The API's types, under the names this package has always given them.
type (
	Record           = api.Record
	Receipt          = api.Receipt
	RecordInfo       = api.RecordInfo
	LedgerInfo       = api.LedgerInfo
	InclusionProof   = api.InclusionProof
	ConsistencyProof = api.ConsistencyProof
	NodeStatus       = api.NodeStatus
	Cluster          = api.ClusterInfo
	Token            = api.TokenResponse
	SubjectRecord    = api.SubjectRecord
	SubjectReport    = api.SubjectReport
	ConsentReceipt   = api.ConsentReceipt
	ConsentList      = api.ConsentList
	VerifyResult     = api.VerifyResult
	MemberKeys       = api.MemberKeysInfo
	Proposal         = api.ProposalStatus
	AggregateGroup   = api.AggregateGroup
	AggregateResult  = api.AggregateResult
	ExportAudit      = api.ExportAudit
	Share            = api.Share
	SharesReport     = api.SharesReport
)

// Error is an error answered by the API: its HTTP status, a stable code
// ("invalid", "conflict", "unauthenticated", ...), the narrower kind where
// the code is shared, a message and, for invalid input, the field. It
// unwraps to the API's sentinel of its code: errors.Is(err,
// api.ErrForbidden) holds for a 403.
type Error struct {
	Status  int
	Code    string
	Kind    string
	Message string
	Field   string
}

// Error returns the status, code, field and message.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("coapp: %d %s (%s): %s", e.Status, e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("coapp: %d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap returns the API's sentinel of the error's code and kind (nil for
// a code this version does not know).
func (e *Error) Unwrap() error { return api.Sentinel(e.Code, e.Kind) }

// Client calls one node's API. It is safe for concurrent use.
type Client struct {
	base    string
	token   string
	http    *http.Client
	headers http.Header
	// Retries bounds the attempts of a call that may be retried; 0 means
	// until ctx ends.
	Retries int
}

// Option configures a Client.
type Option func(*Client)

// WithTLS uses a TLS configuration (for mutual TLS, with a client
// certificate).
func WithTLS(cfg *tls.Config) Option {
	return func(c *Client) {
		c.http.Transport = &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 256}
	}
}

// WithHTTPClient uses hc for every request.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithHeader sets a header on every request (a node handing a request to
// the leader marks it so).
func WithHeader(name, value string) Option {
	return func(c *Client) { c.headers.Set(name, value) }
}

// WithRetries bounds the attempts of a call that may be retried (see
// Client.Retries).
func WithRetries(n int) Option { return func(c *Client) { c.Retries = n } }

// New returns a client of the API at base (such as "http://127.0.0.1:7400")
// authenticated by token.
func New(base, token string, opts ...Option) *Client {
	c := &Client{
		base:    strings.TrimRight(base, "/"),
		token:   token,
		headers: http.Header{},
		http: &http.Client{
			Timeout:   time.Minute,
			Transport: &http.Transport{MaxIdleConnsPerHost: 256},
		},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// write sends a request that is not idempotent, retrying only while the
// node answers that no leader is known.
func (c *Client) write(ctx context.Context, method, path string, in, out any) error {
	for attempt := 1; ; attempt++ {
		err := c.do(ctx, method, path, in, out, false)
		if !errors.Is(err, api.ErrNoLeader) || (c.Retries > 0 && attempt >= c.Retries) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(time.Duration(min(50<<min(attempt, 6), 1000)) * time.Millisecond):
		}
	}
}

func (c *Client) request(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, vs := range c.headers {
		req.Header[k] = vs
	}
	return req, nil
}

// do sends a request, retrying when retry is true and the failure is
// transient, and decodes the answer into out.
func (c *Client) do(ctx context.Context, method, path string, in, out any, retry bool) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	return c.send(ctx, method, path, body, out, retry)
}

// send is do with the request's body encoded.
func (c *Client) send(ctx context.Context, method, path string, body []byte, out any, retry bool) error {
	for attempt := 1; ; attempt++ {
		err, again := c.once(ctx, method, path, body, out)
		if err == nil || !retry || !again || (c.Retries > 0 && attempt >= c.Retries) {
			return err
		}
		wait := time.Duration(min(50<<min(attempt, 6), 2000)) * time.Millisecond
		var ae *Error
		if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable {
			wait = min(wait, time.Second)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// once sends one request; again reports whether it may be retried.
func (c *Client) once(ctx context.Context, method, path string, body []byte, out any) (err error, again bool) {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err, false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne net.Error
		return err, ctx.Err() == nil && (errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection"))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		e := decodeError(resp)
		return e, resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusBadGateway
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil, false
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("coapp: malformed answer: %w", err), false
	}
	return nil, false
}

func decodeError(resp *http.Response) error {
	var body api.ErrorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		e.Code, e.Kind, e.Message, e.Field = body.Error.Code, body.Error.Kind, body.Error.Message, body.Error.Field
	} else {
		e.Code, e.Message = "http_"+strconv.Itoa(resp.StatusCode), strings.TrimSpace(string(data))
	}
	return e
}

// stream sends a request and hands its answer's body to fn, when the
// status is 200.
func (c *Client) stream(ctx context.Context, method, path string, body []byte, fn func(*http.Response) error) error {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	return fn(resp)
}

func jsonBody(v any) ([]byte, error) { return json.Marshal(v) }
