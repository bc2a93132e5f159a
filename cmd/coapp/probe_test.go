package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestProbeAddrBad: a malformed --probe-addr is a usage error, and the
// node's directory is not made.
func TestProbeAddrBad(t *testing.T) {
	for _, addr := range []string{"nonsense", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:http"} {
		dir := filepath.Join(t.TempDir(), "node")
		_, stderr, err := runSplit(t, "node", "--dir", dir, "--bootstrap", "--federation", "F",
			"--http", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--probe-addr", addr)
		if exitCode(err) != exitUsage || !strings.Contains(err.Error()+stderr, "--probe-addr") {
			t.Errorf("--probe-addr %q: exit %d (%v), want a usage error naming the flag\n%s", addr, exitCode(err), err, stderr)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("--probe-addr %q: refused, but %s was made (%v)", addr, dir, err)
		}
	}
}

// TestProbeListenerProcess runs `coapp node` with mutual TLS (certificates
// from coapp certs) and --probe-addr, three times on fresh directories.
// Its probe listener is polled from the moment the process starts: on the
// first 200 from /readyz, in plain HTTP without a certificate, the admin
// token file already holds the token, which the node accepts for an admin
// call. The probe listener serves Prometheus metrics and nothing of the
// API, and the API still refuses a client without a certificate.
func TestProbeListenerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	pki := filepath.Join(t.TempDir(), "pki")
	for _, args := range [][]string{
		{"certs", "init", "--dir", pki},
		{"certs", "issue", "--dir", pki, "--name", "n0", "--host", "127.0.0.1"},
		{"certs", "issue", "--dir", pki, "--name", "ops", "--client"},
	} {
		if out, stderr, err := runSplit(t, args...); err != nil {
			t.Fatalf("coapp %v: %v\n%s%s", args, err, out, stderr)
		}
	}
	pem := func(name string) string { return filepath.Join(pki, name) }
	tlsFlags := []string{"--tls-ca", pem("ca.pem"), "--tls-cert", pem("n0.pem"), "--tls-key", pem("n0-key.pem")}
	opsFlags := []string{"--tls-ca", pem("ca.pem"), "--tls-cert", pem("ops.pem"), "--tls-key", pem("ops-key.pem")}
	plain := &http.Client{Timeout: 2 * time.Second}

	for i := range 3 {
		probe := freePort(t)
		p := newProc(t, "n0", append([]string{"--bootstrap", "--federation", "Probe Federation", "--probe-addr", probe}, tlsFlags...)...)
		tokenPath := filepath.Join(p.dir, "admin.token")

		// Poll from before the process starts; read the token file at
		// the first 200.
		type first struct {
			token string
			err   error
		}
		got := make(chan first, 1)
		stop := make(chan struct{})
		t.Cleanup(func() { close(stop) })
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := plain.Get("http://" + probe + "/readyz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						b, err := os.ReadFile(tokenPath)
						got <- first{strings.TrimSpace(string(b)), err}
						return
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
		p.start()
		var f first
		select {
		case f = <-got:
		case <-time.After(60 * time.Second):
			t.Fatalf("start %d: the probe listener's /readyz not 200 after 60s; log:\n%s", i, p.log())
		}
		if f.err != nil || f.token == "" {
			t.Fatalf("start %d: /readyz answered 200, but the token file: %q, %v", i, f.token, f.err)
		}
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(f.token), 0o600); err != nil {
			t.Fatal(err)
		}
		apiURL := "https://" + p.httpAddr
		if out, stderr, err := runSplit(t, append([]string{"token", "create", "--member", "founder", "--url", apiURL, "--token-file", tokenFile, "--timeout", "10s"}, opsFlags...)...); err != nil {
			t.Fatalf("start %d: the token read at the first 200 fails an admin call: %v\n%s%s", i, err, out, stderr)
		}
		if i > 0 {
			p.kill()
			continue
		}

		// Metrics in the Prometheus text format, without a certificate.
		resp, err := plain.Get("http://" + probe + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("the probe listener's /metrics: %v", err)
		}
		for _, name := range []string{"coapp_build_info", "coapp_raft_state", "coapp_raft_last_log_index", "coapp_badger_lsm_size_bytes", "go_goroutines"} {
			if fams[name] == nil {
				t.Errorf("the probe listener's /metrics lacks %s", name)
			}
		}
		// Nothing of the API on the probe listener.
		for _, path := range []string{"/v1/ledger", "/v1/cluster", "/v1/backup"} {
			req, _ := http.NewRequest("GET", "http://"+probe+path, nil)
			req.Header.Set("Authorization", "Bearer "+f.token)
			resp, err := plain.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("the probe listener: GET %s = %d, want 404", path, resp.StatusCode)
			}
		}
		// The API still wants a certificate: the CLI without one fails.
		if _, _, err := runSplit(t, "ledger", "--url", apiURL, "--token-file", tokenFile, "--timeout", "5s", "--tls-ca", pem("ca.pem")); err == nil {
			t.Error("the API served a client without a certificate")
		}
		if !strings.Contains(p.log(), "probes and metrics: http://"+probe) {
			t.Errorf("the node does not print its probe listener's URL; log:\n%s", p.log())
		}
		p.kill()
	}
}
