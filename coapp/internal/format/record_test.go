package format

import (
	"encoding/json"
	"fmt"
	"testing"

	"coapp.coop/pseudonym"
)

// TestRecordPayloadEncoding checks that the payload and fields written
// without reflection are byte for byte what encoding/json makes of them,
// so that the same record always makes the same entry.
func TestRecordPayloadEncoding(t *testing.T) {
	for _, p := range []RecordPayload{
		{Type: "purchase", Version: 1, Subject: "ps1.1.abc", Time: "2026-01-02T03:04:05.0000006Z"},
		{Type: "care-hours", Version: 12, Subject: pseudonym.Pseudonym("ps1.2.x<y>&\"z\""), Time: "2026-01-02T03:04:05Z", Box: []byte{0, 1, 2, 250, 251, 252, 253}},
	} {
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.EncodeJSON(); string(got) != string(want) {
			t.Errorf("encodeJSON\n %s\nwant\n %s", got, want)
		}
		// The binary form reads back to the same payload, less the time
		// (the entry's).
		back, err := DecodeRecordPayload(p.Encode())
		if err != nil {
			t.Fatal(err)
		}
		p.Time = ""
		if fmt.Sprint(back) != fmt.Sprint(p) {
			t.Errorf("binary round trip: %+v, want %+v", back, p)
		}
	}
	fields := map[string]json.RawMessage{"b": json.RawMessage(`2.50`), "a": QuoteJSON(`Zoë <z@x.it> & "co"`), "ü": QuoteJSON("€"), "t": json.RawMessage(`true`)}
	want, _ := json.Marshal(fields)
	if got := EncodeFields(fields); string(got) != string(want) {
		t.Errorf("encodeFields\n %s\nwant\n %s", got, want)
	}
}
