package coapp

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/coapp/internal/memberkey"
	"coapp.coop/coapp/internal/state"
	"coapp.coop/internal/logging"
	"coapp.coop/ledger"
	"coapp.coop/ledger/merkle"
	"coapp.coop/pseudonym"
)

// ErrMemberKeyMismatch is returned, in a *MemberKeyError, by Restore when
// a member's key file is not the key the backup's ledger registers for
// that member, or names no member of the federation.
var ErrMemberKeyMismatch = errors.New("coapp: the member key file does not match the ledger")

// MemberKeyError names the member key file Restore refused.
type MemberKeyError struct {
	Member string
	Path   string
	Reason string
}

func (e *MemberKeyError) Error() string {
	return fmt.Sprintf("coapp: member key file %s (%s): %s", e.Path, e.Member, e.Reason)
}

// Unwrap returns ErrMemberKeyMismatch.
func (e *MemberKeyError) Unwrap() error { return ErrMemberKeyMismatch }

// RestoreConfig says where Restore seeds a node's directory, and with
// which key files. A backup (GET /v1/backup, coapp backup) holds the
// ledger only: the federation's key file and the members' signing keys
// are secrets kept apart from it, which Restore checks against it.
type RestoreConfig struct {
	// Dir is the new node's directory. It must hold no ledger; it is
	// created when missing. Required.
	Dir string

	// KeyFile is the federation's key file, opened with KeyPassphrase
	// when sealed. Required: a restored ledger needs the key its
	// pseudonyms were made with, never a new one. Its fingerprint must
	// be the one the backup's genesis records. Restore copies it, as it
	// is (sealed or not), to Dir/keys.json unless it is that file.
	KeyFile       string
	KeyPassphrase []byte

	// MembersDir, when set, holds member signing key files (a copy of a
	// node's members/ directory), opened with MemberKeyPassphrase when
	// sealed (the node's Config.MemberKeyPassphrase). Restore checks each
	// against the key the backup's ledger registers for its member, and
	// copies them to Dir/members/. Default: none restored.
	MembersDir          string
	MemberKeyPassphrase []byte

	// Logger receives what Restore could not check. Default: discard.
	Logger *slog.Logger
}

// Restored is what Restore seeded.
type Restored struct {
	// Size and Root are the restored log's.
	Size uint64
	Root merkle.Hash
	// Federation is the name in the backup's genesis.
	Federation string
	// KeyFingerprint is the fingerprint the genesis records, which the
	// key file matched; empty when the federation was founded before
	// fingerprints were recorded, and the key file could not be checked.
	KeyFingerprint string
	// Members are the members whose signing keys were restored, checked.
	Members []string
	// WithoutKey are members whose key the ledger registers and whose key
	// file was not restored: they sign on no node until a node holds it.
	WithoutKey []string
}

// Restore seeds cfg.Dir with the ledger of a backup made by Node's
// backup (GET /v1/backup), the federation's key file and, when
// cfg.MembersDir is set, members' signing keys, after checking that they
// belong together: the backup's digest and Merkle root, the key file's
// fingerprint against the genesis's, each member key against the ledger.
// Open with Bootstrap then starts a new cluster on it (other nodes join
// it), or with Join a node whose state the federation's snapshot
// replaces. Any refusal (a *api.ValidationError, *KeyFileError,
// *MemberKeyError, *DirError, or the ledger's error for a damaged backup)
// leaves cfg.Dir as it was.
func Restore(ctx context.Context, cfg RestoreConfig, backup io.Reader) (Restored, error) {
	log := logging.Discard(cfg.Logger)
	switch {
	case cfg.Dir == "":
		return Restored{}, api.Invalid("dir", "required")
	case cfg.KeyFile == "":
		return Restored{}, api.Invalid("key_file", "required: the federation's key file, which the restored ledger needs (never a new one)")
	}
	keys, err := pseudonym.ReadKeyFile(cfg.KeyFile, cfg.KeyPassphrase)
	if errors.Is(err, os.ErrNotExist) {
		return Restored{}, &KeyFileError{Path: cfg.KeyFile, Err: ErrNoKeyFile}
	} else if err != nil {
		return Restored{}, fmt.Errorf("coapp: key file %s: %w", cfg.KeyFile, err)
	}
	keyBytes, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return Restored{}, err
	}
	u := &undo{dir: cfg.Dir}
	u.dirExisted = exists(cfg.Dir)
	keyDest := filepath.Join(cfg.Dir, DefaultKeyFile)
	copyKey := !samePath(cfg.KeyFile, keyDest)
	if copyKey && exists(keyDest) {
		return Restored{}, &DirError{Dir: cfg.Dir, Err: ErrLedgerExists,
			Reason: fmt.Sprintf("it holds a key file already (%s): restore into an empty directory, or name that file as the key file", DefaultKeyFile)}
	}
	members, err := memberFiles(cfg.MembersDir, cfg.Dir)
	if err != nil {
		return Restored{}, err
	}

	size, root, err := ledger.RestoreBackup(ctx, cfg.Dir, backup)
	if errors.Is(err, ledger.ErrNotEmpty) {
		return Restored{}, &DirError{Dir: cfg.Dir, Err: ErrLedgerExists, Reason: "it holds a ledger already: restore into a new directory"}
	}
	if err != nil {
		u.run()
		return Restored{}, err
	}
	u.state = true
	out, err := checkRestored(ctx, cfg, keys, members, u, log)
	if err != nil {
		u.run()
		return Restored{}, err
	}
	if copyKey {
		if err := memberkey.WriteFileSync(keyDest, keyBytes); err != nil {
			u.run()
			return Restored{}, fmt.Errorf("coapp: copy the key file: %w", err)
		}
	}
	out.Size, out.Root = size, root
	return out, nil
}

// checkRestored replays the restored ledger into a federation state, and
// checks the key file and the member key files against it; it copies
// the member key files into Dir/members/, recording them in u.
func checkRestored(ctx context.Context, cfg RestoreConfig, keys *pseudonym.Keyring, members map[string]string, u *undo, log *slog.Logger) (Restored, error) {
	st := state.New()
	var g *format.Genesis
	if _, err := ledger.Inspect(ctx, ledger.Config{Dir: cfg.Dir, Logger: cfg.Logger}, func(v *ledger.View) error {
		var err error
		if g, err = readGenesis(v); err != nil {
			return err
		}
		for e, err := range v.Entries(0, v.Size()) {
			if err != nil {
				return err
			}
			_ = st.Apply(e) // a refused entry is refused on every replica alike
		}
		return nil
	}); err != nil {
		return Restored{}, err
	}
	var out Restored
	switch {
	case g == nil:
		log.Warn("the backup's ledger holds no federation genesis: the key file cannot be checked")
	case g.KeyFingerprint == "":
		out.Federation = g.Federation
		log.Warn("the backup's federation was founded before coapp recorded its key's fingerprint: the key file cannot be checked",
			"federation", g.Federation, "key_file", cfg.KeyFile)
	default:
		out.Federation, out.KeyFingerprint = g.Federation, g.KeyFingerprint
		if got, ok := checkFingerprint(keys, g.KeyFingerprint); !ok {
			return Restored{}, &KeyFileError{Path: cfg.KeyFile, Federation: g.Federation, Want: g.KeyFingerprint, Got: got, Err: ErrKeyMismatch}
		}
	}

	signers := memberkey.New(cfg.Dir, cfg.MemberKeyPassphrase)
	for _, m := range slices.Sorted(maps.Keys(members)) {
		src := members[m]
		b, err := os.ReadFile(src)
		if err != nil {
			return Restored{}, err
		}
		if !u.membersDir && !exists(filepath.Join(cfg.Dir, memberkey.Dir)) {
			if err := os.MkdirAll(filepath.Join(cfg.Dir, memberkey.Dir), 0o700); err != nil {
				return Restored{}, err
			}
			u.membersDir = true
		}
		dst := signers.Path(m)
		if err := memberkey.WriteFileSync(dst, b); err != nil {
			return Restored{}, fmt.Errorf("coapp: copy member key file %s: %w", src, err)
		}
		u.files = append(u.files, dst)
		key, err := signers.Load(m, false)
		if err != nil {
			return Restored{}, &MemberKeyError{Member: m, Path: src, Reason: fmt.Sprintf("unreadable: %v", errors.Unwrap(err))}
		}
		pub := key.Public().(ed25519.PublicKey)
		registered, ok := st.MemberKey(m)
		switch {
		case ok && !pub.Equal(registered):
			return Restored{}, &MemberKeyError{Member: m, Path: src,
				Reason: "not the key the ledger registers for this member (a key from before a rotation, or after the backup?)"}
		case !ok && !st.IsMember(m):
			return Restored{}, &MemberKeyError{Member: m, Path: src, Reason: "not a member of the backup's federation"}
		}
		out.Members = append(out.Members, m)
	}
	for _, m := range st.Members() {
		if _, ok := st.MemberKey(m); ok && members[m] == "" {
			out.WithoutKey = append(out.WithoutKey, m)
		}
	}
	return out, nil
}

// memberFiles lists the member key files in dir, by member, and refuses
// one that names no member, or whose member already has a key file in
// the node's directory.
func memberFiles(dir, nodeDir string) (map[string]string, error) {
	out := map[string]string{}
	if dir == "" {
		return out, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.key"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, api.Invalid("members_dir", "%s holds no member key file (*.key, from a node's members/ directory)", dir)
	}
	signers := memberkey.New(nodeDir, nil)
	for _, f := range files {
		name, err := hex.DecodeString(strings.TrimSuffix(filepath.Base(f), ".key"))
		if err != nil || !api.ValidMember(string(name)) {
			return nil, &MemberKeyError{Member: "?", Path: f, Reason: "its name is not a member's key file name (hex of the member id, .key)"}
		}
		m := string(name)
		if exists(signers.Path(m)) {
			return nil, &DirError{Dir: nodeDir, Err: ErrLedgerExists, Reason: fmt.Sprintf("it holds a key file for member %s already", m)}
		}
		out[m] = f
	}
	return out, nil
}

// undo removes what a refused Restore wrote.
type undo struct {
	dir        string
	dirExisted bool
	state      bool     // Dir/state was made
	membersDir bool     // Dir/members was made
	files      []string // member key files written
}

func (u *undo) run() {
	if !u.dirExisted {
		_ = os.RemoveAll(u.dir)
		return
	}
	for _, f := range u.files {
		_ = os.Remove(f)
	}
	if u.membersDir {
		_ = os.RemoveAll(filepath.Join(u.dir, memberkey.Dir))
	}
	if u.state {
		_ = os.RemoveAll(filepath.Join(u.dir, "state"))
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// samePath reports whether a and b name one file.
func samePath(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(fa, fb)
	}
	aa, _ := filepath.Abs(a)
	bb, _ := filepath.Abs(b)
	return aa == bb
}
