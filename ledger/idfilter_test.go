package ledger

import (
	"testing"

	"github.com/google/uuid"
)

// TestIDFilterNeverForgets checks the property correctness rests on: every
// id added is reported as maybe present, across layers; and that the filter
// is useful: most ids never added are reported absent.
func TestIDFilterNeverForgets(t *testing.T) {
	f := newIDFilter()
	var added []uuid.UUID
	for i := 0; i < 3*filterFirstLimit; i++ { // spans two layers
		id := uuid.New()
		f.add(id)
		added = append(added, id)
	}
	if len(f.layers) < 2 {
		t.Fatalf("%d layers after %d ids, want growth", len(f.layers), len(added))
	}
	for _, id := range added {
		if !f.mayContain(id) {
			t.Fatalf("added id %s reported absent", id)
		}
	}
	false_ := 0
	const probes = 100000
	for i := 0; i < probes; i++ {
		if f.mayContain(uuid.New()) {
			false_++
		}
	}
	if rate := float64(false_) / probes; rate > 0.05 {
		t.Errorf("false positive rate %.3f, want under 0.05", rate)
	}
}
