package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"coapp.coop/coapp/api"
)

// The exit codes of coapp. exitUnreachable is the one a script may retry
// later; the others need someone to look.
const (
	exitOK           = 0 // done
	exitFailed       = 1 // the node refused the request or failed, or a local error (a file, TLS)
	exitUsage        = 2 // a mistake in the command line
	exitUnreachable  = 3 // the node could not be reached, or did not answer within --timeout
	exitInconsistent = 4 // ledger verify: the node serves a history inconsistent with the head held
)

const exitCodesUsage = `exit codes:
  0  done
  1  the node refused the request or failed, a TLS or certificate error, or a local error (the message says which)
  2  a mistake in the command line
  3  the node could not be reached, or did not answer within --timeout
  4  ledger verify: the node serves a history inconsistent with the one verified before`

// unreachableError is a node that could not be reached or did not answer
// in time: exit code 3.
type unreachableError struct{ msg string }

func (e unreachableError) Error() string { return e.msg }

// inconsistentError is a node serving a history inconsistent with a head
// verified before (a fork): exit code 4.
type inconsistentError struct{ msg string }

func (e inconsistentError) Error() string { return e.msg }

// errDeadline is the cause of a command's context ending at --timeout.
var errDeadline = errors.New("the --timeout was reached")

// A session is one command's conversation with a node: it bounds the
// command by --timeout, watches each attempt the client makes (the retry
// logic itself is the client's), says once on stderr that a call is being
// retried, stops the client from retrying what retrying cannot mend (TLS
// and certificate errors), and turns the error the command ends with into
// one that says what happened.
type session struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	stderr io.Writer

	mu        sync.Mutex
	started   bool
	url       string
	timeout   time.Duration
	timer     *time.Timer
	tls       tlsGiven
	stream    bool
	streaming bool   // the answer of a stream is being read
	fatal     error  // an error no retry mends
	failed    error  // the failure of the last attempt, nil if it succeeded
	failure   string // failed, described in a few words
	announced bool   // the retry line was printed
}

// tlsGiven says which TLS flags the command line gave.
type tlsGiven struct{ cert, key, ca string }

func (t tlsGiven) any() bool { return t.cert != "" || t.key != "" || t.ca != "" }

type sessionKey struct{}

// withSession returns a context that a session can end, and the session.
func withSession(ctx context.Context, stderr io.Writer) (context.Context, *session) {
	ctx, cancel := context.WithCancelCause(ctx)
	s := &session{cancel: cancel, stderr: stderr}
	s.ctx = context.WithValue(ctx, sessionKey{}, s)
	return s.ctx, s
}

func sessionFrom(ctx context.Context) *session {
	if s, ok := ctx.Value(sessionKey{}).(*session); ok {
		return s
	}
	_, s := withSession(ctx, io.Discard)
	return s
}

// start begins the command's conversation with the node at base: from now
// on, the command has --timeout to finish (a stream: to start answering,
// then as long as data keeps coming, with no gap of --timeout).
func (s *session) start(base string, timeout time.Duration, given tlsGiven, stream bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started, s.url, s.timeout, s.tls, s.stream = true, base, timeout, given, stream
	if timeout > 0 {
		s.timer = time.AfterFunc(timeout, func() { s.cancel(errDeadline) })
	}
}

// end stops the timer and releases the context.
func (s *session) end() {
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.cancel(nil)
}

// httpClient returns the HTTP client of the session's calls.
func (s *session) httpClient(cfg *tls.Config) *http.Client {
	hc := &http.Client{Transport: &watcher{s: s, base: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 256}}}
	if !s.stream {
		// Each attempt within a minute, as the client's default has it;
		// a stream is bounded by --timeout between reads instead.
		hc.Timeout = time.Minute
	}
	return hc
}

// until says how long the client goes on retrying.
func (s *session) until() string {
	if s.timeout <= 0 {
		return "until interrupted (--timeout 0)"
	}
	return fmt.Sprintf("until the timeout (%v)", s.timeout)
}

// watcher is the session's http.RoundTripper: it watches each attempt.
type watcher struct {
	s    *session
	base http.RoundTripper
}

func (w *watcher) RoundTrip(req *http.Request) (*http.Response, error) {
	s := w.s
	s.mu.Lock()
	if s.failed != nil && !s.announced {
		// The attempt before this one failed, and the client tries
		// again: say so once, then stay quiet until it gives up.
		s.announced = true
		fmt.Fprintf(s.stderr, "coapp: %s; retrying %s\n", s.failure, s.until())
	}
	s.mu.Unlock()

	resp, err := w.base.RoundTrip(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.ctx.Err() != nil {
			return nil, err // the timeout, a fatal error or an interrupt ended it
		}
		if f := s.tlsProblem(err); f != nil {
			// Retrying cannot mend a certificate: end the command
			// now (the client retries transport errors until its
			// context ends).
			s.fatal = f
			s.cancel(f)
			return nil, err
		}
		s.failed, s.failure = err, fmt.Sprintf("%s unreachable (%s)", s.url, reason(err))
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusBadGateway:
		body := peek(resp)
		msg := http.StatusText(resp.StatusCode)
		var eb api.ErrorBody
		if json.Unmarshal(body, &eb) == nil && eb.Error.Message != "" {
			msg = eb.Error.Message
		}
		e := fmt.Errorf("%d %s", resp.StatusCode, msg)
		s.failed, s.failure = e, fmt.Sprintf("%s answered %v", s.url, e)
	case resp.StatusCode == http.StatusBadRequest && resp.Header.Get("Content-Type") == "":
		// Go's TLS server answers a plain HTTP request so.
		if bytes.Contains(peek(resp), []byte("HTTP request to an HTTPS server")) {
			advice := "the node speaks TLS: use an https:// --url"
			if !s.tls.any() {
				advice += " and give --tls-ca, --tls-cert and --tls-key"
			}
			s.fatal = fmt.Errorf("%s: %s", s.url, advice)
		}
		s.failed = nil
	default:
		s.failed = nil
		if s.stream && resp.StatusCode == http.StatusOK && s.timer != nil {
			s.timer.Reset(s.timeout)
			s.streaming = true
			resp.Body = &idleBody{ReadCloser: resp.Body, s: s}
		}
	}
	return resp, nil
}

// peek reads a small answer's body and puts it back for the client.
func peek(resp *http.Response) []byte {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

// idleBody restarts the session's timer on every read that brings data.
type idleBody struct {
	io.ReadCloser
	s *session
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.s.mu.Lock()
		b.s.timer.Reset(b.s.timeout)
		b.s.mu.Unlock()
	}
	return n, err
}

// reason says in a few words why a node could not be reached.
func reason(err error) string {
	var errno syscall.Errno
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &dns):
		return dns.Err + " " + dns.Name
	case errors.As(err, &ne) && ne.Timeout():
		return "no answer"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed"
	}
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// tlsProblem returns the error to report for a TLS or certificate failure
// (which no retry mends), or nil for another error.
func (s *session) tlsProblem(err error) error {
	var (
		unknown   x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		header    tls.RecordHeaderError
		alert     tls.AlertError
		msg       = err.Error()
		advice    string
		hasRemote = strings.Contains(msg, "remote error: tls:")
	)
	switch {
	case errors.As(err, &header):
		advice = "the node does not speak TLS"
		if string(header.RecordHeader[:]) == "HTTP/" {
			advice = "the node speaks plain HTTP, not TLS"
		}
		advice += ": use an http:// --url (or start the node with --tls-cert, --tls-key and --tls-ca)"
	case errors.As(err, &unknown):
		if s.tls.ca == "" {
			advice = "the node speaks TLS: give --tls-ca, --tls-cert and --tls-key (the federation's CA, and a client certificate it signed)"
		} else {
			advice = fmt.Sprintf("the node's certificate is not signed by --tls-ca (%s)", s.tls.ca)
		}
	case errors.As(err, &hostname):
		advice = fmt.Sprintf("the node's certificate is not valid for %s: use in --url an address the certificate names, or issue it with that --host", hostname.Host)
	case errors.As(err, &invalid):
		advice = "the node's certificate is not valid (expired, or not for a server)"
	case strings.Contains(msg, "tls: certificate required"):
		advice = "the node requires a client certificate: give --tls-cert and --tls-key (a certificate of the federation's CA)"
	case strings.Contains(msg, "tls: unknown certificate authority") || strings.Contains(msg, "tls: bad certificate") ||
		strings.Contains(msg, "tls: expired certificate"):
		advice = "the node refused the client certificate (--tls-cert): it must be valid, for client use, and signed by the federation's CA"
	case errors.As(err, &verify):
		advice = "the node's certificate does not verify"
	case errors.As(err, &alert) || hasRemote || strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: "):
		advice = "the TLS handshake failed: check --tls-cert, --tls-key and --tls-ca against the node's"
	default:
		return nil
	}
	return fmt.Errorf("%s: %s; the TLS error: %s", s.url, advice, reason(err))
}

// explain turns the error a command ended with into one that says what
// happened to its conversation with the node.
func (s *session) explain(err error) error {
	if err == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return err
	}
	if s.fatal != nil {
		return s.fatal
	}
	if errors.Is(context.Cause(s.ctx), errDeadline) {
		switch {
		case s.streaming:
			return unreachableError{fmt.Sprintf("gave up: %s sent nothing for %v (--timeout)", s.url, s.timeout)}
		case s.failed != nil:
			return unreachableError{fmt.Sprintf("gave up after %v (--timeout): %s; the last error: %v", s.timeout, s.failure, s.failed)}
		}
		return unreachableError{fmt.Sprintf("gave up: no answer from %s within %v (--timeout)", s.url, s.timeout)}
	}
	// A call the client does not retry (a stream, or a write whose
	// outcome a lost answer would leave unknown) failed to reach the node.
	var ue *url.Error
	if s.failed != nil && s.ctx.Err() == nil && errors.As(err, &ue) {
		return unreachableError{fmt.Sprintf("%s unreachable: %v", s.url, ue.Err)}
	}
	return err
}
