package release

import (
	"encoding/json"
	"testing"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
)

// TestExportRowEncoding checks that export rows written without
// reflection are byte for byte what encoding/json makes of them.
func TestExportRowEncoding(t *testing.T) {
	for _, r := range []Row{
		{Subject: "ps1.1.abc", Member: "coop-a", Type: "purchase", Date: "2026-11-02", Fields: map[string]json.RawMessage{}},
		{Subject: "ps1.1.x", Member: "coop <b> & c", Type: "care-hours", Date: "2026-01-02",
			Fields: map[string]json.RawMessage{"z": json.RawMessage(`12.50`), "a": format.QuoteJSON(`A&B "shop"`), "ü": format.QuoteJSON("€"), "n": json.RawMessage(`null`)}},
	} {
		want, err := json.Marshal(api.ExportRow(r))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := (jsonlWriter{}).AppendRow(nil, &r); string(got) != string(want)+"\n" {
			t.Errorf("appendJSON\n %s\nwant\n %s", got, want)
		}
	}
}
