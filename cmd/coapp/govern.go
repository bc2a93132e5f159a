package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
)

// Governance commands: members, proposals and votes, datasets, exports,
// aggregates, shares and the audit trail.

// action is what a simple command does with a client and its arguments;
// it returns what to print as JSON.
type action func(ctx context.Context, c *client.Client, args []string) (any, error)

// simple makes a command that takes the client flags, plus those setup
// adds, and exactly nargs arguments, and prints what its action returns.
func simple(name string, nargs int, usage string, setup func(f flags) action) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		f := newFlags(name, stderr)
		cf := addClientFlags(f)
		act := setup(f)
		if err := f.parse(args, nargs); err != nil {
			return err
		}
		if f.NArg() != nargs {
			return usageError{usage}
		}
		c, err := cf.client(ctx)
		if err != nil {
			return err
		}
		out, err := act(ctx, c, f.Args())
		if err != nil {
			return err
		}
		return printJSON(stdout, out)
	}
}

func noFlags(a action) func(flags) action { return func(flags) action { return a } }

var (
	runRotateKey = simple("rotate-key", 1, "rotate-key MEMBER  (with that member's token, on the node that holds its key)",
		noFlags(func(ctx context.Context, c *client.Client, args []string) (any, error) {
			return c.RotateKey(ctx, args[0])
		}))
	runMembers = simple("members", 0, "members", noFlags(func(ctx context.Context, c *client.Client, _ []string) (any, error) {
		ms, err := c.Members(ctx)
		return map[string]any{"members": ms}, err
	}))
	runPropose = simple("propose", 1, `propose FILE|-  (a proposal: {"kind":"admit-member","member":"coop-b"}, or a dataset or a grant)`,
		noFlags(func(ctx context.Context, c *client.Client, args []string) (any, error) {
			var p api.Proposal
			if err := decodeStrict(args[0], &p); err != nil {
				return nil, err
			}
			return c.Propose(ctx, p)
		}))
	runVote = simple("vote", 2, "vote PROPOSAL_ID yes|no|abstain", noFlags(func(ctx context.Context, c *client.Client, args []string) (any, error) {
		id, err := uuid.Parse(args[0])
		if err != nil {
			return nil, usageError{"the proposal id must be a UUID"}
		}
		if !slices.Contains(api.Choices, args[1]) {
			return nil, usageError{"vote PROPOSAL_ID yes|no|abstain"}
		}
		return c.Vote(ctx, id, args[1])
	}))
	runProposals = simple("proposals", 0, "proposals", noFlags(func(ctx context.Context, c *client.Client, _ []string) (any, error) {
		ps, err := c.Proposals(ctx)
		return map[string]any{"proposals": ps}, err
	}))
	runDatasets = simple("datasets", 0, "datasets", noFlags(func(ctx context.Context, c *client.Client, _ []string) (any, error) {
		ds, err := c.Datasets(ctx)
		return map[string]any{"datasets": ds}, err
	}))
	runShares = simple("shares", 1, "shares [--from D] [--to D] DATASET", func(f flags) action {
		from := f.String("from", "", "records dated from (YYYY-MM-DD)")
		to := f.String("to", "", "records dated before (YYYY-MM-DD)")
		f.check(func() error {
			for _, d := range []struct{ flag, v string }{{"from", *from}, {"to", *to}} {
				if _, err := time.Parse(time.DateOnly, d.v); d.v != "" && err != nil {
					return usageError{fmt.Sprintf("--%s %q: want a date, YYYY-MM-DD", d.flag, d.v)}
				}
			}
			return nil
		})
		return func(ctx context.Context, c *client.Client, args []string) (any, error) {
			return c.Shares(ctx, args[0], *from, *to)
		}
	})
	runAudit = simple("audit", 1, "audit DATASET", noFlags(func(ctx context.Context, c *client.Client, args []string) (any, error) {
		as, err := c.Audit(ctx, args[0])
		return map[string]any{"exports": as}, err
	}))
	runAggregate = simple("aggregate", 2, `aggregate DATASET FILE|-  (a query: {"purpose":"…","group_by":["postcode"],"op":"count|sum|mean","field":"…","dp":{"epsilon":0.5}})`,
		noFlags(func(ctx context.Context, c *client.Client, args []string) (any, error) {
			var req api.AggregateRequest
			if err := decodeStrict(args[1], &req); err != nil {
				return nil, err
			}
			return c.Aggregate(ctx, args[0], req)
		}))
)

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
	if err := (&api.ExportRequest{Purpose: *purpose, Format: *format}).Validate(); err != nil {
		return usageError{"--format must be jsonl or csv"}
	}
	cf.stream = true
	c, err := cf.client(ctx)
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
	res, err := c.Export(ctx, f.Arg(0), api.ExportRequest{Purpose: *purpose, Format: *format, AsOf: *asOf}, w)
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
