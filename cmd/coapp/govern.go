package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/uuid"
)

// Governance commands: members, proposals and votes, datasets, exports,
// shares and the audit trail.

func runMembers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("members", stderr)
	cf := addClientFlags(f)
	if err := f.parse(args, 0); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ms, err := c.Members(ctx)
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]any{"members": ms})
}

func runPropose(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("propose", stderr)
	cf := addClientFlags(f)
	if err := f.parse(args, 1); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return usageError{"propose FILE|-  (a proposal: {\"kind\":\"admit-member\",\"member\":\"coop-b\"}, or a dataset or a grant)"}
	}
	var p json.RawMessage
	if err := decodeStrict(f.Arg(0), &p); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	pr, err := c.Propose(ctx, p)
	if err != nil {
		return err
	}
	return printJSON(stdout, pr)
}

func runVote(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("vote", stderr)
	cf := addClientFlags(f)
	if err := f.parse(args, 2); err != nil {
		return err
	}
	if f.NArg() != 2 {
		return usageError{"vote PROPOSAL_ID yes|no|abstain"}
	}
	id, err := uuid.Parse(f.Arg(0))
	if err != nil {
		return usageError{"the proposal id must be a UUID"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	pr, err := c.Vote(ctx, id, f.Arg(1))
	if err != nil {
		return err
	}
	return printJSON(stdout, pr)
}

func runProposals(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("proposals", stderr)
	cf := addClientFlags(f)
	if err := f.parse(args, 0); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ps, err := c.Proposals(ctx)
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]any{"proposals": ps})
}

func runDatasets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("datasets", stderr)
	cf := addClientFlags(f)
	if err := f.parse(args, 0); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ds, err := c.Datasets(ctx)
	if err != nil {
		return err
	}
	return printJSON(stdout, ds)
}

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("export", stderr)
	cf := addClientFlags(f)
	purpose := f.String("purpose", "", "the purpose of the export, one the grant names (required)")
	format := f.String("format", "jsonl", "jsonl or csv")
	asOf := f.Uint64("as-of", 0, "export as of this ledger index (default: the latest)")
	out := f.String("out", "-", "where to write the export (- for standard output)")
	if err := f.parse(args, 1); err != nil {
		return err
	}
	if f.NArg() != 1 || *purpose == "" {
		return usageError{"export --purpose P [--format csv] [--as-of I] [--out FILE] DATASET"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	w := stdout
	var file *os.File
	if *out != "-" {
		// Into a temporary file beside --out, renamed once complete: a
		// refused or broken export leaves nothing behind.
		if _, err := os.Stat(*out); err == nil {
			return fmt.Errorf("%s exists: choose another --out", *out)
		}
		if file, err = os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*.partial"); err != nil {
			return err
		}
		defer os.Remove(file.Name())
		defer file.Close()
		w = file
	}
	res, err := c.Export(ctx, f.Arg(0), map[string]any{"purpose": *purpose, "format": *format, "as_of": *asOf}, w)
	if err != nil {
		return err
	}
	if file != nil {
		if err := file.Sync(); err != nil {
			return err
		}
		if err := file.Close(); err != nil {
			return err
		}
		if err := os.Rename(file.Name(), *out); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "exported %d rows; audit entry %d; sha256 %s\n", res.Rows, res.AuditIndex, res.SHA256)
	return nil
}

func runShares(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("shares", stderr)
	cf := addClientFlags(f)
	from := f.String("from", "", "records dated from (YYYY-MM-DD)")
	to := f.String("to", "", "records dated before (YYYY-MM-DD)")
	if err := f.parse(args, 1); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return usageError{"shares [--from D] [--to D] DATASET"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	sh, err := c.Shares(ctx, f.Arg(0), *from, *to)
	if err != nil {
		return err
	}
	return printJSON(stdout, sh)
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("audit", stderr)
	cf := addClientFlags(f)
	if err := f.parse(args, 1); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return usageError{"audit DATASET"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	as, err := c.Audit(ctx, f.Arg(0))
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]any{"exports": as})
}

func runAggregate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("aggregate", stderr)
	cf := addClientFlags(f)
	if err := f.parse(args, 2); err != nil {
		return err
	}
	if f.NArg() != 2 {
		return usageError{`aggregate DATASET FILE|-  (a query: {"purpose":"…","group_by":["postcode"],"op":"count|sum|mean","field":"…","dp":{"epsilon":0.5}})`}
	}
	var req json.RawMessage
	if err := decodeStrict(f.Arg(1), &req); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	res, err := c.Aggregate(ctx, f.Arg(0), req)
	if err != nil {
		return err
	}
	return printJSON(stdout, res)
}
