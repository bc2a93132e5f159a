package api

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestValidateAsDocumented checks values that docs/openapi.json puts out
// of range, pattern or enumeration, which the Validate methods let
// through before: each is refused, naming its field.
func TestValidateAsDocumented(t *testing.T) {
	field := func(name, kind string, p Policy) Schema {
		return Schema{Type: "t", Version: 1, Fields: []Field{{Name: name, Kind: kind, Class: "attribute", Policy: p}}}
	}
	dataset := func(tr Transform) *Proposal {
		return &Proposal{ID: uuid.New(), At: time.Now(), Kind: ProposeDataset, Dataset: &Dataset{
			Name: "d", Purpose: "dpv:Marketing", Category: "pd:Purchase", K: 1,
			Types: []DatasetType{{Type: "t", Fields: []string{"a"}, Transforms: map[string]Transform{"a": tr}}},
		}}
	}
	tests := []struct {
		name, field string
		err         error
	}{
		{"policy domain on keep", "fields[0].policy.domain", func() error { s := field("a", "string", Policy{Action: "keep", Domain: "galaxy"}); return s.Validate() }()},
		{"policy unit on keep", "fields[0].policy.unit", func() error { s := field("a", "date", Policy{Action: "keep", Unit: "fortnight"}); return s.Validate() }()},
		{"policy width negative on keep", "fields[0].policy.width", func() error { s := field("a", "decimal", Policy{Action: "keep", Width: -1}); return s.Validate() }()},
		{"policy keep negative on drop", "fields[0].policy.keep", func() error { s := field("a", "postcode", Policy{Action: "drop", Keep: -1}); return s.Validate() }()},
		{"token member with a space", "member", (&TokenRequest{Member: "coop b"}).Validate()},
		{"token member upper case", "member", (&TokenRequest{Member: "Coop-B"}).Validate()},
		{"token member empty", "member", (&TokenRequest{}).Validate()},
		{"export without purpose", "purpose", (&ExportRequest{}).Validate()},
		{"aggregate without purpose", "purpose", (&AggregateRequest{Op: "count"}).Validate(&DatasetInfo{})},
		{"transform width negative on drop", "dataset.types[0].transforms.a.width", dataset(Transform{Action: "drop", Width: -1}).ValidateRequest()},
		{"transform keep negative", "dataset.types[0].transforms.a.keep", dataset(Transform{Action: "generalise", Width: 10, Keep: -2}).ValidateRequest()},
	}
	for _, tt := range tests {
		var ve *ValidationError
		if !errors.As(tt.err, &ve) || ve.Field != tt.field {
			t.Errorf("%s: %v; want invalid %s", tt.name, tt.err, tt.field)
		}
	}
	// What the document allows still passes.
	ok := field("a", "decimal", Policy{Action: "generalise", Width: 10})
	if err := ok.Validate(); err != nil {
		t.Errorf("a generalised decimal: %v", err)
	}
	if err := (&TokenRequest{Member: "coop-b.2"}).Validate(); err != nil {
		t.Errorf("token for coop-b.2: %v", err)
	}
	if err := dataset(Transform{Action: "generalise", Keep: 3}).ValidateRequest(); err != nil {
		t.Errorf("a transform keeping 3: %v", err)
	}
}
