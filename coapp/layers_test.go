package coapp_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The module's packages in layers, lowest first: a package imports only
// packages of lower layers (docs/architecture.md draws them). A new
// package must be placed here, or the test fails.
var layers = [][]string{
	{"ledger/merkle", "pseudonym", "internal/logging", "internal/fsscan", "internal/testcerts"},
	{"ledger/entry", "ledger/raftbadger"},
	{"consent", "ledger", "internal/raftfloor"},
	{"coapp/api"},
	{"coapp/client", "coapp/internal/format", "coapp/internal/memberkey"},
	{"coapp/internal/state", "coapp/internal/policy"},
	{"coapp/internal/release"},
	{"coapp/internal/server"},
	{"coapp/internal/httpapi"},
	{"coapp"},
	{"coapp/coapptest"},
	{"cmd/coapp", "examples/consumer-coop", "examples/energy-community", "examples/federation", "examples/quickstart"},
}

// Packages that must not link a dependency, even indirectly.
var banned = []struct {
	pkg  string
	deps []string
	why  string
}{
	{"coapp/api", []string{"github.com/dgraph-io/badger/v4", "github.com/hashicorp/raft", "coapp.coop/ledger", "net/http"}, "the wire: a client links no database, no Raft, no server"},
	{"coapp/client", []string{"github.com/dgraph-io/badger/v4", "github.com/hashicorp/raft", "coapp.coop/ledger"}, "a client links no database, no Raft"},
	{"consent", []string{"github.com/dgraph-io/badger/v4", "github.com/hashicorp/raft", "coapp.coop/ledger"}, "receipts verify offline"},
	{"coapp/internal/state", []string{"net/http", "os/exec", "coapp.coop/ledger", "github.com/dgraph-io/badger/v4", "github.com/hashicorp/raft"}, "the state machine does no I/O"},
	{"coapp/internal/format", []string{"net/http", "os/exec", "coapp.coop/ledger", "github.com/dgraph-io/badger/v4", "github.com/hashicorp/raft"}, "the bytes of entries do no I/O"},
	{"ledger", []string{"coapp.coop/consent", "coapp.coop/pseudonym", "coapp.coop/coapp/api"}, "the ledger knows nothing of cooperatives"},
}

type listed struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Dir        string
	GoFiles    []string
}

func goList(t *testing.T) map[string]listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "coapp.coop/...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("go list: %v (the go command is needed)", err)
	}
	pkgs := map[string]listed{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, "coapp.coop/")] = p
	}
	return pkgs
}

// TestLayers fails when a package imports one of its own layer or above.
func TestLayers(t *testing.T) {
	pkgs := goList(t)
	layer := map[string]int{}
	for i, l := range layers {
		for _, p := range l {
			layer[p] = i
		}
	}
	for name, p := range pkgs {
		li, ok := layer[name]
		if !ok {
			t.Errorf("package %s is in no layer of layers_test.go: place it (and in docs/architecture.md)", name)
			continue
		}
		for _, imp := range p.Imports {
			dep, own := strings.CutPrefix(imp, "coapp.coop/")
			if !own {
				continue
			}
			if lj := layer[dep]; lj >= li && dep != name {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go down the layers only", name, li, dep, lj)
			}
		}
	}
}

// TestBannedDependencies fails when a package links what it must not.
func TestBannedDependencies(t *testing.T) {
	pkgs := goList(t)
	for _, b := range banned {
		p, ok := pkgs[b.pkg]
		if !ok {
			t.Errorf("no package %s", b.pkg)
			continue
		}
		for _, dep := range p.Deps {
			for _, bad := range b.deps {
				if dep == bad || strings.HasPrefix(dep, bad+"/") && !strings.HasPrefix(dep, "coapp.coop/ledger/") {
					t.Errorf("%s links %s (%s)", b.pkg, dep, b.why)
				}
			}
		}
	}
}

// TestStateReadsNoClock fails when the state machine or the formats read
// the clock or draw random numbers: apply must be deterministic, time and
// ids come with the entries.
func TestStateReadsNoClock(t *testing.T) {
	pkgs := goList(t)
	banned := regexp.MustCompile(`\btime\.(Now|Since|Until)\(|\brand\.|\buuid\.(New\(|NewRandom|NewV\d|NewString)`)
	for _, name := range []string{"coapp/internal/state", "coapp/internal/format"} {
		p := pkgs[name]
		for _, f := range p.GoFiles {
			file, err := os.Open(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(file)
			for line := 1; sc.Scan(); line++ {
				text := sc.Text()
				if strings.HasPrefix(strings.TrimSpace(text), "//") {
					continue
				}
				if m := banned.FindString(text); m != "" {
					t.Errorf("%s/%s:%d: %s in the state machine's code", name, f, line, m)
				}
			}
			file.Close()
		}
	}
}
