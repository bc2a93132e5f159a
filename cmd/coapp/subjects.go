package main

import (
	"context"
	"errors"
	"fmt"
	"io"
)

const subjectsUsage = "subjects access|erase|exports SUBJECT|-  (-: the subject is read from a line of standard input)"

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
