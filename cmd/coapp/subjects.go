package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

const subjectsUsage = "subjects access|erase|exports SUBJECT|-  (-: the subject is read from a line of standard input)\n       subjects erasure RAFT_INDEX [--wait]  (how far each node purged an erasure)"

// runSubjects answers a person's rights, as the calling member knows them:
// what the ledger holds about them (access), erasure by destroying their
// data keys (erase), and the exports that held their data (exports). The
// identifier travels in the request's body only; given as "-" it is read
// from standard input, so that it stays out of the shell's history and
// the process list.
func runSubjects(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{subjectsUsage}
	}
	sub := args[0]
	if sub == "erasure" {
		return runErasure(ctx, args[1:], stdout, stderr)
	}
	switch sub {
	case "access", "erase", "exports":
	default:
		return usageError{fmt.Sprintf("unknown subjects command %q: %s", sub, subjectsUsage)}
	}
	f := newFlags("subjects "+sub, stderr)
	cf := addClientFlags(f)
	if err := f.parse(args[1:], 1); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return usageError{subjectsUsage}
	}
	subject, err := subjectArg(f.Arg(0))
	if errors.Is(err, io.EOF) {
		return usageError{"no subject on standard input: " + subjectsUsage}
	}
	if err != nil {
		return err
	}
	if subject == "" {
		return usageError{"the subject is empty: " + subjectsUsage}
	}
	c, err := cf.client(ctx)
	if err != nil {
		return err
	}
	switch sub {
	case "access":
		r, err := c.Access(ctx, subject)
		if err != nil {
			return err
		}
		return printJSON(stdout, r)
	case "erase":
		r, err := c.EraseSubject(ctx, subject)
		if err != nil {
			return err
		}
		return printJSON(stdout, r)
	}
	es, err := c.SubjectExports(ctx, subject)
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]any{"exports": es})
}

// runErasure prints how far each node purged the erasure at a Raft index
// (the raft_index "subjects erase" printed); --wait polls until every node
// verified its files clean, within --timeout.
func runErasure(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("subjects erasure", stderr)
	cf := addClientFlags(f)
	wait := f.bool("wait", false, "poll until every node verified its files clean of the keys (within --timeout)")
	if err := f.parse(args, 1); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return usageError{subjectsUsage}
	}
	index, err := strconv.ParseUint(f.Arg(0), 10, 64)
	if err != nil || index == 0 {
		return usageError{fmt.Sprintf("%q is not a raft index: want the raft_index that subjects erase printed", f.Arg(0))}
	}
	c, err := cf.client(ctx)
	if err != nil {
		return err
	}
	for {
		st, err := c.ErasureStatus(ctx, index, false)
		if err != nil {
			return err
		}
		if st.Done || !*wait {
			return printJSON(stdout, st)
		}
		select {
		case <-ctx.Done():
			if perr := printJSON(stdout, st); perr != nil {
				return perr
			}
			return fmt.Errorf("the erasure at raft index %d is not yet verified on every node: %w", index, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
