package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"

	"coapp.coop/coapp"
	"coapp.coop/coapp/api"
	"coapp.coop/pseudonym"
)

// readPassphrase reads a passphrase from a file (its first line), or
// returns nil for no file.
func readPassphrase(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if line == "" {
		return nil, usageError{"the passphrase file is empty"}
	}
	return []byte(line), nil
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "member" {
		return runMemberKey(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "init" {
		return usageError{"keys init --out FILE [--passphrase-file FILE] | keys member --member M --dir DIR [--passphrase-file FILE]"}
	}
	f := newFlags("keys init", stderr)
	out := f.String("out", "", "where to write the new key file")
	pass := f.String("passphrase-file", "", "seal the key file with the passphrase in this file")
	if err := f.parse(args[1:], 0); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"--out is required"}
	}
	if _, err := os.Stat(*out); err == nil {
		return usageError{fmt.Sprintf("%s exists: a federation's key file is not replaced", *out)}
	}
	passphrase, err := readPassphrase(*pass)
	if err != nil {
		return err
	}
	secret, err := pseudonym.NewSecret()
	if err != nil {
		return err
	}
	k, err := pseudonym.NewKeyring(1, secret)
	if err != nil {
		return err
	}
	if err := pseudonym.WriteKeyFile(*out, k, passphrase); err != nil {
		return err
	}
	sealed := "not sealed"
	if passphrase != nil {
		sealed = "sealed with the passphrase"
	}
	fmt.Fprintf(stdout, "key file written to %s (%s); pass it to every node with --keys\n", *out, sealed)
	return nil
}

func runSchemas(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	f := newFlags("schemas", stderr)
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
		all, err := c.Schemas(ctx)
		if err != nil {
			return err
		}
		return printJSON(stdout, api.SchemaList{Schemas: all})
	case sub == "put" && f.NArg() == 1:
		data, err := os.ReadFile(f.Arg(0))
		if err != nil {
			return err
		}
		var schema api.Schema
		if err := decodeJSON(f.Arg(0), data, &schema); err != nil {
			return err
		}
		got, err := c.PutSchema(ctx, schema)
		if err != nil {
			return err
		}
		return printJSON(stdout, got)
	}
	return usageError{"schemas | schemas put FILE"}
}

// runMemberKey makes a member's signing key in a node's directory and
// prints its public key, for --founding-members M=KEY at bootstrap.
func runMemberKey(args []string, stdout, stderr io.Writer) error {
	f := newFlags("keys member", stderr)
	member := f.String("member", "", "the member whose key this is")
	dir := f.String("dir", "", "the data directory of the node that will sign for the member")
	pass := f.String("passphrase-file", "", "seal the key with the passphrase in this file (the node's --member-keys-passphrase-file)")
	if err := f.parse(args, 0); err != nil {
		return err
	}
	if *member == "" || *dir == "" {
		return usageError{"keys member --member M --dir DIR [--passphrase-file FILE]"}
	}
	if !api.ValidMember(*member) {
		return usageError{fmt.Sprintf("--member %q: a member id is 1 to 64 characters of [a-z0-9._-]", *member)}
	}
	passphrase, err := readPassphrase(*pass)
	if err != nil {
		return err
	}
	pub, err := coapp.CreateMemberKey(*dir, *member, passphrase)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s=%s\n", *member, base64.StdEncoding.EncodeToString(pub))
	return err
}
