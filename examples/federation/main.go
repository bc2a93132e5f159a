// Command federation starts three `coapp node` processes on this machine,
// one per cooperative, joined into one federation with mutual TLS, and
// shows it at work:
//
//  1. it makes a throwaway CA and a certificate per node and for the app;
//
//  2. it starts the first node with --bootstrap and two more with --join;
//
//  3. it publishes records with the Go client and with curl;
//
//  4. it kills one node with SIGKILL and shows the federation carrying on;
//
//  5. it restarts the node, which catches up.
//
//     go run ./examples/federation
//
// Everything lives in a temporary directory, removed at the end (keep it
// with -keep). The nodes listen on loopback ports 7500 to 7505 by default
// (-port to change).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
)

func main() {
	keep := flag.Bool("keep", false, "keep the working directory")
	port := flag.Int("port", 7500, "first of six loopback ports to use")
	flag.Parse()
	dir, err := os.MkdirTemp("", "coapp-federation-")
	if err != nil {
		log.Fatal(err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, dir, *port); err != nil {
		log.Fatal(err)
	}
}

// node is one `coapp node` process.
type node struct {
	id, dir, http, raft string
	certs               certFiles
	args                []string
	cmd                 *exec.Cmd
	exited              chan struct{}
}

func (n *node) url() string { return "https://" + n.http }

func (n *node) start(bin string, logw io.Writer) error {
	n.cmd = exec.Command(bin, n.args...)
	n.cmd.Stdout, n.cmd.Stderr = logw, logw
	if err := n.cmd.Start(); err != nil {
		return err
	}
	n.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(n.cmd, n.exited)
	return nil
}

func (n *node) stop(sig syscall.Signal) {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(sig)
		select {
		case <-n.exited:
		case <-time.After(30 * time.Second):
			_ = n.cmd.Process.Kill()
		}
	}
}

func run(ctx context.Context, w io.Writer, dir string, port int) error {
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

	say("Building the coapp command...")
	bin := filepath.Join(dir, "coapp")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "coapp.coop/cmd/coapp").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	say("Making a CA and certificates for three nodes and the app (mutual TLS)...")
	ca, err := newCA(dir)
	if err != nil {
		return err
	}
	names := []string{"olive-growers", "consumer-coop", "energy-coop"}
	var nodes []*node
	for i, name := range names {
		certs, err := ca.issue(name)
		if err != nil {
			return err
		}
		n := &node{
			id:    name,
			dir:   filepath.Join(dir, name),
			http:  fmt.Sprintf("127.0.0.1:%d", port+2*i),
			raft:  fmt.Sprintf("127.0.0.1:%d", port+2*i+1),
			certs: certs,
		}
		n.args = []string{"node", "--id", n.id, "--dir", n.dir, "--http", n.http, "--raft", n.raft,
			"--tls-cert", certs.cert, "--tls-key", certs.key, "--tls-ca", certs.ca, "--election-timeout", "500ms"}
		nodes = append(nodes, n)
	}
	appCerts, err := ca.issue("app")
	if err != nil {
		return err
	}
	tlsCfg, err := appCerts.clientConfig()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "nodes.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	defer func() {
		for _, n := range nodes {
			n.stop(syscall.SIGTERM)
		}
	}()

	first := nodes[0]
	first.args = append(first.args, "--bootstrap", "--federation", "Emilia-Romagna Coops", "--member", first.id)
	if err := first.start(bin, logf); err != nil {
		return err
	}
	tokenPath := filepath.Join(first.dir, "admin.token")
	token, err := waitFile(ctx, tokenPath)
	if err != nil {
		return err
	}
	say("Started %s with --bootstrap; its admin token is in %s", first.id, tokenPath)
	admin := client.New(first.url(), token, client.WithTLS(tlsCfg))
	if err := waitReady(ctx, admin); err != nil {
		return err
	}
	// Register the exchange types the cooperatives publish. The subject
	// is pseudonymised in each cooperative's own domain.
	zero := 0.0
	for _, s := range []struct{ typ, field string }{{"purchase", "amount_eur"}, {"harvest", "kg"}, {"meter-reading", "kwh"}} {
		schema := api.Schema{Type: s.typ, Version: 1, Fields: []api.Field{
			{Name: s.field, Kind: "decimal", Class: "attribute", Min: &zero, Policy: api.Policy{Action: "keep"}},
		}}
		if _, err := admin.PutSchema(ctx, schema); err != nil {
			return err
		}
	}
	say("Registered the purchase, harvest and meter-reading schemas")
	keyFile := filepath.Join(first.dir, "keys.json")
	for _, n := range nodes[1:] {
		// The federation's key file reaches each node out of band.
		n.args = append(n.args, "--join", first.url(), "--token", token, "--keys", keyFile)
		if err := n.start(bin, logf); err != nil {
			return err
		}
		if err := waitReady(ctx, client.New(n.url(), token, client.WithTLS(tlsCfg))); err != nil {
			return err
		}
		say("Started %s with --join %s", n.id, first.url())
	}
	if err := printCluster(ctx, w, admin); err != nil {
		return err
	}

	// Each cooperative gets its own member token.
	tokens := map[string]string{}
	for _, n := range nodes {
		t, err := admin.CreateToken(ctx, n.id, false)
		if err != nil {
			return err
		}
		tokens[n.id] = t.Token
	}

	say("\nPublishing with the Go client, through %s (a follower forwards to the leader):", nodes[1].id)
	consumer := client.New(nodes[1].url(), tokens["consumer-coop"], client.WithTLS(tlsCfg))
	rs, err := consumer.Publish(ctx, []client.Record{{
		ID: uuid.Must(uuid.NewV7()), Type: "purchase", Subject: "member-4711",
		Time: time.Now().UTC(), Fields: map[string]json.RawMessage{"amount_eur": json.RawMessage("12.50")},
	}})
	if err != nil {
		return err
	}
	say("  purchase -> entry %d, leaf %s…", rs[0].Index, rs[0].Leaf.String()[:16])

	curlCmd := []string{"curl", "-s", "--cacert", appCerts.ca, "--cert", appCerts.cert, "--key", appCerts.key,
		"-H", "Authorization: Bearer " + tokens["olive-growers"],
		"-d", fmt.Sprintf(`{"records":[{"id":"%s","type":"harvest","subject":"grower-17","time":"%s","fields":{"kg":120}}]}`,
			uuid.Must(uuid.NewV7()), time.Now().UTC().Format(time.RFC3339)),
		nodes[2].url() + "/v1/records"}
	say("\nPublishing with curl, through %s:", nodes[2].id)
	say("  $ curl --cacert ca.pem --cert app.pem --key app-key.pem -H 'Authorization: Bearer …' -d '{\"records\":[…]}' %s/v1/records", nodes[2].url())
	if _, err := exec.LookPath("curl"); err != nil {
		say("  (curl is not installed here; skipped)")
	} else {
		out, err := exec.CommandContext(ctx, curlCmd[0], curlCmd[1:]...).Output()
		if err != nil {
			return fmt.Errorf("curl: %w", err)
		}
		say("  %s", strings.TrimSpace(string(out)))
	}

	leader, err := leaderOf(ctx, admin, nodes)
	if err != nil {
		return err
	}
	say("\nKilling the leader, %s, with SIGKILL...", leader.id)
	leader.stop(syscall.SIGKILL)
	var survivor *node
	for _, n := range nodes {
		if n != leader {
			survivor = n
			break
		}
	}
	c := client.New(survivor.url(), tokens[survivor.id], client.WithTLS(tlsCfg))
	start := time.Now()
	rs, err = c.Publish(ctx, []client.Record{{
		ID: uuid.Must(uuid.NewV7()), Type: "meter-reading", Subject: "meter-88",
		Time: time.Now().UTC(), Fields: map[string]json.RawMessage{"kwh": json.RawMessage("4.2")},
	}})
	if err != nil {
		return err
	}
	say("  the two others elected a new leader and took a record %v later: entry %d", time.Since(start).Round(10*time.Millisecond), rs[0].Index)

	say("\nRestarting %s; it catches up from the others...", leader.id)
	if err := leader.start(bin, logf); err != nil {
		return err
	}
	back := client.New(leader.url(), token, client.WithTLS(tlsCfg))
	if err := waitReady(ctx, back); err != nil {
		return err
	}
	for {
		a, err1 := back.Ledger(ctx, "stale")
		b, err2 := c.Ledger(ctx, "stale")
		if err1 == nil && err2 == nil && a == b {
			say("  %s is back at size %d, root %s…: the same as the others", leader.id, a.Size, a.Root.String()[:16])
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	proof, err := c.InclusionProof(ctx, rs[0].Index, rs[0].Index+1, "linearizable")
	if err != nil {
		return err
	}
	say("  inclusion proof of the meter reading verifies: %v", proof.Verify() == nil)
	return printCluster(ctx, w, back)
}

func printCluster(ctx context.Context, w io.Writer, c *client.Client) error {
	cl, err := c.Cluster(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nFederation %q, leader %s:\n", cl.Federation, cl.Leader)
	for _, n := range cl.Nodes {
		fmt.Fprintf(w, "  %-14s %-9s %-9s applied %d, %d entries\n", n.ID, n.Suffrage, n.State, n.AppliedIndex, n.Size)
	}
	return nil
}

func leaderOf(ctx context.Context, c *client.Client, nodes []*node) (*node, error) {
	cl, err := c.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n.id == cl.Leader {
			return n, nil
		}
	}
	return nil, errors.New("no leader")
}

func waitFile(ctx context.Context, path string) (string, error) {
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func waitReady(ctx context.Context, c *client.Client) error {
	for !c.Ready(ctx) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for a node to be ready: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// certFiles are one certificate's PEM files and its CA's.
type certFiles struct{ cert, key, ca string }

func (f certFiles) clientConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, err
	}
	pemBytes, err := os.ReadFile(f.ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}, nil
}

// ca is a throwaway certificate authority for this demo only.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newCA(dir string) (*ca, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "federation demo CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &ca{cert: cert, key: key, dir: dir}, writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", der)
}

// issue makes a certificate for name, for server and client use on
// 127.0.0.1.
func (c *ca) issue(name string) (certFiles, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certFiles{}, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return certFiles{}, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return certFiles{}, err
	}
	f := certFiles{cert: filepath.Join(c.dir, name+".pem"), key: filepath.Join(c.dir, name+"-key.pem"), ca: filepath.Join(c.dir, "ca.pem")}
	if err := writePEM(f.cert, "CERTIFICATE", der); err != nil {
		return f, err
	}
	return f, writePEM(f.key, "EC PRIVATE KEY", kder)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
