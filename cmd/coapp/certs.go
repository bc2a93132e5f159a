package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

const certsUsage = "certs init --dir D | certs issue --dir D --name NAME [--host H ...] [--client]"

// Validity of what coapp certs makes.
const (
	caYears   = 10
	certYears = 1
)

// runCerts makes a federation's CA and the certificates of its nodes and
// clients for mutual TLS, with the standard library alone: ECDSA P-256
// keys, PEM files, keys written with mode 0600, nothing ever overwritten.
func runCerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{certsUsage}
	}
	switch args[0] {
	case "init":
		return runCertsInit(args[1:], stdout, stderr)
	case "issue":
		return runCertsIssue(args[1:], stdout, stderr)
	}
	return usageError{fmt.Sprintf("unknown certs command %q: %s", args[0], certsUsage)}
}

func runCertsInit(args []string, stdout, stderr io.Writer) error {
	f := newFlags("certs init", stderr)
	dir := f.String("dir", "", "directory to write the CA to: ca.pem, and its key ca-key.pem")
	if err := f.parse(args, 0); err != nil {
		return err
	}
	if *dir == "" {
		return usageError{"certs init --dir D"}
	}
	certFile, keyFile := filepath.Join(*dir, "ca.pem"), filepath.Join(*dir, "ca-key.pem")
	if err := refuseExisting(certFile, keyFile); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "coapp federation CA"},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.AddDate(caYears, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // it signs certificates, not other CAs
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	if err := writeKeyPair(certFile, keyFile, der, key); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "CA written: %s (give it to every node and client as --tls-ca), %s (its key: keep it apart, it signs every certificate)\n", certFile, keyFile)
	return nil
}

// hostList is a repeatable --host: IP addresses and DNS names, also
// comma-separated.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

func (h *hostList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if net.ParseIP(s) == nil && !dnsName.MatchString(s) {
			return fmt.Errorf("%q is neither an IP address nor a DNS name", s)
		}
		*h = append(*h, s)
	}
	return nil
}

var (
	dnsName  = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	certName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

func runCertsIssue(args []string, stdout, stderr io.Writer) error {
	f := newFlags("certs issue", stderr)
	dir := f.String("dir", "", "the CA's directory (from certs init); the certificate is written there as NAME.pem and NAME-key.pem")
	name := f.String("name", "", "the certificate's name: its file names and common name (a node's id, or a client's)")
	var hosts hostList
	f.Var(&hosts, "host", "an IP address or DNS name the node is reached at (repeat, or separate with commas); node certificates only")
	clientOnly := f.Bool("client", false, "a client certificate (client authentication only), for coapp commands and apps")
	if err := f.parse(args, 0); err != nil {
		return err
	}
	switch {
	case *dir == "" || *name == "":
		return usageError{"certs issue --dir D --name NAME [--host H ...] [--client]"}
	case !certName.MatchString(*name) || *name == "ca" || strings.HasSuffix(*name, "-key"):
		return usageError{fmt.Sprintf("--name %q: 1 to 64 letters, digits, '.', '_' or '-', not ca", *name)}
	case *clientOnly && len(hosts) > 0:
		return usageError{"--host is for node certificates, not with --client"}
	case !*clientOnly && len(hosts) == 0:
		return usageError{"a node certificate needs --host: the IP addresses and DNS names other nodes and clients reach it at"}
	}
	caCert, caKey, err := loadCA(*dir)
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(*dir, *name+".pem"), filepath.Join(*dir, *name+"-key.pem")
	if err := refuseExisting(certFile, keyFile); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: *name},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.AddDate(certYears, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if *clientOnly {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, strings.ToLower(h))
		}
	}
	if tmpl.NotAfter.After(caCert.NotAfter) {
		tmpl.NotAfter = caCert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writeKeyPair(certFile, keyFile, der, key); err != nil {
		return err
	}
	kind, use := "node", fmt.Sprintf("coapp node --tls-cert %s --tls-key %s --tls-ca %s", certFile, keyFile, filepath.Join(*dir, "ca.pem"))
	if *clientOnly {
		kind, use = "client", fmt.Sprintf("coapp ... --tls-cert %s --tls-key %s --tls-ca %s", certFile, keyFile, filepath.Join(*dir, "ca.pem"))
	}
	fmt.Fprintf(stdout, "%s certificate %s written, valid until %s: %s\n", kind, *name, tmpl.NotAfter.UTC().Format("2006-01-02"), use)
	return nil
}

// loadCA reads dir/ca.pem and dir/ca-key.pem.
func loadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, nil, fmt.Errorf("the CA: %w (make it with coapp certs init --dir %s)", err, dir)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return nil, nil, fmt.Errorf("the CA's key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s holds no PEM certificate", filepath.Join(dir, "ca.pem"))
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("%s is not a CA certificate", filepath.Join(dir, "ca.pem"))
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, fmt.Errorf("%s holds no PEM key", filepath.Join(dir, "ca-key.pem"))
	}
	var key any
	switch kb.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		err = fmt.Errorf("a %s block", kb.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, "ca-key.pem"), err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s holds no signing key", filepath.Join(dir, "ca-key.pem"))
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("%s is not the key of %s", filepath.Join(dir, "ca-key.pem"), filepath.Join(dir, "ca.pem"))
	}
	return cert, signer, nil
}

// refuseExisting is a usage error when any of the files exists.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return usageError{fmt.Sprintf("%s exists: coapp certs never overwrites a file", p)}
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeKeyPair writes the key (mode 0600) and the certificate, each only
// if it does not exist yet; a failure leaves neither.
func writeKeyPair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeNew(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	if err := writeNew(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		os.Remove(keyFile)
		return err
	}
	return nil
}

// writeNew creates path with data, failing if it exists.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}
