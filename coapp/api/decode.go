package api

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"coapp.coop/ledger/merkle"
)

// Decode decodes one JSON value from r into v, strictly.
//
// The body must be UTF-8. It is checked as it streams, runes split between
// two reads included, and a byte sequence that is not UTF-8 stops the
// decoding there: encoding/json would replace it with U+FFFD, so that two
// different identifiers ("anna\xff" and "anna\xfe") would become one. The
// error names the field the bytes are in ("records[0].subject"), or
// "body". A body that is not UTF-8 is refused as such whatever else is
// wrong with it (when the JSON fails first, the rest is read to know).
//
// Unknown fields, trailing data, wrong types and values that a field's
// type refuses (a UUID, a time, base64) are *ValidationErrors naming the
// field as a path, such as "records[2].id". An error reading r (such as
// *http.MaxBytesError) is returned as it is.
func Decode(r io.Reader, v any) error {
	sr := &scanReader{r: r, keep: true}
	return decode(sr, v, func() []byte { return sr.kept })
}

// DecodeBytes is Decode of a byte slice.
func DecodeBytes(b []byte, v any) error {
	sr := &scanReader{r: bytes.NewReader(b)}
	return decode(sr, v, func() []byte { return b })
}

// DecodeStored decodes bytes the ledger holds (a signed entry's body) as
// Decode does, except that it does not check that they are UTF-8: every
// replica must decide on an entry written before that check as the
// replicas that applied it then did. What a node writes is UTF-8 (it came
// through Decode, or from encoding/json).
func DecodeStored(b []byte, v any) error {
	sr := &scanReader{r: bytes.NewReader(b), lenient: true}
	return decode(sr, v, func() []byte { return b })
}

func decode(sr *scanReader, v any, body func() []byte) error {
	dec := json.NewDecoder(sr)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	trailing := false
	if err == nil {
		if dec.More() {
			trailing = true
		} else if _, terr := dec.Token(); terr != io.EOF {
			trailing = true
		}
	}
	if (err != nil || trailing) && !sr.lenient && !sr.bad && sr.err == nil {
		// The decoder stopped before the end: read the rest through the
		// check, so that a body that is not UTF-8 is refused as such
		// whatever else is wrong with it, however its reads fall.
		sr.keep = false
		_, _ = io.Copy(io.Discard, sr)
	}
	switch {
	case sr.bad:
		return Invalid(sr.badField, "%s", sr.badReason)
	case sr.err != nil && !errors.Is(sr.err, io.EOF):
		return sr.err
	case trailing:
		return Invalid("body", "trailing data after the JSON value")
	case err == nil:
		return nil
	}
	return describe(err, body(), v)
}

// ValidText reports whether a JSON text is UTF-8 and holds no \u escape
// of half a surrogate pair: what Decode refuses before decoding. For JSON
// that comes another way, such as a record's fields through the Go API,
// which encoding/json would otherwise decode with U+FFFD in their place.
func ValidText(b []byte) bool {
	var s scanReader
	return s.scan(b) < 0 && s.npending == 0 && !s.path.highSurrogate && s.path.hexLeft == 0
}

// errNotUTF8 stops the JSON decoder at the first byte that is not UTF-8.
var errNotUTF8 = errors.New("coapp: not UTF-8")

// scanReader checks that what it reads is UTF-8, as it streams, and
// follows the JSON's structure so as to name the field of the first byte
// that is not; with keep, it keeps what it read, to name the field of an
// error found once the value is decoded.
type scanReader struct {
	r       io.Reader
	err     error // the first error of r
	keep    bool
	kept    []byte
	lenient bool // no UTF-8 check

	pending   [utf8.UTFMax]byte // a rune begun, not ended, by the bytes so far
	npending  int
	bad       bool
	badField  string
	badReason string
	path      pathScanner
}

func (s *scanReader) Read(p []byte) (int, error) {
	if s.bad {
		return 0, errNotUTF8
	}
	n, err := s.r.Read(p)
	if err != nil && s.err == nil {
		s.err = err
	}
	if !s.lenient {
		if i := s.scan(p[:n]); i >= 0 {
			n, err = i, errNotUTF8
		} else if err != nil && s.npending > 0 {
			// A rune cut short by the end of the body.
			s.fail("not valid UTF-8")
			err = errNotUTF8
		}
	}
	if s.keep {
		s.kept = append(s.kept, p[:n]...)
	}
	return n, err
}

// scan checks b, which follows what was scanned before, and returns the
// index in b of the first byte of a sequence that is not UTF-8, or -1.
func (s *scanReader) scan(b []byte) int {
	for i := 0; i < len(b); i++ {
		if s.npending == 0 && s.path.plainString() {
			// The plain ASCII characters of a string value change
			// nothing: skip them.
			for i < len(b) && b[i] < utf8.RuneSelf && b[i] != '"' && b[i] != '\\' {
				i++
			}
			if i == len(b) {
				break
			}
		}
		c := b[i]
		if s.npending == 0 && c < utf8.RuneSelf {
			if !s.path.step(c) {
				s.fail("not valid Unicode: a \\u escape of half a surrogate pair")
				return i
			}
			continue
		}
		s.pending[s.npending] = c
		s.npending++
		rb := s.pending[:s.npending]
		if !utf8.FullRune(rb) {
			continue
		}
		if r, size := utf8.DecodeRune(rb); r == utf8.RuneError && size <= 1 || size != len(rb) {
			start := i - (s.npending - 1) // the rune may have begun in an earlier read
			s.fail("not valid UTF-8")
			return max(start, 0)
		}
		for _, x := range rb {
			if !s.path.step(x) {
				s.fail("not valid Unicode: a \\u escape of half a surrogate pair")
				return i
			}
		}
		s.npending = 0
	}
	return -1
}

func (s *scanReader) fail(reason string) {
	s.bad, s.badReason = true, reason
	s.badField = s.path.field()
	if s.badField == "" {
		s.badField = "body"
	}
}

// pathScanner follows a JSON text byte by byte, enough to say which field
// the next byte is in: its containers, the key of each object, the index
// in each array. It does not check the syntax (the decoder does).
type pathScanner struct {
	frames []pathFrame
	inStr  bool
	esc    bool
	inKey  bool
	// a \u escape: its hex digits left, its value so far, and whether
	// the previous one was the high half of a surrogate pair
	hexLeft       int
	hex           rune
	highSurrogate bool
}

type pathFrame struct {
	object  bool
	wantKey bool   // an object's next string is a key
	key     []byte // an object's current key (its buffer is kept for the next)
	index   int    // an array's current element
	done    bool   // the current member's or element's value ended
}

const maxPathKey = 128

// step takes the next byte; it returns false for a \u escape that is half
// of a UTF-16 surrogate pair without the other half, which encoding/json
// would replace with U+FFFD as it does bytes that are not UTF-8.
func (p *pathScanner) step(c byte) bool {
	if p.inStr {
		return p.stepString(c)
	}
	n := len(p.frames)
	switch c {
	case '"':
		p.inStr = true
		if n > 0 && p.frames[n-1].object && p.frames[n-1].wantKey {
			p.inKey = true
			p.frames[n-1].key = p.frames[n-1].key[:0]
		}
	case '{':
		p.push(true)
	case '[':
		p.push(false)
	case '}', ']':
		if n > 0 {
			p.frames = p.frames[:n-1]
			p.valueEnded()
		}
	case ',':
		if n > 0 {
			if f := &p.frames[n-1]; f.object {
				f.wantKey, f.key = true, f.key[:0]
			} else {
				f.index++
			}
			p.frames[n-1].done = false
		}
	case ':':
		if n > 0 {
			p.frames[n-1].wantKey = false
		}
	}
	return true
}

func (p *pathScanner) stepString(c byte) bool {
	if p.hexLeft > 0 {
		p.hexLeft--
		p.hex = p.hex<<4 | rune(unhex(c))
		if p.hexLeft > 0 {
			return true
		}
		high, low := 0xD800 <= p.hex && p.hex <= 0xDBFF, 0xDC00 <= p.hex && p.hex <= 0xDFFF
		if p.highSurrogate != low {
			return false // a low half alone, or a high half followed by another escape
		}
		p.highSurrogate = high
		return true
	}
	if p.esc {
		p.esc = false
		if c == 'u' {
			p.hexLeft, p.hex = 4, 0
			return true
		}
		if p.highSurrogate {
			return false
		}
		p.keyByte(c)
		return true
	}
	if p.highSurrogate && c != '\\' {
		return false // a high half followed by no escape
	}
	switch c {
	case '\\':
		p.esc = true
	case '"':
		p.inStr = false
		if p.inKey {
			p.inKey = false
		} else {
			p.valueEnded()
		}
	default:
		p.keyByte(c)
	}
	return true
}

// valueEnded marks the value of the innermost container's current member
// or element as ended: what follows is between two of them.
func (p *pathScanner) valueEnded() {
	if n := len(p.frames); n > 0 {
		p.frames[n-1].done = true
	}
}

func (p *pathScanner) keyByte(c byte) {
	if !p.inKey {
		return
	}
	if f := &p.frames[len(p.frames)-1]; len(f.key) < maxPathKey {
		f.key = append(f.key, c)
	}
}

// push opens an object or an array, reusing the key buffer of a frame
// that was closed.
func (p *pathScanner) push(object bool) {
	n := len(p.frames)
	if n < cap(p.frames) {
		p.frames = p.frames[:n+1]
		p.frames[n] = pathFrame{object: object, wantKey: object, key: p.frames[n].key[:0]}
		return
	}
	p.frames = append(p.frames, pathFrame{object: object, wantKey: object})
}

// plainString reports whether the scanner is in a string value, past any
// escape: where ASCII characters other than a quote or a backslash change
// nothing.
func (p *pathScanner) plainString() bool {
	return p.inStr && !p.inKey && !p.esc && p.hexLeft == 0 && !p.highSurrogate
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0 // not JSON: the decoder says so
}

// field is the path of the field the next byte is in ("records[0].id"),
// or "" at the top.
func (p *pathScanner) field() string {
	var b strings.Builder
	for _, f := range p.frames {
		switch {
		case f.done, f.object && (f.wantKey || len(f.key) == 0):
			return b.String() // between members or elements, or in a key
		case !f.object:
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.Write(f.key)
		}
	}
	return b.String()
}

// describe turns an error of encoding/json into a *ValidationError naming
// the field, found by walking the body's first value along v's type.
func describe(err error, body []byte, v any) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return Invalid("body", "malformed JSON at byte %d", se.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Invalid("body", "empty or truncated body")
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		var raw json.RawMessage
		if json.NewDecoder(bytes.NewReader(body)).Decode(&raw) == nil {
			if lerr := locate(raw, rv.Type().Elem(), ""); lerr != nil {
				return lerr
			}
		}
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return err
	}
	return Invalid(jsonErrField(err), "%s", jsonErrReason(err))
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// locate walks a JSON value along the Go type it decodes into and returns
// a *ValidationError for the first field (in the text's order) that does
// not decode, or nil.
func locate(raw []byte, t reflect.Type, at string) error {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil // encoding/json leaves the value as it is
	}
	pt := reflect.PointerTo(t)
	switch {
	case pt.Implements(jsonUnmarshaler):
		err := json.Unmarshal(raw, reflect.New(t).Interface())
		if err == nil {
			return nil
		}
		var ve *ValidationError
		switch {
		case errors.As(err, &ve) && ve.Field == "body":
			return Invalid(orBody(at), "%s", ve.Reason)
		case errors.As(err, &ve):
			return Within(at, err)
		}
		return Invalid(orBody(at), "%s", leafReason(t, raw, err))
	case pt.Implements(textUnmarshaler):
		if raw[0] != '"' {
			return Invalid(orBody(at), "%s", leafReason(t, raw, nil))
		}
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			return Invalid(orBody(at), "%s", leafReason(t, raw, err))
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return locate(raw, t.Elem(), at)
	case reflect.Struct:
		members, ok := objectMembers(raw)
		if !ok {
			return Invalid(orBody(at), "expected an object, got %s", jsonKind(raw))
		}
		fields := jsonFields(t)
		for _, m := range members {
			ft, ok := fields[m.key]
			if !ok {
				for name, f := range fields {
					if strings.EqualFold(name, m.key) {
						ft, ok = f, true
						break
					}
				}
			}
			if !ok {
				return Invalid(join(at, m.key), "unknown field")
			}
			if err := locate(m.value, ft, join(at, m.key)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			break
		}
		members, ok := objectMembers(raw)
		if !ok {
			return Invalid(orBody(at), "expected an object, got %s", jsonKind(raw))
		}
		for _, m := range members {
			if err := locate(m.value, t.Elem(), join(at, m.key)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			break // bytes: base64
		}
		elems, ok := arrayElements(raw)
		if !ok {
			return Invalid(orBody(at), "expected an array, got %s", jsonKind(raw))
		}
		for i, e := range elems {
			if err := locate(e, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
		return Invalid(orBody(at), "%s", leafReason(t, raw, err))
	}
	return nil
}

func orBody(at string) string {
	if at == "" {
		return "body"
	}
	return at
}

func join(at, key string) string {
	if key == "" {
		key = `""` // a field must be named
	}
	if at == "" {
		return key
	}
	return at + "." + key
}

// leafReason says why raw does not decode into t, without repeating the
// value (which may be a person's identifier).
func leafReason(t reflect.Type, raw []byte, err error) string {
	switch t {
	case reflect.TypeFor[uuid.UUID]():
		return "not a UUID"
	case reflect.TypeFor[time.Time]():
		return "not an RFC 3339 time, such as 2026-11-01T10:00:00Z"
	case reflect.TypeFor[merkle.Hash]():
		return "not a hash: 64 lower-case hex digits"
	}
	var cie base64.CorruptInputError
	if errors.As(err, &cie) {
		return "not base64"
	}
	if k := jsonKind(raw); k == "a number" && len(raw) <= 32 {
		return fmt.Sprintf("expected %s, got %s", expected(t), raw)
	}
	return fmt.Sprintf("expected %s, got %s", expected(t), jsonKind(raw))
}

// expected names what a Go type takes in JSON.
func expected(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a value of another type"
}

// jsonKind names the kind of a JSON value by its first byte.
func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	default:
		return "a number"
	}
}

type member struct {
	key   string
	value json.RawMessage
}

// objectMembers returns an object's members in the text's order.
func objectMembers(raw []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, member{key, v})
	}
	return out, true
}

// arrayElements returns an array's elements.
func arrayElements(raw []byte) ([]json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, false
	}
	var out []json.RawMessage
	for dec.More() {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// jsonFields returns the JSON names of a struct's fields and their types,
// as encoding/json sees them: tags, embedded structs flattened, a
// shallower field hiding a deeper one of the same name.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	depth := map[string]int{}
	var walk func(t reflect.Type, d int)
	walk = func(t reflect.Type, d int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft, d+1)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if prev, ok := depth[name]; ok && prev <= d {
				continue
			}
			out[name], depth[name] = f.Type, d
		}
	}
	walk(t, 0)
	return out
}

func jsonErrField(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		return ute.Field
	}
	if s := err.Error(); strings.HasPrefix(s, "json: unknown field ") {
		if name := strings.Trim(strings.TrimPrefix(s, "json: unknown field "), `"`); name != "" {
			return name
		}
	}
	return "body"
}

func jsonErrReason(err error) string {
	var ute *json.UnmarshalTypeError
	var te *time.ParseError
	switch {
	case errors.As(err, &ute):
		return fmt.Sprintf("expected %s, got %s", ute.Type, ute.Value)
	case errors.As(err, &te):
		return "not an RFC 3339 time"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return "unknown field"
	default:
		return "malformed JSON"
	}
}
