package pseudonym

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

type vector struct {
	SecretHex  string `json:"secret_hex"`
	Version    uint32 `json:"version"`
	Domain     string `json:"domain"`
	Identifier string `json:"identifier"`
	Canonical  string `json:"canonical"`
	Pseudonym  string `json:"pseudonym"`
}

// TestVectors checks the pseudonyms against vectors computed by an
// independent implementation (testdata/vectors.json says how), so that
// other implementations can check themselves against the same file.
func TestVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Vectors []vector }
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) < 40 {
		t.Fatalf("only %d vectors", len(file.Vectors))
	}
	for _, v := range file.Vectors {
		raw, _ := hex.DecodeString(v.SecretHex)
		s, err := SecretFromBytes(raw)
		if err != nil {
			t.Fatal(err)
		}
		k, err := NewKeyring(v.Version, s)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Canonical(v.Identifier)
		if err != nil || c != v.Canonical {
			t.Errorf("Canonical(%q) = %q, %v; want %q", v.Identifier, c, err, v.Canonical)
		}
		p, err := k.Pseudonym(Domain(v.Domain), v.Identifier)
		if err != nil || string(p) != v.Pseudonym {
			t.Errorf("Pseudonym(%s, %q) v%d = %s, %v; want %s", v.Domain, v.Identifier, v.Version, p, err, v.Pseudonym)
		}
	}
}

func testKeyring(t testing.TB) *Keyring {
	t.Helper()
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKeyring(1, s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"anna@example.org", "anna@example.org"},
		{"  ANNA@Example.ORG\t", "anna@example.org"},
		{"Anna   Maria\n Rossi", "anna maria rossi"},
		{"ＡＢＣ", "abc"},   // full-width forms (NFKC)
		{"e\u0301", "é"}, // combining accent composed (NFKC)
		{"ﬁle", "file"},  // ligature
		{"Zoë", "zoë"},
	}
	for _, tt := range tests {
		got, err := Canonical(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "   ", "\xff\xfe", strings.Repeat("x", 1025)} {
		if _, err := Canonical(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Canonical(%q) error = %v, want ErrInvalid", bad, err)
		}
	}
}

// TestUnlinkable checks that one identifier gets unrelated pseudonyms in
// different domains and under different secrets, and equal ones for equal
// canonical forms.
func TestUnlinkable(t *testing.T) {
	k := testKeyring(t)
	other := testKeyring(t)
	id := "anna.rossi@example.org"
	seen := map[Pseudonym]string{}
	for _, d := range []Domain{MemberDomain("coop-a"), MemberDomain("coop-b"), Federation, DatasetDomain("study")} {
		p, err := k.Pseudonym(d, id)
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[p]; dup {
			t.Errorf("domains %s and %s give the same pseudonym", prev, d)
		}
		seen[p] = string(d)
		q, _ := other.Pseudonym(d, id)
		if p == q {
			t.Errorf("two secrets give the same pseudonym in %s", d)
		}
		same, _ := k.Pseudonym(d, "  ANNA.ROSSI@example.org")
		if same != p {
			t.Errorf("spellings of one identifier differ in %s: %s, %s", d, p, same)
		}
		if !strings.HasPrefix(string(p), "ps1.1.") || len(p) != len("ps1.1.")+43 {
			t.Errorf("pseudonym %q has the wrong form", p)
		}
	}
	// Over many identifiers, the pseudonyms of two domains share no
	// structure an attacker could join on: no collisions, and the first
	// bytes agree no more often than chance.
	a, b := MemberDomain("coop-a"), MemberDomain("coop-b")
	agree := 0
	for i := 0; i < 2000; i++ {
		id := fmt.Sprintf("member-%d", i)
		pa, _ := k.Pseudonym(a, id)
		pb, _ := k.Pseudonym(b, id)
		if pa[6] == pb[6] {
			agree++
		}
	}
	if agree > 2000/64*3 {
		t.Errorf("first characters agree %d times in 2000, chance is about 31", agree)
	}
}

func TestRotation(t *testing.T) {
	k := testKeyring(t)
	d := MemberDomain("coop-a")
	old, _ := k.Pseudonym(d, "anna")
	s2, _ := NewSecret()
	if err := k.Rotate(2, s2); err != nil {
		t.Fatal(err)
	}
	cur, _ := k.Pseudonym(d, "anna")
	if cur == old || !strings.HasPrefix(string(cur), "ps1.2.") {
		t.Fatalf("after rotation: %s (before %s)", cur, old)
	}
	all, err := k.All(d, "anna")
	if err != nil || len(all) != 2 || all[0] != cur || all[1] != old {
		t.Fatalf("All = %v, %v; want [%s %s]", all, err, cur, old)
	}
	for _, p := range []Pseudonym{old, cur} {
		if ok, err := k.Matches(p, d, "ANNA"); !ok || err != nil {
			t.Errorf("Matches(%s) = %v, %v during the rotation window", p, ok, err)
		}
	}
	if err := k.Retire(1); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Matches(old, d, "anna"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Matches of a retired version = %v, want ErrUnknownKey", err)
	}
	if err := k.Retire(2); !errors.Is(err, ErrInvalid) {
		t.Errorf("Retire(current) = %v, want ErrInvalid", err)
	}
	if err := k.Rotate(2, s2); !errors.Is(err, ErrInvalid) {
		t.Errorf("Rotate to an old version = %v, want ErrInvalid", err)
	}
}

func TestSecretRedacts(t *testing.T) {
	s, _ := NewSecret()
	raw := hex.EncodeToString(s.bytes())
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %x %q", s, s, s, s, s, s), fmt.Sprintf("%v", struct{ K Secret }{s})} {
		if strings.Contains(out, raw) || strings.Contains(strings.ToLower(out), raw[:16]) || !strings.Contains(out, "REDACTED") {
			t.Errorf("printing a secret shows %q", out)
		}
	}
	if _, err := json.Marshal(struct{ K Secret }{s}); err == nil {
		t.Error("a secret marshalled to JSON")
	}
	if _, err := SecretFromBytes(make([]byte, 31)); !errors.Is(err, ErrInvalid) {
		t.Errorf("SecretFromBytes(31 bytes) = %v", err)
	}
	if _, err := NewKeyring(1, Secret{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewKeyring(zero secret) = %v", err)
	}
}

func TestSealAndWrap(t *testing.T) {
	k := testKeyring(t)
	dataKey, _ := NewSecret()
	ad := []byte("ps1.1.subject")
	sealed, err := Seal(dataKey, []byte("fields of a record"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := Open(dataKey, sealed, ad); err != nil || string(pt) != "fields of a record" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	other, _ := NewSecret()
	for name, try := range map[string]func() error{
		"wrong key": func() error { _, err := Open(other, sealed, ad); return err },
		"wrong AD":  func() error { _, err := Open(dataKey, sealed, []byte("other")); return err },
		"flipped byte": func() error {
			b := append([]byte(nil), sealed...)
			b[30] ^= 1
			_, err := Open(dataKey, b, ad)
			return err
		},
		"truncated": func() error { _, err := Open(dataKey, sealed[:10], ad); return err },
	} {
		if err := try(); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", name, err)
		}
	}
	wrapped, err := k.WrapKey(dataKey, ad)
	if err != nil {
		t.Fatal(err)
	}
	back, err := k.UnwrapKey(wrapped, ad)
	if err != nil || !back.Equal(dataKey) {
		t.Fatalf("UnwrapKey = %v, %v", back, err)
	}
	if _, err := k.UnwrapKey(wrapped, []byte("another subject")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("unwrap with another AD = %v", err)
	}
	if _, err := testKeyring(t).UnwrapKey(wrapped, ad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("unwrap under another federation's secret = %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	argonTime, argonMemoryKiB, argonThreads = 1, 1024, 1 // fast for tests
	k := testKeyring(t)
	s2, _ := NewSecret()
	if err := k.Rotate(2, s2); err != nil {
		t.Fatal(err)
	}
	want, _ := k.Pseudonym(Federation, "anna")
	wantOld, _ := k.PseudonymAt(1, Federation, "anna")
	dir := t.TempDir()
	for _, pass := range []string{"", "correct horse battery staple"} {
		path := filepath.Join(dir, "keys-"+fmt.Sprint(len(pass)))
		if err := WriteKeyFile(path, k, []byte(pass)); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
		}
		back, err := ReadKeyFile(path, []byte(pass))
		if err != nil {
			t.Fatalf("ReadKeyFile (passphrase %q): %v", pass, err)
		}
		got, _ := back.Pseudonym(Federation, "anna")
		gotOld, _ := back.PseudonymAt(1, Federation, "anna")
		if got != want || gotOld != wantOld || back.Current() != 2 {
			t.Errorf("key file round trip changed the keyring")
		}
		data, _ := os.ReadFile(path)
		if pass != "" {
			if strings.Contains(string(data), s2.encoded()) {
				t.Error("a sealed key file holds the secret in clear")
			}
			if _, err := ReadKeyFile(path, []byte("wrong")); !errors.Is(err, ErrDecrypt) {
				t.Errorf("wrong passphrase: %v, want ErrDecrypt", err)
			}
			if _, err := ReadKeyFile(path, nil); !errors.Is(err, ErrDecrypt) {
				t.Errorf("no passphrase for a sealed file: %v, want ErrDecrypt", err)
			}
			tampered := strings.Replace(string(data), `"box": "`, `"box": "AAAA`, 1)
			os.WriteFile(path, []byte(tampered), 0o600)
			if _, err := ReadKeyFile(path, []byte(pass)); err == nil {
				t.Error("a tampered sealed key file was read")
			}
		}
	}
	bad := filepath.Join(dir, "bad")
	for _, content := range []string{`{}`, `not json`, `{"format":"coapp-keyfile/v1","current":3,"keys":[{"version":1,"secret":"AAAA"}]}`} {
		os.WriteFile(bad, []byte(content), 0o600)
		if _, err := ReadKeyFile(bad, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("ReadKeyFile(%s) = %v, want ErrInvalid", content, err)
		}
	}
}

func TestGeneralise(t *testing.T) {
	at := time.Date(2026, 11, 24, 23, 30, 0, 0, time.FixedZone("CET", 3600))
	dates := map[Unit]string{Day: "2026-11-24", Week: "2026-W48", Month: "2026-11", Year: "2026"}
	for u, want := range dates {
		if got, err := GeneraliseDate(at, u); err != nil || got != want {
			t.Errorf("GeneraliseDate(%v, %d) = %q, %v; want %q", at, u, got, err, want)
		}
	}
	nums := []struct {
		x, w float64
		want string
	}{{37.5, 10, "[30,40)"}, {-3, 10, "[-10,0)"}, {0, 5, "[0,5)"}, {1234, 1000, "[1000,2000)"}}
	for _, n := range nums {
		if got, err := GeneraliseNumber(n.x, n.w); err != nil || got != n.want {
			t.Errorf("GeneraliseNumber(%g, %g) = %q, %v; want %q", n.x, n.w, got, err, n.want)
		}
	}
	ages := map[[2]int]string{{37, 10}: "30-39", {0, 5}: "0-4", {89, 10}: "80-89", {95, 10}: "90+", {88, 20}: "80-89"}
	for in, want := range ages {
		if got, err := AgeBand(in[0], in[1]); err != nil || got != want {
			t.Errorf("AgeBand(%d, %d) = %q, %v; want %q", in[0], in[1], got, err, want)
		}
	}
	pcs := map[string]string{"40126": "401*", "sw1a 1aa": "SW1*", "12": "12"}
	for in, want := range pcs {
		if got, err := GeneralisePostcode(in, 3); err != nil || got != want {
			t.Errorf("GeneralisePostcode(%q, 3) = %q, %v; want %q", in, got, err, want)
		}
	}
	for name, err := range map[string]error{
		"unit":     func() error { _, e := GeneraliseDate(at, Unit(9)); return e }(),
		"width":    func() error { _, e := GeneraliseNumber(1, 0); return e }(),
		"nan":      func() error { _, e := GeneraliseNumber(nan(), 1); return e }(),
		"age":      func() error { _, e := AgeBand(-1, 10); return e }(),
		"band":     func() error { _, e := AgeBand(30, 0); return e }(),
		"postcode": func() error { _, e := GeneralisePostcode("  ", 2); return e }(),
	} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func nan() float64 { var z float64; return z / z }

func TestSealDeterministic(t *testing.T) {
	key := mustSecret(t)
	a, _ := SealDeterministic(key, []byte("fields"), []byte("record 1"))
	b, _ := SealDeterministic(key, []byte("fields"), []byte("record 1"))
	c, _ := SealDeterministic(key, []byte("fields"), []byte("record 2"))
	d, _ := SealDeterministic(key, []byte("other fields"), []byte("record 1"))
	if string(a) != string(b) {
		t.Error("the same input sealed twice differs")
	}
	if string(a[:24]) == string(c[:24]) || string(a[:24]) == string(d[:24]) {
		t.Error("different inputs share a nonce")
	}
	if pt, err := Open(key, a, []byte("record 1")); err != nil || string(pt) != "fields" {
		t.Errorf("Open = %q, %v", pt, err)
	}
	if _, err := Open(key, a, []byte("record 2")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open with another record's data = %v", err)
	}
}

// TestCanonicalCollisions shows when two different identifiers get one
// pseudonym: exactly when Canonical's documented rules (NFKC, lower case,
// white space) make them one, and never otherwise. Each pair is checked
// through Canonical and through the pseudonyms of a keyring.
func TestCanonicalCollisions(t *testing.T) {
	k := testKeyring(t)
	d := MemberDomain("coop-a")
	same := []struct{ a, b, rule string }{
		{"Anna", "anna", "lower case"},
		{"ANNA@COOP.EXAMPLE", "anna@coop.example", "lower case"},
		{"\u0130", "i", "lower case (simple mapping of the dotted capital I)"},
		{"  anna ", "anna", "white space trimmed"},
		{"anna \t\n maria", "anna maria", "white space folded"},
		{"anna\u00a0maria", "anna maria", "no-break space (NFKC, white space)"},
		{"anna\u3000maria", "anna maria", "ideographic space (white space)"},
		{"anna\u2028maria", "anna maria", "line separator (white space)"},
		{"anna\u0085maria", "anna maria", "next line (white space)"},
		{"ＡＮＮＡ", "anna", "full-width forms (NFKC)"},
		{"e\u0301", "\u00e9", "decomposed accent (NFKC)"},
		{"\ufb01le", "file", "ligature (NFKC)"},
		{"\u212a", "k", "Kelvin sign (NFKC)"},
		{"\u2126", "\u03c9", "Ohm sign (NFKC, lower case)"},
		{"\u2460", "1", "circled digit (NFKC)"},
	}
	for _, p := range same {
		ca, erra := Canonical(p.a)
		cb, errb := Canonical(p.b)
		if erra != nil || errb != nil || ca != cb {
			t.Errorf("%q and %q (%s): canonical %q and %q (%v, %v); want one", p.a, p.b, p.rule, ca, cb, erra, errb)
		}
		pa, _ := k.Pseudonym(d, p.a)
		pb, _ := k.Pseudonym(d, p.b)
		if pa != pb || pa == "" {
			t.Errorf("%q and %q (%s): pseudonyms %s and %s; want one", p.a, p.b, p.rule, pa, pb)
		}
	}
	apart := []struct{ a, b, why string }{
		{"anna\u200b", "anna", "zero-width space: a format character, not white space; NFKC keeps it"},
		{"an\u00adna", "anna", "soft hyphen: kept by NFKC"},
		{"anna\u200d", "anna", "zero-width joiner: kept by NFKC"},
		{"anna\ufeff", "anna", "zero-width no-break space (BOM): kept by NFKC"},
		{"anna\u180emaria", "anna maria", "Mongolian vowel separator: not white space since Unicode 6.3"},
		{"anna\ufffd@coop.example", "anna@coop.example", "U+FFFD is a character"},
		{"anna\ufffd", "anna?", "U+FFFD is not a question mark"},
		{"\ufffd", "\ufffd\ufffd", "U+FFFD is not collapsed like white space"},
		{"stra\u00dfe", "strasse", "case is mapped, not folded: ß stays"},
		{"\u03c2", "\u03c3", "final sigma stays"},
		{"\u0131", "i", "dotless i stays"},
		{"anna maria", "annamaria", "inner white space is kept, as one space"},
		{"anna.rossi", "annarossi", "punctuation is kept"},
		{"anna\x00", "anna", "a NUL is a character"},
	}
	for _, p := range apart {
		ca, erra := Canonical(p.a)
		cb, errb := Canonical(p.b)
		if erra != nil || errb != nil || ca == cb {
			t.Errorf("%q and %q (%s): canonical %q and %q (%v, %v); want two", p.a, p.b, p.why, ca, cb, erra, errb)
		}
		pa, _ := k.Pseudonym(d, p.a)
		pb, _ := k.Pseudonym(d, p.b)
		if pa == pb {
			t.Errorf("%q and %q (%s): one pseudonym %s; want two", p.a, p.b, p.why, pa)
		}
	}
	// Bytes that are not UTF-8 are refused, never replaced: the two
	// identifiers the tester found collapsing cannot be pseudonymised,
	// and neither becomes "anna\ufffd@coop.example".
	for _, id := range []string{"anna\xff@coop.example", "anna\xfe@coop.example", "anna\xc3", "\xed\xa0\x80"} {
		if _, err := Canonical(id); !errors.Is(err, ErrInvalid) {
			t.Errorf("Canonical(%q) = %v; want ErrInvalid", id, err)
		}
		if p, err := k.Pseudonym(d, id); !errors.Is(err, ErrInvalid) || p != "" {
			t.Errorf("Pseudonym(%q) = %s, %v; want ErrInvalid", id, p, err)
		}
	}
}

// TestCanonicalIdempotent checks, over every code point between two
// letters, that a canonical form is its own canonical form: an identifier
// and its canonical form never get two pseudonyms.
func TestCanonicalIdempotent(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		c, err := Canonical("a" + string(r) + "b")
		if err != nil {
			t.Fatalf("Canonical(%U): %v", r, err)
		}
		if c2, err := Canonical(c); err != nil || c2 != c {
			t.Errorf("%U: canonical %q, then %q (%v)", r, c, c2, err)
		}
	}
}

// TestCanonicalASCIIPath checks that the ASCII fast path gives what the
// Unicode path gives, for every pair of ASCII characters in context.
func TestCanonicalASCIIPath(t *testing.T) {
	for a := 0; a < utf8.RuneSelf; a++ {
		for b := 0; b < utf8.RuneSelf; b++ {
			for _, s := range []string{string([]byte{byte(a), byte(b)}), " X" + string([]byte{byte(a), byte(b)}) + "y\t"} {
				fa, erra := canonicalASCII(s)
				fu, erru := canonicalUnicode(s)
				if fa != fu || (erra == nil) != (erru == nil) {
					t.Fatalf("%q: ASCII path %q, %v; Unicode path %q, %v", s, fa, erra, fu, erru)
				}
			}
		}
	}
}
