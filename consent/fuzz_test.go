package consent

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzDecode feeds arbitrary ledger payloads to the decoder and, when they
// decode, to the index: each is refused with an *Error, or is an event the
// index accepts or refuses with an *Error, never a panic.
func FuzzDecode(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	rec := subjectRecord("ps1.1.fz", "coop-a", "dpv:Marketing")
	for _, e := range []*Event{
		{Record: rec.ID, Type: Given, At: t0, By: "subject", Consent: rec, Validity: &Validity{From: t0, Duration: "P6M"}},
		{Record: rec.ID, Type: Withdrawn, At: t0, By: "subject", Prev: Hash(nil)},
		{Record: rec.ID, Type: Renewed, At: t0, By: "coop-a", Prev: Hash(nil), Validity: &Validity{From: t0, Until: ptr(t0.Add(time.Hour))}},
	} {
		s, _ := Sign(e, "coop-a", key)
		f.Add(s.Encode())
	}
	f.Add([]byte(`{"event":{},"signer":"","sig":""}`))
	f.Add([]byte(`{"event":{"record":"00000000-0000-0000-0000-000000000000"}}`))
	f.Add([]byte(`not json`))
	vocab := NewVocabulary()
	f.Fuzz(func(t *testing.T, payload []byte) {
		s, e, err := Decode(payload, vocab)
		var ce *Error
		if err != nil {
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			return
		}
		if _, err := json.Marshal(e); err != nil {
			t.Fatalf("a decoded event does not encode: %v", err)
		}
		x := NewIndex(vocab)
		if err := x.Apply(1, s.Signer, &e, s.Event); err != nil && !errors.As(err, &ce) {
			t.Fatalf("apply error %v (%T) is not an *Error", err, err)
		}
		d := x.Allowed("ps1.1.fz", "dpv:DirectMarketing", t0, Latest)
		_ = d.Reason.String()
	})
}
