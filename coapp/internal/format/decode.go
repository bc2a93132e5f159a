package format

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"

	"coapp.coop/pseudonym"
)

// Fast decoders for what this package writes itself (RecordPayload.Encode,
// EncodeFields), for scans that read every record. Anything they do not
// expect, they hand to encoding/json, so they never decide differently;
// FuzzDecoders checks that they agree with it.

var errNotFast = errors.New("not in the fast format")

// DecodeRecordPayload decodes a record's payload, in either format.
func DecodeRecordPayload(b []byte) (RecordPayload, error) {
	if len(b) > 0 && b[0] == PayloadV2 {
		return decodeBinaryPayload(b)
	}
	if p, err := fastRecordPayload(b); err == nil {
		return p, nil
	}
	var p RecordPayload
	err := json.Unmarshal(b, &p)
	return p, err
}

func fastRecordPayload(b []byte) (RecordPayload, error) {
	var p RecordPayload
	rest, ok := cutPrefix(b, `{"type":`)
	if !ok {
		return p, errNotFast
	}
	var s string
	var err error
	if s, rest, err = fastString(rest); err != nil {
		return p, err
	}
	p.Type = s
	if rest, ok = cutPrefix(rest, `,"version":`); !ok {
		return p, errNotFast
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	v, err := strconv.Atoi(string(rest[:i]))
	if err != nil || i == 0 || (i > 1 && rest[0] == '0') {
		return p, errNotFast
	}
	p.Version, rest = v, rest[i:]
	if rest, ok = cutPrefix(rest, `,"subject":`); !ok {
		return p, errNotFast
	}
	if s, rest, err = fastString(rest); err != nil {
		return p, err
	}
	p.Subject = pseudonym.Pseudonym(s)
	if rest, ok = cutPrefix(rest, `,"time":`); !ok {
		return p, errNotFast
	}
	if p.Time, rest, err = fastString(rest); err != nil {
		return p, err
	}
	if r, ok := cutPrefix(rest, `,"box":`); ok {
		if s, rest, err = fastString(r); err != nil {
			return p, err
		}
		if p.Box, err = base64.StdEncoding.DecodeString(s); err != nil {
			return p, errNotFast
		}
	}
	if string(rest) != "}" {
		return p, errNotFast
	}
	return p, nil
}

func cutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return b, false
	}
	return b[len(prefix):], true
}

// fastString reads a JSON string without escapes at the start of b.
func fastString(b []byte) (string, []byte, error) {
	if len(b) == 0 || b[0] != '"' {
		return "", b, errNotFast
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s, ok := JSONString(b[:i+1])
			if !ok {
				return "", b, errNotFast
			}
			return s, b[i+1:], nil
		case c == '\\' || c < 0x20:
			return "", b, errNotFast
		}
	}
	return "", b, errNotFast
}

// DecodeFields decodes a record's sealed fields: a flat JSON object.
func DecodeFields(b []byte) (map[string]json.RawMessage, error) {
	if m, err := fastFields(b); err == nil {
		return m, nil
	}
	var m map[string]json.RawMessage
	err := json.Unmarshal(b, &m)
	return m, err
}

func fastFields(b []byte) (map[string]json.RawMessage, error) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, errNotFast
	}
	m := map[string]json.RawMessage{}
	rest := b[1 : len(b)-1]
	for len(rest) > 0 {
		key, r, err := fastString(rest)
		if err != nil || len(r) == 0 || r[0] != ':' {
			return nil, errNotFast
		}
		r = r[1:]
		var end int
		if len(r) > 0 && r[0] == '"' {
			_, after, err := fastString(r)
			if err != nil {
				return nil, errNotFast
			}
			end = len(r) - len(after)
		} else {
			for end < len(r) && r[end] != ',' {
				c := r[end]
				if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' || c >= 'a' && c <= 'z') {
					return nil, errNotFast
				}
				end++
			}
			if end == 0 || !json.Valid(r[:end]) {
				return nil, errNotFast
			}
		}
		if _, dup := m[key]; dup {
			return nil, errNotFast
		}
		m[key] = json.RawMessage(r[:end])
		rest = r[end:]
		if len(rest) > 0 {
			if rest[0] != ',' || len(rest) == 1 {
				return nil, errNotFast
			}
			rest = rest[1:]
		}
	}
	return m, nil
}
