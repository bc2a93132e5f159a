package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"coapp.coop/coapp"
	"coapp.coop/coapp/api"
	"coapp.coop/ledger"
)

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("node", stderr)
	dir := f.string("dir", "coapp-data", "data directory")
	id := f.string("id", "", "node id (default: kept in <dir>/node-id, or chosen on first start)")
	httpAddr := f.string("http", "127.0.0.1:7400", "client API listen address")
	httpAdv := f.string("http-advertise", "", "client API address other nodes use (default: --http)")
	raftAddr := f.string("raft", "127.0.0.1:7401", "Raft listen address")
	raftAdv := f.string("raft-advertise", "", "Raft address other nodes dial (default: --raft)")
	bootstrap := f.bool("bootstrap", false, "start a new federation (with --federation)")
	federation := f.string("federation", "", "the new federation's name, with --bootstrap")
	member := f.string("member", "founder", "the founding member's id, with --bootstrap")
	founding := f.string("founding-members", "", "comma-separated members besides the founder, each optionally with its public key as M=KEY (from coapp keys member), with --bootstrap")
	majority := f.string("majority", "0.5", "a proposal passes with yes votes from more than this fraction of all members, with --bootstrap")
	quorum := f.string("quorum", "0.5", "the fraction of all members who must vote, with --bootstrap")
	lifetime := f.string("proposal-lifetime", "P14D", "how long a proposal is open (ISO 8601 duration), with --bootstrap")
	committees := f.string("committees", "", `committees with delegated powers, with --bootstrap: "NAME=MEMBER,MEMBER:POWER,POWER;…" (powers: dataset, grant)`)
	join := f.string("join", "", "URL of any node's HTTP API, to join its federation")
	token := f.string("token", "", "admin token used to join")
	voter := f.bool("voter", true, "join as a voter; --voter=false joins as a non-voting read replica")
	keys := f.string("keys", "", "the federation's key file (default: <dir>/keys.json, created by --bootstrap)")
	keysPass := f.string("keys-passphrase-file", "", "file holding the passphrase that seals the key file")
	memberPass := f.string("member-keys-passphrase-file", "", "file holding the passphrase that seals the members' signing keys in <dir>/members/")
	cert := f.string("tls-cert", "", "PEM certificate for mutual TLS (Raft and HTTP)")
	key := f.string("tls-key", "", "PEM key for --tls-cert")
	ca := f.string("tls-ca", "", "PEM CA that signs every node's and client's certificate")
	logFormat := f.string("log-format", "text", "log format: text or json")
	logLevel := f.string("log-level", "info", "the least severe level logged: debug, info, warn or error")
	maxBody := f.int("max-body", 4<<20, "largest request body in bytes")
	probeAddr := f.string("probe-addr", "", "HOST:PORT of a plain-HTTP listener serving only /healthz, /readyz and /metrics, without client certificates (default: none)")
	snapThreshold := f.int("snapshot-threshold", 8192, "Raft log entries between snapshots")
	trailing := f.int("trailing-logs", 0, "Raft log entries kept behind a snapshot (default 1.25 x --snapshot-threshold)")
	election := f.string("election-timeout", "1s", "Raft heartbeat and election timeout")
	snapInterval := f.string("snapshot-interval", "2m", "how often Raft checks whether to snapshot")
	purgeDelay := f.string("purge-delay", "10s", "how long a node gathers erasures before it purges their keys from its files (0: at once)")
	if err := f.parse(args, 0); err != nil {
		return err
	}
	logger, err := nodeLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	electionTimeout, err := time.ParseDuration(*election)
	if err != nil || electionTimeout < 10*time.Millisecond {
		return usageError{"--election-timeout must be a duration of at least 10ms"}
	}
	snapEvery, err := time.ParseDuration(*snapInterval)
	if err != nil || snapEvery < 100*time.Millisecond {
		return usageError{"--snapshot-interval must be a duration of at least 100ms"}
	}
	purgeWait, err := time.ParseDuration(*purgeDelay)
	if err != nil || purgeWait < 0 || purgeWait > 30*time.Second {
		return usageError{"--purge-delay must be a duration from 0 to 30s (erasures are verified within 60s)"}
	}
	if purgeWait == 0 {
		purgeWait = -1 // ledger: no delay
	}
	if *snapThreshold < 1 || *trailing < 0 {
		return usageError{"--snapshot-threshold must be positive and --trailing-logs not negative"}
	}
	if *maxBody < 0 {
		return usageError{"--max-body must not be negative (0: the default, 4 MiB)"}
	}
	for _, a := range []struct{ flag, addr string }{{"http", *httpAddr}, {"raft", *raftAddr}, {"http-advertise", *httpAdv}, {"raft-advertise", *raftAdv}, {"probe-addr", *probeAddr}} {
		if a.addr == "" && (strings.HasSuffix(a.flag, "-advertise") || a.flag == "probe-addr") {
			continue
		}
		if err := checkHostPort(a.addr); err != nil {
			return usageError{fmt.Sprintf("--%s %q: want HOST:PORT (%v)", a.flag, a.addr, err)}
		}
	}
	if *join != "" {
		if *bootstrap {
			return usageError{"--bootstrap starts a new federation, --join joins one: not both"}
		}
		if err := checkURL("join", *join); err != nil {
			return err
		}
	}
	if *bootstrap && !api.ValidMember(*member) {
		return usageError{fmt.Sprintf("--member %q: a member id is 1 to 64 characters of [a-z0-9._-]", *member)}
	}
	tune := func(c *ledger.Config) {
		c.HeartbeatTimeout, c.ElectionTimeout = electionTimeout, electionTimeout
		c.LeaderLeaseTimeout = electionTimeout / 2
		c.SnapshotThreshold = uint64(*snapThreshold)
		c.SnapshotInterval = snapEvery
		c.TrailingLogs = uint64(*trailing)
		c.PurgeDelay = purgeWait
	}

	var rules coapp.Rules
	if _, err := fmt.Sscan(*majority, &rules.Majority); err != nil {
		return usageError{"--majority must be a number, such as 0.5"}
	}
	if _, err := fmt.Sscan(*quorum, &rules.Quorum); err != nil {
		return usageError{"--quorum must be a number, such as 0.5"}
	}
	rules.Lifetime = *lifetime
	if *lifetime == "" {
		return usageError{"--proposal-lifetime must be an ISO 8601 duration, such as P14D"}
	}
	for _, spec := range strings.Split(*committees, ";") {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		name, rest, ok1 := strings.Cut(spec, "=")
		members, powers, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return usageError{`--committees: each committee is NAME=MEMBER,MEMBER:POWER,POWER`}
		}
		rules.Committees = append(rules.Committees, coapp.Committee{Name: name, Members: strings.Split(members, ","), Powers: strings.Split(powers, ",")})
	}
	if rules.Majority == 0 || rules.Quorum == 0 { // not the API's "default"
		return usageError{"--majority must be from 0.5 to below 1, --quorum above 0 and at most 1"}
	}
	if err := rules.WithDefaults().Validate(); err != nil {
		var ve *api.ValidationError
		if errors.As(err, &ve) {
			flag := "--committees"
			switch ve.Field {
			case "rules.majority":
				flag = "--majority"
			case "rules.quorum":
				flag = "--quorum"
			case "rules.lifetime":
				flag = "--proposal-lifetime"
			}
			return usageError{fmt.Sprintf("%s: %s (%s)", flag, ve.Reason, ve.Field)}
		}
		return usageError{err.Error()}
	}
	var foundingMembers []string
	foundingKeys := map[string]ed25519.PublicKey{}
	for _, m := range strings.Split(*founding, ",") {
		m, key, hasKey := strings.Cut(strings.TrimSpace(m), "=")
		if m == "" {
			continue
		}
		foundingMembers = append(foundingMembers, m)
		if hasKey {
			pub, err := base64.StdEncoding.DecodeString(key)
			if err != nil || len(pub) != ed25519.PublicKeySize {
				return usageError{fmt.Sprintf("--founding-members: %s's key is not a base64 Ed25519 public key", m)}
			}
			foundingKeys[m] = pub
		}
		if !api.ValidMember(m) {
			return usageError{fmt.Sprintf("--founding-members: %q is not a member id (1 to 64 characters of [a-z0-9._-])", m)}
		}
	}

	passphrase, err := readPassphrase(*keysPass)
	if err != nil {
		return err
	}
	memberPassphrase, err := readPassphrase(*memberPass)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	n, err := coapp.Open(startCtx, coapp.Config{
		Dir:                 *dir,
		NodeID:              *id,
		HTTPAddr:            *httpAddr,
		HTTPAdvertise:       *httpAdv,
		RaftAddr:            *raftAddr,
		RaftAdvertise:       *raftAdv,
		Bootstrap:           *bootstrap,
		Federation:          *federation,
		Member:              *member,
		FoundingMembers:     foundingMembers,
		Rules:               rules,
		Join:                *join,
		JoinToken:           *token,
		NonVoter:            !*voter,
		KeyFile:             *keys,
		KeyPassphrase:       passphrase,
		MemberKeyPassphrase: memberPassphrase,
		FoundingKeys:        foundingKeys,
		TLS:                 coapp.TLSFiles{Cert: *cert, Key: *key, CA: *ca},
		MaxBodyBytes:        int64(*maxBody),
		ProbeAddr:           *probeAddr,
		Logger:              logger,
		Ledger:              tune,
	})
	if err != nil {
		return nodeOpenError(err)
	}
	fmt.Fprintf(stdout, "coapp node %s serving %s\n", n.ID(), n.URL())
	if n.ProbeURL() != "" {
		fmt.Fprintf(stdout, "probes and metrics: %s\n", n.ProbeURL())
	}
	if *bootstrap {
		tokenFile := filepath.Join(*dir, coapp.AdminTokenFile)
		if _, err := os.Stat(tokenFile); err == nil {
			fmt.Fprintf(stdout, "admin token: %s\n", tokenFile)
		} else {
			// A federation reopened, or restored from a backup: its
			// genesis was written elsewhere, with its token.
			fmt.Fprintf(stdout, "admin token: none written here (the federation was founded before); use an admin token of the federation, such as the founder's admin.token from its first node\n")
		}
		fmt.Fprintf(stdout, "key file: %s (copy it to every node that joins, and keep a copy with your backups)\n", n.KeyFile())
	}
	<-ctx.Done()
	logger.Info("shutting down")
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelClose()
	return n.Close(closeCtx)
}

// nodeOpenError makes a refusal of the flags by coapp.Open, before it
// wrote anything, a usage error: the flags cannot work with the data
// directory.
func nodeOpenError(err error) error {
	flagOf := map[string]string{"federation": "--federation", "join": "--join", "bootstrap": "--bootstrap", "node_id": "--id", "member": "--member", "dir": "--dir"}
	var ve *api.ValidationError
	switch {
	case errors.Is(err, coapp.ErrLedgerExists):
		return usageError{strings.TrimPrefix(err.Error(), "coapp: ")}
	case errors.As(err, &ve) && flagOf[ve.Field] != "":
		return usageError{fmt.Sprintf("%s: %s", flagOf[ve.Field], ve.Reason)}
	case errors.As(err, &ve) && (strings.HasPrefix(ve.Field, "founding_") || strings.HasPrefix(ve.Field, "rules.")):
		return usageError{fmt.Sprintf("--founding-members or --committees: %s: %s", ve.Field, ve.Reason)}
	}
	return err
}

// checkHostPort refuses an address that is not HOST:PORT with a port
// number (HOST may be empty, for every interface).
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("the port must be a number from 0 to 65535")
	}
	return nil
}

// nodeLogger returns the node's logger: records of level and above, to w,
// as text or JSON.
func nodeLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{}
	switch strings.ToLower(level) {
	case "debug":
		opts.Level = slog.LevelDebug
	case "info":
		opts.Level = slog.LevelInfo
	case "warn":
		opts.Level = slog.LevelWarn
	case "error":
		opts.Level = slog.LevelError
	default:
		return nil, usageError{"--log-level must be debug, info, warn or error"}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{"--log-format must be text or json"}
}
