package format

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/ledger/entry"
	"coapp.coop/ledger/merkle"
	"coapp.coop/pseudonym"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ (only for a new format version)")

// goldens are the bytes of each format from fixed inputs. A change to any
// of them would make ledgers written before unreadable, or give one record
// two encodings: the test fails, and -update is for a new format version
// only, never to make it pass.
func goldens(t *testing.T) map[string][]byte {
	t.Helper()
	at := time.Date(2026, 11, 2, 9, 0, 0, 123456789, time.UTC)
	id := uuid.MustParse("0193a3c2-0000-7000-8000-000000000001")
	subject := pseudonym.Pseudonym("ps1.1.lU1BvDB7iamvJhPEbehC63ehCCvKm8QqI0PtNc-HtuI")
	p := RecordPayload{Type: "purchase", Version: 2, Subject: subject, Box: []byte{1, 2, 3, 4}}
	e := entry.Entry{ID: id, Kind: KindRecord, Author: "coop-a", Time: at, Payload: p.Encode()}
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	batch := SignBatch(key, "coop-a", []entry.Entry{e})
	sb := api.SignedBody{Body: []byte(`{"proposal":"0193a3c2-0000-7000-8000-000000000002","choice":"yes","at":"2026-11-02T09:00:00Z"}`), Signer: "coop-a", Sig: bytes.Repeat([]byte{6}, 64)}
	token, op := NewToken([8]byte{1, 2, 3, 4, 5, 6, 7, 8}, [32]byte{9}, "coop-b", true)
	clear := RecordPayload{Type: "x", Version: 1, Subject: "not a pseudonym"}
	return map[string][]byte{
		"record-payload-v2":      p.Encode(),
		"record-payload-v2-name": clear.Encode(),
		"record-payload-v1-json": (&RecordPayload{Type: "purchase", Version: 1, Subject: subject, Time: "2026-11-02T09:00:00Z", Box: []byte{1, 2}}).EncodeJSON(),
		"record-ad-v2":           RecordADv2(e, &p),
		"subject-key-name":       SubjectKeyName(subject),
		"batch-payload":          batch.Payload,
		"batch-message":          BatchMessage("coop-a", []merkle.Hash{e.LeafHash()}),
		"batch-entry-id":         batch.ID[:],
		"signed-body":            EncodeSigned(&sb),
		"signing-context":        SigningContext(KindVote, sb.Body),
		"signed-id":              func() []byte { u := SignedID(EncodeSigned(&sb)); return u[:] }(),
		"token":                  []byte(token + "|" + op.ID + "|" + hex.EncodeToString(op.Hash)),
		"record-leaf":            func() []byte { h := e.LeafHash(); return h[:] }(),
	}
}

func TestGolden(t *testing.T) {
	for name, got := range goldens(t) {
		path := filepath.Join("testdata", name+".golden")
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run with -update once, for a new format)", name, err)
		}
		want, err := hex.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s = %x\nwant  %x\n(a change of format: old ledgers would not read back)", name, got, want)
		}
	}
}

// TestGoldenDecodes reads the golden bytes back.
func TestGoldenDecodes(t *testing.T) {
	g := goldens(t)
	p, err := DecodeRecordPayload(g["record-payload-v2"])
	if err != nil || p.Type != "purchase" || p.Version != 2 || !bytes.Equal(p.Box, []byte{1, 2, 3, 4}) {
		t.Fatalf("record payload: %+v, %v", p, err)
	}
	if p, err := DecodeRecordPayload(g["record-payload-v2-name"]); err != nil || p.Subject != "not a pseudonym" {
		t.Fatalf("record payload with a name: %+v, %v", p, err)
	}
	if p, err := DecodeRecordPayload(g["record-payload-v1-json"]); err != nil || p.Time != "2026-11-02T09:00:00Z" {
		t.Fatalf("JSON record payload: %+v, %v", p, err)
	}
	leaves, sig, err := DecodeBatch(g["batch-payload"])
	if err != nil || len(leaves) != 1 || len(sig) != ed25519.SignatureSize || !bytes.Equal(leaves[0][:], g["record-leaf"]) {
		t.Fatalf("batch: %d leaves, %d-byte signature, %v", len(leaves), len(sig), err)
	}
	if id, secret, ok := SplitToken(strings.Split(string(g["token"]), "|")[0]); !ok || id != "0102030405060708" || len(secret) != 43 {
		t.Fatalf("token: %q %q %v", id, secret, ok)
	}
}

// FuzzDecodeBatch: a batch payload decodes only as EncodeBatch writes it,
// and what decodes re-encodes to the same bytes.
func FuzzDecodeBatch(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	e := entry.Entry{ID: uuid.New(), Kind: KindRecord, Author: "coop-a", Time: time.Unix(0, 0), Payload: []byte{PayloadV2}}
	f.Add(SignBatch(key, "coop-a", []entry.Entry{e, e}).Payload)
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 0x80, 0x80, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		leaves, sig, err := DecodeBatch(b)
		if err != nil {
			return
		}
		again := BatchEntry("coop-a", time.Unix(0, 0), leaves, sig).Payload
		if !bytes.Equal(again, b) {
			// Only a leaf count written the long way may re-encode shorter.
			if l2, s2, err := DecodeBatch(again); err != nil || len(l2) != len(leaves) || !bytes.Equal(s2, sig) {
				t.Fatalf("batch %x decoded to %d leaves, re-encoded %x", b, len(leaves), again)
			}
		}
	})
}
