package release

import (
	"math"
	"testing"
)

// TestLaplace checks the noise's scale: the mean absolute value of
// Laplace(0, b) is b.
func TestLaplace(t *testing.T) {
	const draws, scale = 40000, 2.0
	sum, pos := 0.0, 0
	for i := 0; i < draws; i++ {
		x := laplace(scale)
		sum += math.Abs(x)
		if x > 0 {
			pos++
		}
	}
	if mad := sum / draws; math.Abs(mad-scale) > 0.1 {
		t.Fatalf("mean absolute noise %.3f, want about %.1f", mad, scale)
	}
	if pos < draws*45/100 || pos > draws*55/100 {
		t.Fatalf("%d of %d draws positive", pos, draws)
	}
}
