package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadFlags runs every command with bad flag values and arguments
// (negative numbers, garbage, missing values): each is a usage error,
// exit code 2, refused before anything is started or asked of a node,
// and none panics. The environment points the commands at a closed port
// with a short --timeout and the node at a scratch directory, so that a
// value let through shows as a failure, not as a hang.
func TestBadFlags(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("COAPP_URL", "http://"+freePort(t))
	t.Setenv("COAPP_TOKEN", "x")
	t.Setenv("COAPP_TIMEOUT", "2s")
	t.Setenv("COAPP_DIR", filepath.Join(tmp, "node"))
	t.Setenv("COAPP_HTTP", "127.0.0.1:0")
	t.Setenv("COAPP_RAFT", "127.0.0.1:0")
	t.Setenv("COAPP_HEAD", filepath.Join(tmp, "head.json"))
	const id = "0193a3c2-0000-7000-8000-0000000000aa"
	for _, args := range [][]string{
		{"nosuch"},
		{"node", "--max-body", "-1"},
		{"node", "--max-body", "lots"},
		{"node", "--snapshot-threshold", "-5"},
		{"node", "--trailing-logs", "-1"},
		{"node", "--election-timeout", "-1s"},
		{"node", "--snapshot-interval", "soon"},
		{"node", "--purge-delay", "2m"},
		{"node", "--purge-delay", "-1s"},
		{"node", "--majority", "-1"},
		{"node", "--majority", "2"},
		{"node", "--quorum", "0"},
		{"node", "--quorum", "many"},
		{"node", "--proposal-lifetime", "forever"},
		{"node", "--proposal-lifetime", ""},
		{"node", "--committees", "data=coop-a:vote"},
		{"node", "--http", "nonsense"},
		{"node", "--raft", "127.0.0.1:99999"},
		{"node", "--raft", "127.0.0.1:-1"},
		{"node", "--http-advertise", "nohost"},
		{"node", "--join", "not a url"},
		{"node", "--bootstrap", "--join", "http://127.0.0.1:1"},
		{"node", "--bootstrap", "--member", "Bad Member"},
		{"node", "--founding-members", "BAD!"},
		{"node", "--founding-members", "coop-b=notbase64"},
		{"node", "--voter=maybe"},
		{"node", "--log-level", "loud"},
		{"node", "--log-format", "xml"},
		{"node", "extra"},
		{"keys", "init"},
		{"keys", "init", "--out"},
		{"keys", "member", "--member", "Bad!", "--dir", tmp},
		{"keys", "rotate"},
		{"certs", "init", "--dir"},
		{"certs", "issue", "--dir", tmp, "--name", "n", "--host", ""},
		{"schemas", "--timeout", "-1s"},
		{"schemas", "--url", "ftp://example"},
		{"schemas", "put"},
		{"token", "create", "--member", "Bad Member"},
		{"token", "create", "--member", "m", "--admin=perhaps"},
		{"token", "revoke"},
		{"token", "mint"},
		{"consent", "check", "--as-of", "-1", "--subject", "s", "--purpose", "dpv:Marketing"},
		{"consent", "check", "--subject", "s"},
		{"consent", "renew", "--until", "tomorrow", id},
		{"consent", "renew", "--duration", "a year", id},
		{"consent", "renew", "--duration", "-P1Y", id},
		{"consent", "renew", id},
		{"consent", "list"},
		{"consent", "verify", "--public-key", "zz", "receipt.json"},
		{"consent", "get", "not-a-uuid"},
		{"members", "--timeout", "soon"},
		{"members", "--tls-cert", "client.pem"},
		{"members", "--tls-key", "client-key.pem"},
		{"members", "extra"},
		{"rotate-key"},
		{"propose"},
		{"vote", id, "maybe"},
		{"vote", "not-a-uuid", "yes"},
		{"proposals", "extra"},
		{"datasets", "--url", ""},
		{"export", "--purpose", "dpv:Marketing", "--format", "xml", "harvests"},
		{"export", "--purpose", "dpv:Marketing", "--as-of", "-1", "harvests"},
		{"export", "harvests"},
		{"aggregate", "harvests"},
		{"shares", "--from", "yesterday", "harvests"},
		{"shares", "--to", "2026-13-45", "harvests"},
		{"audit"},
		{"records", "get", "--consistency", "eventual", id},
		{"records", "get", "not-a-uuid"},
		{"records", "fetch", id},
		{"subjects", "access"},
		{"subjects", "forget", "s"},
		{"ledger", "prove", "-1"},
		{"ledger", "prove", "x"},
		{"ledger", "prove"},
		{"ledger", "consistency", "1"},
		{"ledger", "bogus"},
		{"ledger", "--consistency", "eventual"},
		{"ledger", "verify", "--consistency", "eventual"},
		{"ledger", "verify", "--timeout", "-1m"},
		{"cluster", "remove"},
		{"cluster", "--timeout", "-5s"},
		{"backup"},
		{"backup", "--out", filepath.Join(tmp, "b"), "--timeout", "-1s"},
		{"restore"},
		{"restore", "--dir", filepath.Join(tmp, "r")},
		{"bench", "--size", "64"},
		{"bench", "--size", "149"},
		{"bench", "--size", "-1"},
		{"bench", "--size", "big"},
		{"bench", "--records", "-1"},
		{"bench", "--records", "9223372036854775807"},
		{"bench", "--records", "many"},
		{"bench", "--clients", "0"},
		{"bench", "--batch", "-3"},
		{"bench", "--subjects", "-1"},
		{"bench", "--nodes", "-1"},
		{"bench", "--target", "not a url", "--token", "x"},
		{"version", "--verbose"},
		{"version", "extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := func() (err error) {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panic: %v", p)
					}
				}()
				return run(ctx, args, &out, &errOut)
			}()
			t.Logf("%v", err)
			if exitCode(err) != exitUsage {
				t.Errorf("coapp %q: exit %d (%v), want a usage error\n%s%s", args, exitCode(err), err, out.String(), errOut.String())
			}
		})
	}
}
