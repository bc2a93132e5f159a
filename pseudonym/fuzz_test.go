package pseudonym

import (
	"errors"
	"testing"
)

// FuzzCanonical checks that Canonical is idempotent, never panics, and
// that pseudonyms depend only on the canonical form.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"anna@example.org", "  A  B ", "ＡＢＣ", "e\u0301", "\xff", "ﬁ", "ΑΣ"} {
		f.Add(s)
	}
	k, err := NewKeyring(1, mustSecret(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Canonical(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Canonical(%q) error %v is not ErrInvalid", s, err)
			}
			return
		}
		c2, err := Canonical(c)
		if err != nil || c2 != c {
			t.Fatalf("Canonical is not idempotent: %q -> %q -> %q, %v", s, c, c2, err)
		}
		p1, err1 := k.Pseudonym(Federation, s)
		p2, err2 := k.Pseudonym(Federation, c)
		if err1 != nil || err2 != nil || p1 != p2 {
			t.Fatalf("pseudonyms of %q and its canonical form differ: %s %s %v %v", s, p1, p2, err1, err2)
		}
		if _, err := p1.KeyVersion(); err != nil {
			t.Fatalf("KeyVersion(%s): %v", p1, err)
		}
	})
}

func mustSecret(tb testing.TB) Secret {
	s, err := NewSecret()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
