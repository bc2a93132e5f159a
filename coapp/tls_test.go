package coapp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"coapp.coop/coapp/client"
	"coapp.coop/internal/testcerts"
)

func clientTLSConfig(t *testing.T, f testcerts.Files, withCert bool) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	if withCert {
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

// TestMutualTLS runs two nodes with mutual TLS on Raft and HTTP: they
// replicate, a client with a certificate from the CA is served, and one
// without is refused at the handshake.
func TestMutualTLS(t *testing.T) {
	ca, err := testcerts.NewCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	certs := map[string]testcerts.Files{}
	for _, name := range []string{"n0", "n1", "app"} {
		if certs[name], err = ca.Issue(name); err != nil {
			t.Fatal(err)
		}
	}
	cfg := nodeConfig(t.TempDir())
	cfg.Bootstrap, cfg.Federation, cfg.NodeID = true, "TLS Federation", "n0"
	cfg.TLS = TLSFiles(certs["n0"])
	n0 := mustStart(t, cfg)
	if !strings.HasPrefix(n0.URL(), "https://") {
		t.Fatalf("URL %s is not https", n0.URL())
	}
	tokenBytes, _ := os.ReadFile(cfg.Dir + "/" + AdminTokenFile)
	token := strings.TrimSpace(string(tokenBytes))
	if _, err := client.New(n0.URL(), token, client.WithTLS(clientTLSConfig(t, certs["app"], true))).PutSchema(testCtx(t), purchaseSchema()); err != nil {
		t.Fatal(err)
	}

	cfg1 := nodeConfig(t.TempDir())
	cfg1.NodeID, cfg1.Join, cfg1.JoinToken = "n1", n0.URL(), token
	cfg1.KeyFile = n0.KeyFile()
	cfg1.TLS = TLSFiles(certs["n1"])
	copyMemberKeys(t, cfg.Dir, cfg1.Dir)
	n1 := mustStart(t, cfg1)

	ctx := testCtx(t)
	app := client.New(n1.URL(), token, client.WithTLS(clientTLSConfig(t, certs["app"], true)))
	if _, err := app.Publish(ctx, []client.Record{record(1)}); err != nil {
		t.Fatalf("publish over mutual TLS through a follower: %v", err)
	}
	waitUntil(t, "replicated over TLS", 20*time.Second, func() error {
		for _, n := range []*Node{n0, n1} {
			if st, _ := n.Ledger().Status(); st.Size != 7 {
				return context.DeadlineExceeded
			}
		}
		return nil
	})

	anon := client.New(n0.URL(), token, client.WithTLS(clientTLSConfig(t, certs["app"], false)))
	anon.Retries = 1
	if _, err := anon.Ledger(ctx, ""); err == nil {
		t.Error("a client without a certificate was served")
	}
	// Plain HTTP to a TLS node fails too.
	plain := client.New(strings.Replace(n0.URL(), "https://", "http://", 1), token)
	plain.Retries = 1
	if _, err := plain.Ledger(ctx, ""); err == nil {
		t.Error("plain HTTP was served by a TLS node")
	}

	// Bad TLS settings are refused with a typed error.
	bad := nodeConfig(t.TempDir())
	bad.Bootstrap, bad.Federation = true, "x"
	bad.TLS = TLSFiles{Cert: certs["n0"].Cert}
	if _, err := Open(ctx, bad); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("Open with a certificate but no key = %v", err)
	}
}
