package coapp

import (
	"encoding/json"
	"testing"
)

// TestCanonicalJSON checks that values equal as JSON store the same bytes,
// whether or not they take the fast path.
func TestCanonicalJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{`12`, `12`},
		{`12.50`, `12.50`},
		{`-1e3`, `-1e3`},
		{`"plain text"`, `"plain text"`},
		{`true`, `true`},
		{`null`, `null`},
		{`"a\u0041"`, `"aA"`},
		{`"<b>"`, `"\u003cb\u003e"`},
		{`"caffè"`, `"caffè"`},
		{` { "b" : 1, "a" : [ 2, {"d":1,"c":2} ] } `, `{"a":[2,{"c":2,"d":1}],"b":1}`},
	}
	for _, tt := range tests {
		got, err := canonicalJSON(json.RawMessage(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("canonicalJSON(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{``, `{`, `12 13`, `"open`, `01x`, `tru`} {
		if _, err := canonicalJSON(json.RawMessage(bad)); err == nil {
			t.Errorf("canonicalJSON(%q) accepted invalid JSON", bad)
		}
	}
}
