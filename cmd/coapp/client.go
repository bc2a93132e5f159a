package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp"
	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
)

// clientFlags are the flags of every command that talks to a node.
type clientFlags struct {
	url, token, tokenFile, cert, key, ca *string
	timeout                              *time.Duration
	// stream is set by a command whose answer is a stream (a backup, an
	// export): --timeout bounds the wait for it to start, then each gap
	// in it.
	stream bool
}

// defaultTimeout bounds a command that talks to a node.
const defaultTimeout = 30 * time.Second

func addClientFlags(f flags) clientFlags {
	cf := clientFlags{
		url: f.string("url", "http://127.0.0.1:7400", "the node's API URL"),
		// The token's environment variable is read when the flag is not
		// given, never shown as a default by -h.
		token:     f.String("token", "", "API token ($COAPP_TOKEN)"),
		tokenFile: f.string("token-file", "", "file holding the API token (such as <dir>/admin.token)"),
		cert:      f.string("tls-cert", "", "client certificate for mutual TLS"),
		key:       f.string("tls-key", "", "key for --tls-cert"),
		ca:        f.string("tls-ca", "", "CA that signs the node's certificate"),
		timeout: f.duration("timeout", defaultTimeout, "give up after this long, retries included (0: no limit; "+
			"backup and export: the wait for the answer to start, then for each part of it); exit code 3"),
	}
	f.check(cf.check)
	return cf
}

// check refuses flag values that cannot work.
func (cf clientFlags) check() error {
	if err := checkURL("url", *cf.url); err != nil {
		return err
	}
	if *cf.timeout < 0 {
		return usageError{"--timeout must not be negative (0: no limit)"}
	}
	if (*cf.cert == "") != (*cf.key == "") {
		return usageError{"--tls-cert and --tls-key go together"}
	}
	return nil
}

// checkURL refuses a flag's value that is not a node's URL.
func checkURL(flag, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Sprintf("--%s %q: want http://HOST:PORT or https://HOST:PORT", flag, v)}
	}
	return nil
}

// client returns a client of the node the flags name, whose calls are
// watched by the command's session (see session).
func (cf clientFlags) client(ctx context.Context) (*client.Client, error) {
	if err := cf.check(); err != nil {
		return nil, err
	}
	token, cfg, err := cf.credentials()
	if err != nil {
		return nil, err
	}
	s := sessionFrom(ctx)
	s.start(*cf.url, *cf.timeout, tlsGiven{cert: *cf.cert, key: *cf.key, ca: *cf.ca}, cf.stream)
	return client.New(*cf.url, token, client.WithHTTPClient(s.httpClient(cfg))), nil
}

// credentials returns the token the flags give (--token, $COAPP_TOKEN or
// --token-file) and their TLS configuration, nil without TLS flags.
func (cf clientFlags) credentials() (string, *tls.Config, error) {
	token := *cf.token
	if token == "" {
		token = os.Getenv(envName("token"))
	}
	if token == "" && *cf.tokenFile != "" {
		b, err := os.ReadFile(*cf.tokenFile)
		if err != nil {
			return "", nil, err
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return "", nil, usageError{"a token is needed: --token, --token-file or $COAPP_TOKEN"}
	}
	if *cf.cert == "" && *cf.ca == "" {
		return token, nil, nil
	}
	cfg, err := clientTLS(*cf.cert, *cf.key, *cf.ca)
	return token, cfg, err
}

func clientTLS(cert, key, ca string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", ca)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"token create --member M [--admin] | token revoke ID"}
	}
	f := newFlags("token "+args[0], stderr)
	cf := addClientFlags(f)
	switch args[0] {
	case "create":
		member := f.String("member", "", "the member the token acts for")
		admin := f.Bool("admin", false, "an admin token (manages tokens and the cluster)")
		if err := f.parse(args[1:], 0); err != nil {
			return err
		}
		if *member == "" {
			return usageError{"--member is required"}
		}
		if !api.ValidMember(*member) {
			return usageError{fmt.Sprintf("--member %q: a member id is 1 to 64 characters of [a-z0-9._-]", *member)}
		}
		c, err := cf.client(ctx)
		if err != nil {
			return err
		}
		tok, err := c.CreateToken(ctx, *member, *admin)
		if err != nil {
			return err
		}
		return printJSON(stdout, tok)
	case "revoke":
		if err := f.parse(args[1:], 1); err != nil {
			return err
		}
		if f.NArg() != 1 {
			return usageError{"token revoke ID"}
		}
		c, err := cf.client(ctx)
		if err != nil {
			return err
		}
		if err := c.RevokeToken(ctx, f.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "revoked", f.Arg(0))
		return nil
	}
	return usageError{fmt.Sprintf("unknown token command %q", args[0])}
}

func runRecords(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{`records publish FILE|- | records get ID`}
	}
	if args[0] != "publish" && args[0] != "get" {
		return usageError{fmt.Sprintf("unknown records command %q: records publish FILE|- | records get ID", args[0])}
	}
	f := newFlags("records "+args[0], stderr)
	cf := addClientFlags(f)
	consistency := f.string("consistency", "", "stale, leader (default) or linearizable")
	f.check(func() error { return checkConsistency(*consistency) })
	if err := f.parse(args[1:], 1); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return usageError{fmt.Sprintf("records %s needs one argument", args[0])}
	}
	c, err := cf.client(ctx)
	if err != nil {
		return err
	}
	switch args[0] {
	case "publish":
		in := io.Reader(os.Stdin)
		if f.Arg(0) != "-" {
			file, err := os.Open(f.Arg(0))
			if err != nil {
				return err
			}
			defer file.Close()
			in = file
		}
		var body struct {
			Records []client.Record `json:"records"`
		}
		dec := json.NewDecoder(in)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return fmt.Errorf(`reading {"records":[...]}: %w`, err)
		}
		rs, err := c.Publish(ctx, body.Records)
		if err != nil {
			return err
		}
		return printJSON(stdout, map[string]any{"receipts": rs})
	case "get":
		id, err := uuid.Parse(f.Arg(0))
		if err != nil {
			return usageError{"the record id must be a UUID"}
		}
		info, err := c.Record(ctx, id, *consistency)
		if err != nil {
			return err
		}
		return printJSON(stdout, info)
	}
	return usageError{fmt.Sprintf("unknown records command %q", args[0])}
}

func runLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if sub == "verify" {
		return runLedgerVerify(ctx, args, stdout, stderr)
	}
	const usage = "ledger | ledger prove INDEX | ledger consistency FROM TO | " + verifyUsage
	f := newFlags("ledger", stderr)
	cf := addClientFlags(f)
	consistency := f.string("consistency", "", "stale, leader (default) or linearizable")
	f.check(func() error { return checkConsistency(*consistency) })
	if err := f.parse(args, 2); err != nil {
		return err
	}
	nums := make([]uint64, f.NArg())
	for i, a := range f.Args() {
		var err error
		if nums[i], err = strconv.ParseUint(a, 10, 64); err != nil {
			return usageError{fmt.Sprintf("%q is not an index", a)}
		}
	}
	if !(sub == "" && len(nums) == 0 || sub == "prove" && len(nums) == 1 || sub == "consistency" && len(nums) == 2) {
		return usageError{usage}
	}
	c, err := cf.client(ctx)
	if err != nil {
		return err
	}
	info, err := c.Ledger(ctx, *consistency)
	if err != nil {
		return err
	}
	switch {
	case sub == "":
		return printJSON(stdout, info)
	case sub == "prove" && len(nums) == 1:
		p, err := c.InclusionProof(ctx, nums[0], info.Size, *consistency)
		if err != nil {
			return err
		}
		return printProof(stdout, p, p.Verify())
	case sub == "consistency" && len(nums) == 2:
		p, err := c.ConsistencyProof(ctx, nums[0], nums[1], *consistency)
		if err != nil {
			return err
		}
		return printProof(stdout, p, p.Verify())
	}
	return usageError{usage}
}

// printProof prints a proof and whether it verified here, with hashes alone.
func printProof(w io.Writer, p any, verr error) error {
	if err := printJSON(w, p); err != nil {
		return err
	}
	if verr != nil {
		return fmt.Errorf("the proof does not verify: %w", verr)
	}
	fmt.Fprintln(w, "verified")
	return nil
}

func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	f := newFlags("cluster", stderr)
	cf := addClientFlags(f)
	if err := f.parse(args, 1); err != nil {
		return err
	}
	c, err := cf.client(ctx)
	if err != nil {
		return err
	}
	switch {
	case sub == "" && f.NArg() == 0:
		cl, err := c.Cluster(ctx)
		if err != nil {
			return err
		}
		return printJSON(stdout, cl)
	case sub == "remove" && f.NArg() == 1:
		if err := c.RemoveNode(ctx, f.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "removed", f.Arg(0))
		return nil
	case sub == "promote" && f.NArg() == 1:
		if _, err := c.PromoteNode(ctx, f.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "promoted", f.Arg(0))
		return nil
	}
	return usageError{"cluster | cluster remove ID | cluster promote ID"}
}

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("backup", stderr)
	cf := addClientFlags(f)
	out := f.String("out", "", "file to write the backup to")
	if err := f.parse(args, 0); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"--out is required"}
	}
	cf.stream = true
	c, err := cf.client(ctx)
	if err != nil {
		return err
	}
	tmp := *out + ".partial"
	file, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = c.Backup(ctx, file)
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fi, _ := os.Stat(*out)
	fmt.Fprintf(stdout, "backup written to %s (%d bytes)\n", *out, fi.Size())
	return nil
}

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("restore", stderr)
	dir := f.string("dir", "", "new node's data directory (must not hold a ledger)")
	keys := f.string("keys", "", "the federation's key file, checked against the fingerprint the backup records and copied to <dir>/keys.json (required)")
	keysPass := f.string("keys-passphrase-file", "", "file holding the passphrase that seals the key file")
	members := f.string("members", "", "a copy of a node's members/ directory: member signing keys, checked against the keys the backup's ledger registers and copied to <dir>/members/")
	memberPass := f.string("member-keys-passphrase-file", "", "file holding the passphrase that seals the member signing keys")
	if err := f.parse(args, 1); err != nil {
		return err
	}
	if *dir == "" || f.NArg() != 1 {
		return usageError{"restore --dir DIR --keys KEYFILE [--members DIR] BACKUP"}
	}
	if *keys == "" {
		return usageError{"--keys is required: the federation's key file, which the restored ledger needs (restore checks it against the fingerprint the backup records; a new key would give every person other pseudonyms)"}
	}
	passphrase, err := readPassphrase(*keysPass)
	if err != nil {
		return err
	}
	memberPassphrase, err := readPassphrase(*memberPass)
	if err != nil {
		return err
	}
	file, err := os.Open(f.Arg(0))
	if err != nil {
		return err
	}
	defer file.Close()
	r, err := coapp.Restore(ctx, coapp.RestoreConfig{
		Dir: *dir, KeyFile: *keys, KeyPassphrase: passphrase,
		MembersDir: *members, MemberKeyPassphrase: memberPassphrase,
	}, file)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %d entries, root %s, of federation %q into %s\n", r.Size, r.Root, r.Federation, *dir)
	if r.KeyFingerprint != "" {
		fmt.Fprintf(stdout, "key file: %s matches the fingerprint the backup records (%s); copied to %s\n", *keys, r.KeyFingerprint, filepath.Join(*dir, coapp.DefaultKeyFile))
	} else {
		fmt.Fprintf(stdout, "key file: NOT CHECKED: the backup's federation was founded before coapp recorded its key's fingerprint; make sure %s is the federation's key file (copied to %s)\n", *keys, filepath.Join(*dir, coapp.DefaultKeyFile))
	}
	if len(r.Members) > 0 {
		fmt.Fprintf(stdout, "member signing keys: %s (each the key the ledger registers; copied to %s)\n", strings.Join(r.Members, ", "), filepath.Join(*dir, "members"))
	}
	if len(r.WithoutKey) > 0 {
		fmt.Fprintf(stdout, "members without a signing key restored here: %s (they sign on no node until one holds their key file: restore --members, or copy it into a node's members/ directory)\n", strings.Join(r.WithoutKey, ", "))
	}
	start := "coapp node --bootstrap --dir " + *dir
	if *keysPass != "" {
		start += " --keys-passphrase-file " + *keysPass
	}
	if *memberPass != "" {
		start += " --member-keys-passphrase-file " + *memberPass
	}
	fmt.Fprintf(stdout, "admin tokens: the federation's, as of the backup (such as the founder's admin.token); the restored node writes none\nstart it with: %s\n", start)
	return nil
}
