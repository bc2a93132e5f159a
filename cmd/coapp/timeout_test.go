package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coapp.coop/coapp"
	"coapp.coop/internal/testcerts"
)

// runSplit runs a command in-process, as runCLI does, and returns its
// standard output and standard error apart.
func runSplit(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = run(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestTimeoutUnreachable: against a closed loopback port, a command says
// once that it retries, gives up at --timeout with the last error, and
// exits with code 3, in-process and as a process.
func TestTimeoutUnreachable(t *testing.T) {
	url := "http://" + freePort(t) // nothing listens there any more
	_, stderr, err := runSplit(t, "ledger", "--url", url, "--token", "x", "--timeout", "2s")
	if exitCode(err) != exitUnreachable {
		t.Fatalf("exit %d (%v), want %d\n%s", exitCode(err), err, exitUnreachable, stderr)
	}
	if !strings.Contains(err.Error(), "gave up after 2s (--timeout): "+url+" unreachable (connection refused)") {
		t.Errorf("the final error does not say what failed: %v", err)
	}
	if n := strings.Count(stderr, "retrying"); n != 1 ||
		!strings.Contains(stderr, "coapp: "+url+" unreachable (connection refused); retrying until the timeout (2s)\n") {
		t.Errorf("%d retry lines, want one:\n%s", n, stderr)
	}

	// A call the client does not retry fails at once, with the same
	// exit code.
	if _, _, err := runSplit(t, "token", "create", "--member", "m", "--url", url, "--token", "x", "--timeout", "10m"); exitCode(err) != exitUnreachable ||
		!strings.Contains(err.Error(), url+" unreachable") {
		t.Errorf("token create against a closed port: exit %d: %v", exitCode(err), err)
	}

	if testing.Short() {
		return
	}
	cmd := exec.Command(coappBinary(t), "members", "--url", url, "--token", "x", "--timeout", "1s")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUnreachable {
		t.Fatalf("coapp members: %v, want exit code %d\n%s", err, exitUnreachable, errOut.String())
	}
	if !strings.Contains(errOut.String(), "coapp: gave up after 1s (--timeout): "+url+" unreachable") {
		t.Errorf("coapp members printed:\n%s", errOut.String())
	}
}

// TestTimeoutNoAnswer: a node that accepts but never answers, one that
// answers 503 again and again, and a backup whose stream stalls: each
// command gives up at --timeout, exit code 3.
func TestTimeoutNoAnswer(t *testing.T) {
	stop := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(stop)
	_, _, err := runSplit(t, "members", "--url", hung.URL, "--token", "x", "--timeout", "1s")
	if exitCode(err) != exitUnreachable || !strings.Contains(err.Error(), "no answer from "+hung.URL+" within 1s") {
		t.Errorf("a node that never answers: exit %d: %v", exitCode(err), err)
	}

	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"unavailable","kind":"no_leader","message":"no leader known yet"}}`))
	}))
	defer busy.Close()
	_, stderr, err := runSplit(t, "members", "--url", busy.URL, "--token", "x", "--timeout", "1s")
	if exitCode(err) != exitUnreachable || !strings.Contains(err.Error(), "503 no leader known yet") {
		t.Errorf("a node without a leader: exit %d: %v", exitCode(err), err)
	}
	if strings.Count(stderr, "retrying") != 1 || !strings.Contains(stderr, busy.URL+" answered 503 no leader known yet; retrying until the timeout (1s)") {
		t.Errorf("a node without a leader: stderr:\n%s", stderr)
	}

	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("COAPPSN1 a first part"))
		w.(http.Flusher).Flush()
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer stall.Close()
	out := filepath.Join(t.TempDir(), "backup")
	_, _, err = runSplit(t, "backup", "--out", out, "--url", stall.URL, "--token", "x", "--timeout", "1s")
	if exitCode(err) != exitUnreachable || !strings.Contains(err.Error(), stall.URL+" sent nothing for 1s") {
		t.Errorf("a stalled backup: exit %d: %v", exitCode(err), err)
	}
}

// TestTLSMistakes: against a node speaking mutual TLS, a client without
// the TLS flags, with a CA that did not sign the node's certificate, or
// without a client certificate fails at once (no retry: the timeout is
// longer than the test's own bound) and says what to give; a client
// speaking TLS to a plain node says so too. Exit code 1.
func TestTLSMistakes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	ca, err := testcerts.NewCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nodeCert, err := ca.Issue("n0")
	if err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	other, err := testcerts.NewCA(otherDir)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := other.Issue("stranger")
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(otherDir, "ca.pem")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := coapp.Open(ctx, coapp.Config{Dir: dir, NodeID: "n0", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		Bootstrap: true, Federation: "TLS", TLS: coapp.TLSFiles(nodeCert)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	if !strings.HasPrefix(n.URL(), "https://") {
		t.Fatalf("a TLS node's URL is %s", n.URL())
	}
	plainURL := "http://" + strings.TrimPrefix(n.URL(), "https://")
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	httpsToPlain := "https://" + strings.TrimPrefix(plain.URL, "http://")

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"https, no TLS flags", []string{"--url", n.URL()}, "the node speaks TLS: give --tls-ca, --tls-cert and --tls-key"},
		{"http, no TLS flags", []string{"--url", plainURL}, "the node speaks TLS: use an https:// --url and give --tls-ca, --tls-cert and --tls-key"},
		{"another CA", []string{"--url", n.URL(), "--tls-ca", otherCA}, "the node's certificate is not signed by --tls-ca (" + otherCA + ")"},
		{"no client certificate", []string{"--url", n.URL(), "--tls-ca", nodeCert.CA}, "the node requires a client certificate: give --tls-cert and --tls-key"},
		{"a client certificate of another CA", []string{"--url", n.URL(), "--tls-ca", nodeCert.CA, "--tls-cert", stranger.Cert, "--tls-key", stranger.Key},
			"the node refused the client certificate (--tls-cert)"},
		{"TLS to a plain node", []string{"--url", httpsToPlain, "--tls-ca", nodeCert.CA}, "the node speaks plain HTTP, not TLS: use an http:// --url"},
	} {
		args := append([]string{"ledger", "--token", "x", "--timeout", "10m"}, c.args...)
		_, stderr, err := runSplit(t, args...)
		t.Logf("%s: %v", c.name, err)
		if err == nil || exitCode(err) != exitFailed || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: exit %d: %v\nwant %q", c.name, exitCode(err), err, c.want)
		}
		if strings.Contains(stderr, "retrying") {
			t.Errorf("%s: retried:\n%s", c.name, stderr)
		}
	}
}
