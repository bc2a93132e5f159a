package pseudonym

import (
	"fmt"
	"testing"
)

// BenchmarkPseudonymiseAndSeal measures the privacy path per field, on one
// core: the pseudonym of an identifier in a member's domain, and the
// sealing of a 64-byte field value under a subject's data key. It reports
// fields/s (the target: at least 500,000 per core).
func BenchmarkPseudonymiseAndSeal(b *testing.B) {
	k, _ := NewKeyring(1, mustSecret(b))
	dataKey := mustSecret(b)
	value := []byte(`{"amount_eur":"12.50","shop":"Bologna centro, via Rizzoli 10/b"}`) // 64 bytes
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("member-%06d@coop-a.example.org", i)
	}
	d := MemberDomain("coop-a")
	i := 0
	for b.Loop() {
		p, err := k.Pseudonym(d, ids[i%len(ids)])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Seal(dataKey, value, []byte(p)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fields/s")
}

func BenchmarkPseudonym(b *testing.B) {
	k, _ := NewKeyring(1, mustSecret(b))
	d := MemberDomain("coop-a")
	for b.Loop() {
		if _, err := k.Pseudonym(d, "anna.rossi@example.org"); err != nil {
			b.Fatal(err)
		}
	}
}
