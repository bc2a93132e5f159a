package entry

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/ledger/merkle"
)

// golden holds fixed entries with their canonical encodings and leaf
// hashes, written out so that a change of the format, which would change
// every stored leaf hash, fails here.
var golden = []struct {
	name string
	e    Entry
	enc  string // hex
	leaf string // hex
}{
	{
		name: "record",
		e: Entry{
			ID:   uuid.MustParse("0193a5b2-7c4e-7d1a-8f3b-2c9e4d6a1f08"),
			Kind: "coapp.record/v1", Author: "coop-a",
			Time:    time.Date(2026, 11, 24, 12, 0, 0, 7, time.UTC),
			Payload: []byte("hello"),
		},
		enc: "01" + // version
			"0193a5b27c4e7d1a8f3b2c9e4d6a1f08" + // id
			"18eaf961d28a8007" + // time, Unix ns
			"0f" + "636f6170702e7265636f72642f7631" + // kind
			"06" + "636f6f702d61" + // author
			"05" + "68656c6c6f", // payload
		leaf: "a54c67897c174d37d758b7199d86cad870b47791d2988ae587e7546b7efe7a68",
	},
	{
		name: "nil id, Unix epoch, no payload",
		e:    Entry{Kind: "k", Author: "a", Time: time.Unix(0, 0).UTC()},
		enc: "01" +
			"00000000000000000000000000000000" +
			"0000000000000000" +
			"01" + "6b" +
			"01" + "61" +
			"00",
		leaf: "6201f9564608edb66e6c243aedbac4218bfbd384b55f61bf1f66bc0564097b16",
	},
	{
		name: "max id, before 1970, two-byte payload length",
		e: Entry{
			ID: uuid.Max, Kind: "x/y", Author: "ä",
			Time:    time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
			Payload: bytes.Repeat([]byte{0x2a}, 200),
		},
		enc: "01" +
			"ffffffffffffffffffffffffffffffff" +
			"e1581863df2f0000" + // negative, two's complement
			"03" + "782f79" +
			"02" + "c3a4" +
			"c801" + strings.Repeat("2a", 200),
		leaf: "985e424ad7cb38027ca8f08f6e2c3e44bbbb491f594e7c6dc7e5e3a6b2afb559",
	},
}

// refused holds encodings Decode must refuse, each a small change of the
// first golden encoding.
var refused = []struct {
	name string
	enc  string // hex
}{
	{"empty", ""},
	{"short", "010203"},
	{"header only", "01" + strings.Repeat("00", 24) + "0000"},
	{"version 2", "02" + golden[0].enc[2:]},
	{"version 0", "00" + golden[0].enc[2:]},
	{"payload cut short", golden[0].enc[:len(golden[0].enc)-2]},
	{"trailing byte", golden[0].enc + "00"},
	{"kind length not minimal", golden[1].enc[:50] + "8100" + golden[1].enc[52:]},
	{"payload length not minimal", golden[1].enc[:len(golden[1].enc)-2] + "8000"},
	{"kind longer than 64", "01" + strings.Repeat("00", 24) + "41" + strings.Repeat("6b", 65) + "0161" + "00"},
	{"author longer than 256", "01" + strings.Repeat("00", 24) + "016b" + "8102" + strings.Repeat("61", 257) + "00"},
	{"payload length beyond the end", "01" + strings.Repeat("00", 24) + "016b" + "0161" + "05" + "68656c6c"},
}

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("bad hex in the test: %v", err)
	}
	return b
}

// same reports whether a and b are the same entry: every field equal, the
// payloads byte for byte (nil and empty alike).
func same(a, b Entry) bool {
	return a.Index == b.Index && a.ID == b.ID && a.Kind == b.Kind && a.Author == b.Author &&
		a.Time == b.Time && bytes.Equal(a.Payload, b.Payload)
}

func TestGolden(t *testing.T) {
	for _, tt := range golden {
		t.Run(tt.name, func(t *testing.T) {
			want := mustHex(t, tt.enc)
			if got := tt.e.Encode(); !bytes.Equal(got, want) {
				t.Errorf("Encode =\n%x\nwant\n%x", got, want)
			}
			prefix := []byte("prefix")
			if got := tt.e.AppendEncode(prefix); !bytes.Equal(got, append(prefix, want...)) {
				t.Errorf("AppendEncode(prefix) = %x, want prefix then the encoding", got)
			}
			leaf := tt.e.LeafHash()
			if got := hex.EncodeToString(leaf[:]); got != tt.leaf {
				t.Errorf("LeafHash = %s, want %s", got, tt.leaf)
			}
			if leaf != merkle.LeafHash(want) {
				t.Errorf("LeafHash is not merkle.LeafHash of the encoding")
			}
			d, ok := Decode(want)
			if !ok || !same(d, tt.e) {
				t.Errorf("Decode = %+v, %v; want %+v", d, ok, tt.e)
			}
			kind, author, payload, ok := Split(want)
			if !ok || string(kind) != tt.e.Kind || string(author) != tt.e.Author || !bytes.Equal(payload, tt.e.Payload) {
				t.Errorf("Split = %q, %q, %x, %v", kind, author, payload, ok)
			}
			if got := ID(want); got != tt.e.ID {
				t.Errorf("ID = %v, want %v", got, tt.e.ID)
			}
			if field, reason, ok := tt.e.Validate(1 << 20); !ok {
				t.Errorf("Validate: %s: %s", field, reason)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, tt := range refused {
		b := mustHex(t, tt.enc)
		if e, ok := Decode(b); ok {
			t.Errorf("%s: Decode(%x) = %+v, want refused", tt.name, b, e)
		}
		if _, _, _, ok := Split(b); ok {
			t.Errorf("%s: Split(%x) accepted it", tt.name, b)
		}
	}
}

func TestDecodeAliases(t *testing.T) {
	b := mustHex(t, golden[0].enc)
	e, _ := Decode(b)
	b[len(b)-1] = 'O'
	if string(e.Payload) != "hellO" {
		t.Errorf("Payload = %q after changing the input, want it to alias the input", e.Payload)
	}
}

func TestSplitDoesNotAllocate(t *testing.T) {
	b := mustHex(t, golden[2].enc)
	if n := testing.AllocsPerRun(100, func() { Split(b) }); n != 0 {
		t.Errorf("Split allocates %v times, want 0", n)
	}
}

func TestValidate(t *testing.T) {
	const maxPayload = 10
	with := func(f func(*Entry)) Entry { e := golden[0].e; f(&e); return e }
	tests := []struct {
		name          string
		e             Entry
		field, reason string
	}{
		{"empty kind", with(func(e *Entry) { e.Kind = "" }), "kind", "empty"},
		{"kind too long", with(func(e *Entry) { e.Kind = strings.Repeat("k", 65) }), "kind", "longer than 64 characters"},
		{"kind with a space", with(func(e *Entry) { e.Kind = "a b" }), "kind", "characters outside [A-Za-z0-9._:/-]"},
		{"empty author", with(func(e *Entry) { e.Author = "" }), "author", "empty"},
		{"author too long", with(func(e *Entry) { e.Author = strings.Repeat("a", 257) }), "author", "longer than 256 bytes"},
		{"author not UTF-8", with(func(e *Entry) { e.Author = "\xff" }), "author", "not UTF-8"},
		{"payload too large", with(func(e *Entry) { e.Payload = make([]byte, maxPayload+1) }), "payload", ReasonTooLarge},
		{"time before 1678", with(func(e *Entry) { e.Time = time.Date(1677, 12, 31, 0, 0, 0, 0, time.UTC) }), "time", "outside the years 1678 to 2261"},
		{"time after 2261", with(func(e *Entry) { e.Time = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC) }), "time", "outside the years 1678 to 2261"},
		{"zero time", with(func(e *Entry) { e.Time = time.Time{} }), "time", "outside the years 1678 to 2261"},
		{"longest kind and author, largest payload", with(func(e *Entry) {
			e.Kind = strings.Repeat("k", 64)
			e.Author = strings.Repeat("ä", 128)
			e.Payload = make([]byte, maxPayload)
		}), "", ""},
		{"nil id", with(func(e *Entry) { e.ID = uuid.Nil }), "", ""},
	}
	for _, tt := range tests {
		field, reason, ok := tt.e.Validate(maxPayload)
		if field != tt.field || reason != tt.reason || ok != (tt.field == "") {
			t.Errorf("%s: Validate = %q, %q, %v; want %q, %q", tt.name, field, reason, ok, tt.field, tt.reason)
		}
	}
}

// FuzzDecode checks both directions of the encoding. Any b that Decode
// accepts re-encodes to exactly b (the encoding is canonical, so one entry
// has one leaf hash), and Split agrees with Decode. An entry built from the
// other arguments survives Decode(Encode(e)) unchanged, unless its kind or
// author is over the limit, which Decode must then refuse.
func FuzzDecode(f *testing.F) {
	add := func(b []byte, e Entry) {
		f.Add(b, e.ID[:], e.Time.UnixNano(), e.Kind, e.Author, e.Payload)
	}
	for _, tt := range golden {
		add(mustHex(f, tt.enc), tt.e)
	}
	for _, tt := range refused {
		add(mustHex(f, tt.enc), golden[0].e)
	}
	// FuzzDecodeEntry's seeds, when it lived in package ledger.
	for i := 0; i < 4; i++ {
		e := Entry{
			ID:      uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("entry-%d", i))),
			Kind:    "test.record/v1",
			Author:  "coop-a",
			Time:    time.Date(2026, 11, 24, 12, 0, 0, i, time.UTC),
			Payload: []byte(fmt.Sprintf("payload %d", i)),
		}
		add(e.Encode(), e)
	}
	maxID := Entry{ID: uuid.Max, Kind: "k", Author: "a", Time: time.Unix(0, 0).UTC()}
	add(maxID.Encode(), maxID)
	add([]byte{1, 2, 3}, Entry{})

	f.Fuzz(func(t *testing.T, b []byte, id []byte, unixNano int64, kind, author string, payload []byte) {
		// The leaf hash, computed as the encoding is written, is the
		// hash of the encoding.
		made := Entry{Kind: kind, Author: author, Time: time.Unix(0, unixNano), Payload: payload}
		copy(made.ID[:], id)
		if got, want := made.LeafHash(), merkle.LeafHash(made.Encode()); got != want {
			t.Fatalf("LeafHash = %x, want the hash of the encoding %x", got, want)
		}
		// Whatever decodes re-encodes to the same bytes.
		d, ok := Decode(b)
		k, a, p, splitOK := Split(b)
		if ok != splitOK {
			t.Fatalf("Decode(%x) says %v, Split says %v", b, ok, splitOK)
		}
		if ok {
			if string(k) != d.Kind || string(a) != d.Author || !bytes.Equal(p, d.Payload) || ID(b) != d.ID {
				t.Fatalf("Split(%x) and Decode disagree", b)
			}
			if got := d.Encode(); !bytes.Equal(got, b) {
				t.Fatalf("Decode accepted %x, which re-encodes to %x", b, got)
			}
			if again, ok := Decode(d.Encode()); !ok || !same(again, d) {
				t.Fatalf("Decode(Encode(%+v)) = %+v, %v", d, again, ok)
			}
		}

		// Every entry in the limits survives a round trip.
		e := Entry{Kind: kind, Author: author, Time: time.Unix(0, unixNano).UTC(), Payload: payload}
		copy(e.ID[:], id)
		enc := e.Encode()
		got, ok := Decode(enc)
		fits := len(kind) <= MaxKindLen && len(author) <= MaxAuthorLen
		if ok != fits {
			t.Fatalf("Decode(Encode(%+v)) ok = %v, want %v", e, ok, fits)
		}
		if ok && !same(got, e) {
			t.Fatalf("Decode(Encode(%+v)) = %+v", e, got)
		}
		if e.LeafHash() != merkle.LeafHash(enc) {
			t.Fatalf("LeafHash is not the hash of the encoding")
		}
	})
}
