// Command coapp runs a federation node and talks to one over its HTTP API.
//
//	coapp node --bootstrap --federation "Emilia Coops" --dir data
//	coapp node --join http://10.0.0.1:7400 --token "$ADMIN" --dir data --id n2
//	coapp token create --member coop-b
//	coapp records publish records.json
//	coapp ledger
//	coapp ledger verify
//	coapp backup --out ledger.backup
//	coapp restore --dir newdata --keys saved/keys.json --members saved/members ledger.backup
//	coapp bench --nodes 3 --clients 256 --batch 100
//
// Every flag can also be set through an environment variable named after
// it: --dir is COAPP_DIR, --tls-cert is COAPP_TLS_CERT, and so on. Run
// `coapp <command> -h` for a command's flags.
//
// A command that talks to a node gives up after --timeout (default 30s;
// 0: no limit). Exit codes: 0 done; 1 the node refused the request or
// failed, or a local error; 2 a mistake in the command line; 3 the node
// could not be reached, or did not answer within --timeout; 4 ledger
// verify found the node's history inconsistent with the one verified
// before.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"node", "run a federation node", runNode},
		{"keys", "create the federation's key file: keys init --out FILE", runKeys},
		{"certs", "make a CA and certificates for mutual TLS: " + certsUsage, runCerts},
		{"schemas", "list or register exchange schemas: schemas | schemas put FILE", runSchemas},
		{"token", "create or revoke API tokens: token create --member M | token revoke ID", runToken},
		{"consent", "give, renew, withdraw, list, check and verify consents: " + consentUsage, runConsent},
		{"members", "list the federation's members", runMembers},
		{"rotate-key", "replace a member's signing key: rotate-key MEMBER", runRotateKey},
		{"propose", "put a proposal to the vote: propose FILE|-", runPropose},
		{"vote", "vote on a proposal: vote ID yes|no|abstain", runVote},
		{"proposals", "list proposals with their votes and outcomes", runProposals},
		{"datasets", "list the federation's datasets", runDatasets},
		{"export", "export a dataset: export --purpose P [--format csv] [--out FILE] DATASET", runExport},
		{"aggregate", "counts, sums or means by group, optionally differentially private: aggregate DATASET FILE|-", runAggregate},
		{"shares", "each member's share of a dataset: shares DATASET", runShares},
		{"audit", "a dataset's exports: audit DATASET", runAudit},
		{"records", "publish or look up records: records publish FILE | records get ID", runRecords},
		{"subjects", "a person's rights: " + subjectsUsage, runSubjects},
		{"ledger", "show the ledger's size and root, prove, or verify it extends the head verified before: ledger [prove I | consistency A B | verify [--head FILE]]", runLedger},
		{"cluster", "show or change the cluster: cluster [remove ID | promote ID]", runCluster},
		{"backup", "stream a consistent backup from a running node to a file", runBackup},
		{"restore", "seed a new node's directory from a backup and the key files kept apart: restore --dir DIR --keys FILE [--members DIR] BACKUP", runRestore},
		{"bench", "measure throughput and latency against the raw Raft floor", runBench},
		{"version", "print the module version, Go version and VCS revision the binary was built from", runVersion},
	}
}

// gcPercent is the garbage collector's target (GOGC) unless the
// environment sets one. Badger's memtables are Go memory, allocated whole
// (64 MiB, up to three per store, two stores per node): with Go's default
// of 100 they count as live heap and let the heap grow by as much between
// collections, on fresh pages, each a page fault. At 25, a 3-node coapp
// bench took 15% less CPU per record and half the page faults (see
// docs/performance.md).
const gcPercent = 25

// applyGCPercent sets gcPercent unless getenv gives GOGC.
func applyGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

func main() {
	applyGCPercent(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "coapp:", strings.TrimPrefix(err.Error(), "coapp: "))
		}
		os.Exit(exitCode(err))
	}
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var (
		ue usageError
		ne unreachableError
		ie inconsistentError
	)
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return exitOK // -h asked for help, and got it
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ne):
		return exitUnreachable
	case errors.As(err, &ie):
		return exitInconsistent
	}
	return exitFailed
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return usageError{"a command is required"}
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if len(args) > 1 && subcommands[c.name] && (args[1] == "-h" || args[1] == "--help" || args[1] == "help") {
				fmt.Fprintf(stderr, "coapp %s: %s\n(coapp %s <subcommand> -h lists a subcommand's flags)\n", c.name, c.summary, c.name)
				return nil
			}
			ctx, s := withSession(ctx, stderr)
			err := c.run(ctx, args[1:], stdout, stderr)
			err = s.explain(err)
			s.end()
			return err
		}
	}
	usage(stderr)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

// subcommands are the commands whose first argument is a subcommand: -h
// there asks for the command's usage.
var subcommands = map[string]bool{"keys": true, "schemas": true, "consent": true, "token": true, "records": true, "ledger": true, "cluster": true, "subjects": true, "certs": true}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: coapp <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set as an environment variable: --tls-cert is COAPP_TLS_CERT.")
	fmt.Fprintln(w, "A command that talks to a node gives up after --timeout (default 30s; 0: no limit).")
	fmt.Fprintln(w, "\n"+exitCodesUsage)
}

// flags is a FlagSet whose defaults come from COAPP_* environment
// variables, with checks of the values run once they are parsed.
type flags struct {
	*flag.FlagSet
	checks *[]func() error
}

func newFlags(name string, stderr io.Writer) flags {
	fs := flag.NewFlagSet("coapp "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return flags{fs, new([]func() error)}
}

// check adds a check of the parsed values; parse returns its error.
func (f flags) check(fn func() error) { *f.checks = append(*f.checks, fn) }

func envName(flagName string) string {
	return "COAPP_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (f flags) string(name, def, usage string) *string {
	if v, ok := os.LookupEnv(envName(name)); ok {
		def = v
	}
	return f.String(name, def, usage+" ($"+envName(name)+")")
}

func (f flags) bool(name string, def bool, usage string) *bool {
	if v, ok := os.LookupEnv(envName(name)); ok {
		def = v == "1" || strings.EqualFold(v, "true") || strings.EqualFold(v, "yes")
	}
	return f.Bool(name, def, usage+" ($"+envName(name)+")")
}

func (f flags) int(name string, def int, usage string) *int {
	if v, ok := os.LookupEnv(envName(name)); ok {
		if _, err := fmt.Sscan(v, &def); err != nil {
			fmt.Fprintf(f.Output(), "ignoring $%s=%q: not a number\n", envName(name), v)
		}
	}
	return f.Int(name, def, usage+" ($"+envName(name)+")")
}

func (f flags) duration(name string, def time.Duration, usage string) *time.Duration {
	if v, ok := os.LookupEnv(envName(name)); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(f.Output(), "ignoring $%s=%q: not a duration\n", envName(name), v)
		} else {
			def = d
		}
	}
	return f.Duration(name, def, usage+" ($"+envName(name)+")")
}

// parse parses args, refuses stray arguments beyond max, and runs the
// checks. A value that does not parse is a usage error (the flag package
// has printed the command's flags).
func (f flags) parse(args []string, max int) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if f.NArg() > max {
		return usageError{fmt.Sprintf("unexpected arguments: %s", strings.Join(f.Args()[max:], " "))}
	}
	for _, c := range *f.checks {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}
