package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/uuid"
)

const goodID = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

func publishBody(record string) string { return `{"records":[` + record + `]}` }

func recordWith(subject string) string {
	return `{"id":"` + goodID + `","type":"purchase","subject":"` + subject + `","time":"2026-11-01T10:00:00Z"}`
}

// readers gives the same bytes whole, one byte a read, and in reads that
// split every multi-byte rune, so that a check across reads is exercised.
func readers(b []byte) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(b) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"halves":   func() io.Reader { return io.MultiReader(bytes.NewReader(b[:len(b)/2]), bytes.NewReader(b[len(b)/2:])) },
	}
}

// TestDecodeRefusesInvalidUTF8 checks that a body that is not UTF-8 is
// refused, naming the field the bytes are in, however the reads split it;
// and that valid multi-byte runes, U+FFFD written as such and surrogate
// pairs pass.
func TestDecodeRefusesInvalidUTF8(t *testing.T) {
	bad := []struct {
		name, body, field string
	}{
		{"0xff in a subject", publishBody(recordWith("anna\xff@coop.example")), "records[0].subject"},
		{"0xfe in a subject", publishBody(recordWith("anna\xfe@coop.example")), "records[0].subject"},
		{"in the second record", `{"records":[` + recordWith("anna") + `,` + recordWith("b\xc3") + `]}`, "records[1].subject"},
		{"truncated rune", publishBody(recordWith("zo\xc3")), "records[0].subject"},
		{"overlong encoding", publishBody(recordWith("\xc0\xaf")), "records[0].subject"},
		{"encoded surrogate", publishBody(recordWith("\xed\xa0\x80")), "records[0].subject"},
		{"beyond U+10FFFF", publishBody(recordWith("\xf4\x90\x80\x80")), "records[0].subject"},
		{"in a field value", "{\"records\":[{\"id\":\"" + goodID + "\",\"fields\":{\"shop\":\"caf\xe9\"}}]}", "records[0].fields.shop"},
		{"in a key", "{\"records\":[{\"su\xffbject\":\"anna\"}]}", "records[0]"},
		{"at the top", "\"\xff\"", "body"},
		{"after a member's value", "{\"records\":[]\xff}", "body"},
		{"after an element", "{\"records\":[{}\xff]}", "records"},
		{"in the second element", "{\"records\":[{\"id\":\"x\"},{\"subject\":\"\xff\"}]}", "records[1].subject"},
		{"cut at the end", "{\"records\":[\"\xe2\x82", "records[0]"},
		{"lone low surrogate escape", publishBody(recordWith(`anna\udc00`)), "records[0].subject"},
		{"lone high surrogate escape", publishBody(recordWith(`anna\ud800@x`)), "records[0].subject"},
		{"high surrogate then another escape", publishBody(recordWith(`anna\ud800\n`)), "records[0].subject"},
		{"two high surrogates", publishBody(recordWith(`\ud800\ud800`)), "records[0].subject"},
	}
	for _, tt := range bad {
		for how, r := range readers([]byte(tt.body)) {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				var req PublishRequest
				err := Decode(r(), &req)
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Field != tt.field || !strings.Contains(ve.Reason, "valid") {
					t.Fatalf("Decode = %v; want invalid %s, not valid UTF-8", err, tt.field)
				}
				if len(req.Records) != 0 {
					t.Errorf("decoded %d records from a body that is not UTF-8", len(req.Records))
				}
			})
		}
	}
	good := []string{"zoë", "日本語", "𝄞 clef", "\uFFFD", `\ud834\udd1e`, `caf\u00e9`}
	for _, s := range good {
		for how, r := range readers([]byte(publishBody(recordWith(s)))) {
			var req PublishRequest
			if err := Decode(r(), &req); err != nil || len(req.Records) != 1 {
				t.Errorf("%q (%s): %v", s, how, err)
			}
		}
	}
	// ValidText says the same of JSON that comes another way.
	for _, tt := range bad {
		if ValidText([]byte(tt.body)) {
			t.Errorf("ValidText(%s) = true", tt.name)
		}
	}
	for _, s := range good {
		if !ValidText([]byte(publishBody(recordWith(s)))) {
			t.Errorf("ValidText(%q) = false", s)
		}
	}
	// Stored entries are read as they were written.
	var v struct{ S string }
	if err := DecodeStored([]byte("{\"S\":\"a\xff\"}"), &v); err != nil || v.S != "a\uFFFD" {
		t.Errorf("DecodeStored = %q, %v", v.S, err)
	}
}

// TestDecodeNamesTheField checks that an error of encoding/json, which
// names no field (a UUID, a time) or no index, comes back naming the
// field's whole path, with a reason that does not repeat the value.
func TestDecodeNamesTheField(t *testing.T) {
	tests := []struct {
		name, body, field, reason string
	}{
		{"id not a uuid", `{"records":[{"id":"not-a-uuid"}]}`, "records[0].id", "not a UUID"},
		{"id a path", `{"records":[{"id":"../../keys.json"}]}`, "records[0].id", "not a UUID"},
		{"id with a zero-width space", `{"records":[{"id":"` + goodID + "\u200b" + `"}]}`, "records[0].id", "not a UUID"},
		{"id a number", `{"records":[{"id":7}]}`, "records[0].id", "not a UUID"},
		{"second record's time", `{"records":[` + recordWith("a") + `,{"time":"yesterday"}]}`, "records[1].time", "RFC 3339"},
		{"time a number", `{"records":[{"time":20261101}]}`, "records[0].time", "RFC 3339"},
		{"version a string", `{"records":[{"version":"1"}]}`, "records[0].version", "expected an integer"},
		{"version a fraction", `{"records":[{"version":1.5}]}`, "records[0].version", "expected an integer"},
		{"version zero", `{"records":[{"version":0}]}`, "records[0].version", "1 or more"},
		{"version negative", `{"records":[{"version":-2}]}`, "records[0].version", "1 or more"},
		{"unknown field in a record", `{"records":[{"colour":"red"}]}`, "records[0].colour", "unknown field"},
		{"unknown field at the top", `{"records":[],"extra":1}`, "extra", "unknown field"},
		{"records an object", `{"records":{}}`, "records", "expected an array"},
		{"a record a string", `{"records":["x"]}`, "records[0]", "expected an object"},
		{"fields an array", `{"records":[{"fields":[1]}]}`, "records[0].fields", "expected an object"},
		{"subject a number", `{"records":[{"subject":42}]}`, "records[0].subject", "expected a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req PublishRequest
			err := DecodeBytes([]byte(tt.body), &req)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field || !strings.Contains(ve.Reason, tt.reason) {
				t.Fatalf("DecodeBytes = %v; want invalid %s: %s", err, tt.field, tt.reason)
			}
			if strings.Contains(ve.Reason, "keys.json") || strings.Contains(ve.Reason, "yesterday") {
				t.Errorf("the reason repeats the value: %q", ve.Reason)
			}
		})
	}
	// Through a stream too.
	err := Decode(strings.NewReader(`{"records":[{"id":"not-a-uuid"}]}`), &PublishRequest{})
	if ve := (*ValidationError)(nil); !errors.As(err, &ve) || ve.Field != "records[0].id" {
		t.Errorf("Decode = %v", err)
	}
}

// TestRecordVersion checks that a version left out is 0 (the latest), one
// given is kept, and that the client's encoding leaves 0 out.
func TestRecordVersion(t *testing.T) {
	var r Record
	if err := DecodeBytes([]byte(recordWith("anna")), &r); err != nil || r.Version != 0 || r.ID.String() != goodID || r.Subject != "anna" {
		t.Fatalf("no version: %+v, %v", r, err)
	}
	if !r.Time.Equal(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("time %v", r.Time)
	}
	withV := strings.Replace(recordWith("anna"), `"type"`, `"version":3,"type"`, 1)
	if err := DecodeBytes([]byte(withV), &r); err != nil || r.Version != 3 {
		t.Fatalf("version 3: %+v, %v", r, err)
	}
	nullV := strings.Replace(recordWith("anna"), `"type"`, `"version":null,"type"`, 1)
	if err := DecodeBytes([]byte(nullV), &r); err != nil || r.Version != 0 {
		t.Fatalf("version null: %+v, %v", r, err)
	}
	b, _ := json.Marshal(PublishRequest{Records: []Record{{ID: uuid.New(), Type: "t", Subject: "s", Time: time.Now()}}})
	if bytes.Contains(b, []byte("version")) {
		t.Errorf("a record without a version encodes one: %s", b)
	}
	var back PublishRequest
	if err := DecodeBytes(b, &back); err != nil || back.Records[0].Version != 0 {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestCheckSubject(t *testing.T) {
	for _, s := range []string{"anna", "Anna Maria", "zoë", "anna\u200b", "\uFFFD", strings.Repeat("x", MaxSubjectLen)} {
		if err := CheckSubject(s); err != nil {
			t.Errorf("CheckSubject(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", " ", "\t\n ", "\u00a0", "\u3000", "anna\xff", strings.Repeat("x", MaxSubjectLen+1)} {
		var ve *ValidationError
		if err := CheckSubject(s); !errors.As(err, &ve) || ve.Field != "subject" {
			t.Errorf("CheckSubject(%q) = %v; want invalid subject", s, err)
		}
	}
}

// TestRecordJSONFields checks that the JSON form a record is decoded from
// has the fields of Record, by the same names.
func TestRecordJSONFields(t *testing.T) {
	got, want := jsonFields(reflect.TypeFor[recordJSON]()), jsonFields(reflect.TypeFor[Record]())
	if len(got) != len(want) {
		t.Fatalf("recordJSON has %d fields, Record %d", len(got), len(want))
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("recordJSON lacks %q", name)
		}
	}
	// And DecodePublish refuses what Decode refuses, naming the field.
	for _, body := range []string{`{"records":[{"version":0}]}`, `{"records":[{"id":"x"}]}`, "{\"records\":[{\"subject\":\"\xff\"}]}", `{"records":[],"x":1}`} {
		_, err := DecodePublish(strings.NewReader(body))
		err2 := Decode(strings.NewReader(body), &PublishRequest{})
		if err == nil || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Errorf("%q: DecodePublish %v, Decode %v", body, err, err2)
		}
	}
	if req, err := DecodePublish(strings.NewReader(`{"records":null}`)); err != nil || req.Records != nil {
		t.Errorf("records null: %+v, %v", req, err)
	}
}
