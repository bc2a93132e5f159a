package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"coapp.coop/coapp"
)

// TestCerts: coapp certs init makes a CA, certs issue a node's and a
// client's certificate with the key usages and names they need; nothing
// is overwritten; and two nodes started with node certificates (one
// joining the other over mutual TLS, Raft included) answer the CLI that
// presents the client certificate.
func TestCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if out, _, err := runSplit(t, "certs", "init", "--dir", dir); err != nil || !strings.HasPrefix(out, "CA written: ") {
		t.Fatalf("certs init: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"--name", "n0", "--host", "127.0.0.1", "--host", "localhost"},
		{"--name", "n1", "--host", "127.0.0.1,::1"},
		{"--name", "app", "--client"},
	} {
		if out, _, err := runSplit(t, append([]string{"certs", "issue", "--dir", dir}, args...)...); err != nil || !strings.Contains(out, "certificate") {
			t.Fatalf("certs issue %v: %v\n%s", args, err, out)
		}
	}

	ca := readCert(t, filepath.Join(dir, "ca.pem"))
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.CheckSignatureFrom(ca) != nil {
		t.Errorf("the CA: IsCA %v, key usage %b", ca.IsCA, ca.KeyUsage)
	}
	if years := ca.NotAfter.Sub(ca.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("the CA is valid for %.1f years, want 10", years)
	}
	if pub, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("the CA's key is %T, want ECDSA P-256", ca.PublicKey)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	node := readCert(t, filepath.Join(dir, "n0.pem"))
	if _, err := node.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the node certificate as a server's: %v", err)
	}
	if _, err := node.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the node certificate as a client's: %v", err)
	}
	if node.Subject.CommonName != "n0" || !slices.Equal(node.DNSNames, []string{"localhost"}) || len(node.IPAddresses) != 1 || !node.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("the node certificate names %s, %v, %v", node.Subject.CommonName, node.DNSNames, node.IPAddresses)
	}
	if days := node.NotAfter.Sub(node.NotBefore).Hours() / 24; days < 364 || days > 367 {
		t.Errorf("the node certificate is valid for %.0f days, want a year", days)
	}
	app := readCert(t, filepath.Join(dir, "app.pem"))
	if app.Subject.CommonName != "app" || !slices.Equal(app.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(app.DNSNames)+len(app.IPAddresses) != 0 {
		t.Errorf("the client certificate: CN %s, usages %v, names %v %v", app.Subject.CommonName, app.ExtKeyUsage, app.DNSNames, app.IPAddresses)
	}
	if _, err := app.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("the client certificate verifies as a server's")
	}
	for _, name := range []string{"ca-key.pem", "n0-key.pem", "app-key.pem"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", name, fi.Mode(), err)
		}
	}

	// Nothing is overwritten, and mistakes are usage errors.
	before, _ := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	for _, args := range [][]string{
		{"certs", "init", "--dir", dir},
		{"certs", "issue", "--dir", dir, "--name", "app", "--client"},
		{"certs", "issue", "--dir", dir, "--name", "n2"},
		{"certs", "issue", "--dir", dir, "--name", "n2", "--client", "--host", "127.0.0.1"},
		{"certs", "issue", "--dir", dir, "--name", "../n2", "--host", "127.0.0.1"},
		{"certs", "issue", "--dir", dir, "--name", "ca", "--host", "127.0.0.1"},
		{"certs", "issue", "--dir", dir, "--name", "n2", "--host", "not a host!"},
		{"certs", "issue", "--name", "n2", "--host", "127.0.0.1"},
		{"certs", "init"},
		{"certs"},
		{"certs", "renew"},
	} {
		if _, _, err := runSplit(t, args...); exitCode(err) != exitUsage {
			t.Errorf("coapp %v: %v (exit %d), want a usage error", args, err, exitCode(err))
		}
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca-key.pem")); string(after) != string(before) {
		t.Error("certs init replaced the CA's key")
	}
	if _, err := os.Stat(filepath.Join(dir, "n2-key.pem")); err == nil {
		t.Error("a refused certs issue left a key behind")
	}

	if testing.Short() {
		return
	}
	files := func(name string) coapp.TLSFiles {
		return coapp.TLSFiles{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem"), CA: filepath.Join(dir, "ca.pem")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d0 := t.TempDir()
	n0, err := coapp.Open(ctx, coapp.Config{Dir: d0, NodeID: "n0", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		Bootstrap: true, Federation: "Certs", TLS: files("n0")})
	if err != nil {
		t.Fatal(err)
	}
	defer n0.Close(context.Background())
	token, err := os.ReadFile(filepath.Join(d0, coapp.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	n1, err := coapp.Open(ctx, coapp.Config{Dir: t.TempDir(), NodeID: "n1", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		Join: n0.URL(), JoinToken: strings.TrimSpace(string(token)), KeyFile: n0.KeyFile(), TLS: files("n1")})
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close(context.Background())
	app2 := files("app")
	out, _, err := runSplit(t, "cluster", "--url", n1.URL(), "--token-file", filepath.Join(d0, coapp.AdminTokenFile),
		"--tls-ca", app2.CA, "--tls-cert", app2.Cert, "--tls-key", app2.Key)
	if err != nil {
		t.Fatalf("coapp cluster over mutual TLS with the client certificate: %v\n%s", err, out)
	}
	var cl struct {
		Leader string
		Nodes  []struct{ ID string }
	}
	if err := json.Unmarshal([]byte(out), &cl); err != nil || cl.Leader != "n0" || len(cl.Nodes) != 2 {
		t.Errorf("coapp cluster printed %v:\n%s", err, out)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
