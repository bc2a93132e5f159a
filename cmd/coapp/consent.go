package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
	"coapp.coop/consent"
)

const consentUsage = `consent give FILE|- | renew ID | withdraw ID | revoke ID | expire ID | get ID | list | check | verify RECEIPT|- | purposes | purpose add FILE|- | key MEMBER`

// readInput opens a file argument, or standard input for "-".
func readInput(name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	return os.Open(name)
}

// decodeStrict reads one JSON value from a file, or standard input for
// "-", strictly: see decodeJSON.
func decodeStrict(name string, v any) error {
	in, err := readInput(name)
	if err != nil {
		return err
	}
	defer in.Close()
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	return decodeJSON(name, data, v)
}

// decodeJSON decodes data, read from name, into v as the API does
// (api.DecodeBytes): an unknown field, a wrong type or trailing data is an
// error naming the field.
func decodeJSON(name string, data []byte, v any) error {
	if err := api.DecodeBytes(data, v); err != nil {
		return fmt.Errorf("reading %s: %s", name, strings.TrimPrefix(err.Error(), "coapp: "))
	}
	return nil
}

// subjectArg returns the subject: the flag's value, or a line of standard
// input for "-" (which keeps it out of the shell's history and ps).
func subjectArg(s string) (string, error) {
	if s != "-" {
		return s, nil
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("reading the subject from standard input: %w", err)
	}
	return strings.TrimSpace(line), nil
}

func runConsent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{consentUsage}
	}
	sub := args[0]
	f := newFlags("consent "+sub, stderr)
	cf := addClientFlags(f)
	var (
		subject  = f.String("subject", "", `the person's identifier, or "-" to read it from standard input (list, check)`)
		purpose  = f.String("purpose", "", "a purpose id, such as dpv:AcademicResearch (check)")
		category = f.String("category", "", "a data category: also decide the member's agreement to share it (check)")
		asOf     = f.Uint64("as-of", 0, "decide as of this ledger index (check; default: now)")
		duration = f.String("duration", "", "new validity as an ISO 8601 duration, such as P1Y (renew)")
		until    = f.String("until", "", "new validity end, RFC 3339 (renew)")
		pubKey   = f.String("public-key", "", "verify offline with this base64 Ed25519 key, without asking the node (verify)")
	)
	nargs := 0
	switch sub {
	case "give", "renew", "withdraw", "revoke", "expire", "get", "verify", "purpose", "key":
		nargs = 1
	}
	if sub == "purpose" {
		nargs = 2
	}
	if err := f.parse(args[1:], nargs); err != nil {
		return err
	}
	if f.NArg() != nargs {
		return usageError{consentUsage}
	}
	if sub == "verify" && *pubKey != "" {
		return verifyOffline(f.Arg(0), *pubKey, stdout)
	}
	c, err := cf.client(ctx)
	if err != nil {
		return err
	}
	switch sub {
	case "give":
		var req api.ConsentRequest
		if err := decodeStrict(f.Arg(0), &req); err != nil {
			return err
		}
		rc, err := c.GiveConsent(ctx, req)
		if err != nil {
			return err
		}
		return printJSON(stdout, rc)
	case "renew", "withdraw", "revoke", "expire":
		id, err := uuid.Parse(f.Arg(0))
		if err != nil {
			return usageError{"the consent record id must be a UUID"}
		}
		var change api.ConsentChange
		if sub == "renew" {
			v := consent.Validity{From: time.Now().UTC()}
			switch {
			case *duration != "" && *until == "":
				if end, err := consent.AddDuration(v.From, *duration); err != nil || !end.After(v.From) {
					return usageError{fmt.Sprintf("--duration %q is not a positive ISO 8601 duration, such as P1Y", *duration)}
				}
				v.Duration = *duration
			case *until != "" && *duration == "":
				end, err := time.Parse(time.RFC3339, *until)
				if err != nil {
					return usageError{fmt.Sprintf("--until %q is not an RFC 3339 time", *until)}
				}
				v.Until = &end
			default:
				return usageError{"renew needs --duration or --until"}
			}
			change.Validity = &v
		}
		rc, err := c.ChangeConsent(ctx, id, sub, change)
		if err != nil {
			return err
		}
		return printJSON(stdout, rc)
	case "get":
		id, err := uuid.Parse(f.Arg(0))
		if err != nil {
			return usageError{"the consent record id must be a UUID"}
		}
		h, err := c.ConsentRecord(ctx, id)
		if err != nil {
			return err
		}
		return printJSON(stdout, h)
	case "list":
		s, err := subjectArg(*subject)
		if err != nil || s == "" {
			return usageError{"list needs --subject (or --subject - to read it from standard input)"}
		}
		l, err := c.Consents(ctx, s)
		if err != nil {
			return err
		}
		return printJSON(stdout, l)
	case "check":
		s, err := subjectArg(*subject)
		if err != nil || s == "" || *purpose == "" {
			return usageError{"check needs --subject and --purpose"}
		}
		d, err := c.CheckConsent(ctx, api.CheckRequest{Subject: s, Purpose: *purpose, Category: *category, AsOf: *asOf})
		if err != nil {
			return err
		}
		return printJSON(stdout, d)
	case "verify":
		var rc consent.Receipt
		if err := decodeReceipt(f.Arg(0), &rc); err != nil {
			return err
		}
		v, err := c.VerifyReceipt(ctx, rc)
		if err != nil {
			return err
		}
		if err := printJSON(stdout, v); err != nil {
			return err
		}
		if !v.Valid {
			return fmt.Errorf("the receipt does not verify: %s", v.Error)
		}
		return nil
	case "key":
		pub, err := c.MemberKey(ctx, f.Arg(0))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(pub))
		return err
	case "purposes":
		ps, err := c.Purposes(ctx)
		if err != nil {
			return err
		}
		return printJSON(stdout, map[string]any{"purposes": ps})
	case "purpose":
		if f.Arg(0) != "add" {
			return usageError{"consent purpose add FILE|-"}
		}
		var p consent.Purpose
		if err := decodeStrict(f.Arg(1), &p); err != nil {
			return err
		}
		if err := c.DefinePurpose(ctx, p); err != nil {
			return err
		}
		return printJSON(stdout, p)
	}
	return usageError{fmt.Sprintf("unknown consent command %q: %s", sub, consentUsage)}
}

// decodeReceipt reads a receipt, alone or as the API returned it
// ({"record":..., "receipt":{...}}).
func decodeReceipt(name string, rc *consent.Receipt) error {
	var wrapped struct {
		Record  uuid.UUID        `json:"record"`
		Receipt *consent.Receipt `json:"receipt"`
	}
	in, err := readInput(name)
	if err != nil {
		return err
	}
	defer in.Close()
	b, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	if json.Unmarshal(b, &wrapped) == nil && wrapped.Receipt != nil {
		*rc = *wrapped.Receipt
		return nil
	}
	if err := json.Unmarshal(b, rc); err != nil {
		return fmt.Errorf("reading the receipt %s: %w", name, err)
	}
	return nil
}

// verifyOffline checks a receipt with a public key alone, as the person
// who keeps it would: no node is asked.
func verifyOffline(name, key string, stdout io.Writer) error {
	pub, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return usageError{"--public-key must be a base64 Ed25519 public key (GET /v1/members/{id}/key)"}
	}
	var rc consent.Receipt
	if err := decodeReceipt(name, &rc); err != nil {
		return err
	}
	e, err := rc.Verify(ed25519.PublicKey(pub), nil)
	if err != nil {
		_ = printJSON(stdout, client.VerifyResult{Error: err.Error()})
		return fmt.Errorf("the receipt does not verify: %w", err)
	}
	return printJSON(stdout, client.VerifyResult{Valid: true, Event: &e})
}
