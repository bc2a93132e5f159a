package format

import (
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// EncodeFields writes canonical field values as a JSON object with sorted
// keys, as encoding/json would, without reflection.
func EncodeFields(fields map[string]json.RawMessage) []byte {
	n := 2
	for k, v := range fields {
		n += len(k) + len(v) + 4
	}
	return AppendFields(make([]byte, 0, n), fields)
}

// AppendFields appends what EncodeFields writes to b.
func AppendFields(b []byte, fields map[string]json.RawMessage) []byte {
	var small [16]string
	keys := small[:0]
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendQuoted(b, k)
		b = append(b, ':')
		b = append(b, fields[k]...)
	}
	return append(b, '}')
}

// JSONString decodes a JSON string, without reflection when it holds no
// escape.
func JSONString(raw []byte) (string, bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		plain := true
		for _, c := range raw[1 : len(raw)-1] {
			if c == '\\' || c == '"' || c < 0x20 {
				plain = false
				break
			}
		}
		if plain && utf8.Valid(raw[1:len(raw)-1]) {
			return string(raw[1 : len(raw)-1]), true
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// QuoteJSON encodes s as a JSON string, as encoding/json does.
func QuoteJSON(s string) json.RawMessage {
	return AppendQuoted(make([]byte, 0, len(s)+2), s)
}

// AppendQuoted appends s quoted as encoding/json would.
func AppendQuoted(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
