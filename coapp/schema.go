package coapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"coapp.coop/pseudonym"
)

// KindSchema is the ledger kind of an exchange schema.
const KindSchema = "coapp.schema/v1"

// Schema describes one type of exchange record: its fields, how each is
// classified, what values it takes, and what happens to it before anything
// is stored. A change is a new version; records name the version they
// follow (the latest when they do not).
type Schema struct {
	Type    string  `json:"type"`
	Version int     `json:"version"`
	Fields  []Field `json:"fields"`
	// SubjectDomain is where the record's subject is pseudonymised:
	// "member" (the publishing cooperative's own domain, the default) or
	// "federation" (linkable across cooperatives, when the person agreed).
	SubjectDomain string `json:"subject_domain,omitempty"`
}

// Field is one field of a schema.
type Field struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`  // string, integer, decimal, boolean, date, time, enum, postcode
	Class    string   `json:"class"` // direct, quasi, attribute, sensitive
	Required bool     `json:"required,omitempty"`
	Values   []string `json:"values,omitempty"` // for enum
	Min      *float64 `json:"min,omitempty"`    // for integer and decimal
	Max      *float64 `json:"max,omitempty"`
	Policy   Policy   `json:"policy"`
}

// Policy is what happens to a field's value before it is stored.
type Policy struct {
	// Action is drop, pseudonymise, generalise or keep.
	Action string `json:"action"`
	// Domain, for pseudonymise: "member" (default) or "federation".
	Domain string `json:"domain,omitempty"`
	// For generalise: Unit for dates (day, week, month, year), Width for
	// numbers (a range width) or ages (Band: true, a band width), Keep for
	// postcodes (characters kept).
	Unit  string  `json:"unit,omitempty"`
	Width float64 `json:"width,omitempty"`
	Band  bool    `json:"band,omitempty"`
	Keep  int     `json:"keep,omitempty"`
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// validate checks a schema definition itself.
func (s *Schema) validate() error {
	if !validType(s.Type) {
		return invalid("type", "1 to 64 characters of [a-z0-9._-]")
	}
	if s.Version < 1 {
		return invalid("version", "must be 1 or more")
	}
	switch s.SubjectDomain {
	case "", "member", "federation":
	default:
		return invalid("subject_domain", "must be member or federation")
	}
	if len(s.Fields) > maxFields {
		return invalid("fields", "more than %d fields", maxFields)
	}
	seen := map[string]bool{}
	for i, f := range s.Fields {
		at := fmt.Sprintf("fields[%d]", i)
		if !namePattern.MatchString(f.Name) {
			return invalid(at+".name", "must match [a-z][a-z0-9_]{0,63}")
		}
		if seen[f.Name] {
			return invalid(at+".name", "repeats field %q", f.Name)
		}
		seen[f.Name] = true
		switch f.Kind {
		case "string", "integer", "decimal", "boolean", "date", "time", "postcode":
		case "enum":
			if len(f.Values) == 0 {
				return invalid(at+".values", "an enum needs values")
			}
		default:
			return invalid(at+".kind", "not one of string, integer, decimal, boolean, date, time, enum, postcode")
		}
		if (f.Min != nil || f.Max != nil) && f.Kind != "integer" && f.Kind != "decimal" {
			return invalid(at+".min", "only integer and decimal fields have a range")
		}
		if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
			return invalid(at+".min", "above max")
		}
		if err := f.checkPolicy(at); err != nil {
			return err
		}
	}
	return nil
}

// validType reports whether t is 1 to 64 characters of [a-z0-9._-].
func validType(t string) bool {
	if len(t) == 0 || len(t) > maxTypeLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkPolicy refuses policies that would store what the class forbids:
// a direct identifier is dropped or pseudonymised, never kept or
// generalised; a quasi-identifier is not kept as it is unless it is an
// enum.
func (f *Field) checkPolicy(at string) error {
	p := f.Policy
	switch f.Class {
	case "direct":
		if p.Action != "drop" && p.Action != "pseudonymise" {
			return invalid(at+".policy.action", "a direct identifier is dropped or pseudonymised")
		}
	case "quasi":
		if p.Action == "keep" && f.Kind != "enum" && f.Kind != "boolean" {
			return invalid(at+".policy.action", "a quasi-identifier is generalised, pseudonymised or dropped")
		}
	case "attribute", "sensitive":
	default:
		return invalid(at+".class", "not one of direct, quasi, attribute, sensitive")
	}
	switch p.Action {
	case "drop", "keep":
	case "pseudonymise":
		if p.Domain != "" && p.Domain != "member" && p.Domain != "federation" {
			return invalid(at+".policy.domain", "must be member or federation")
		}
		if f.Kind != "string" && f.Kind != "postcode" && f.Kind != "integer" {
			return invalid(at+".policy.action", "only string, postcode and integer fields are pseudonymised")
		}
	case "generalise":
		switch f.Kind {
		case "date", "time":
			if _, ok := units[p.Unit]; !ok {
				return invalid(at+".policy.unit", "must be day, week, month or year")
			}
		case "integer", "decimal":
			if !(p.Width > 0) {
				return invalid(at+".policy.width", "must be positive")
			}
		case "postcode":
			if p.Keep < 0 {
				return invalid(at+".policy.keep", "must not be negative")
			}
		default:
			return invalid(at+".policy.action", "a %s field cannot be generalised", f.Kind)
		}
	default:
		return invalid(at+".policy.action", "not one of drop, pseudonymise, generalise, keep")
	}
	return nil
}

var units = map[string]pseudonym.Unit{"day": pseudonym.Day, "week": pseudonym.Week, "month": pseudonym.Month, "year": pseudonym.Year}

// transformer applies a schema to records for one member.
type transformer struct {
	keys   *pseudonym.Keyring
	member string
	memo   map[memoKey]pseudonym.Pseudonym // pseudonyms made in this call
}

type memoKey struct {
	domain pseudonym.Domain
	id     string
}

// pseudonym returns an identifier's pseudonym, once per call: a record's
// subject is often also one of its fields.
func (t *transformer) pseudonym(d pseudonym.Domain, id string) (pseudonym.Pseudonym, error) {
	k := memoKey{d, id}
	if p, ok := t.memo[k]; ok {
		return p, nil
	}
	p, err := t.keys.Pseudonym(d, id)
	if err != nil {
		return "", err
	}
	if t.memo == nil {
		t.memo = map[memoKey]pseudonym.Pseudonym{}
	}
	t.memo[k] = p
	return p, nil
}

func (t transformer) domain(name string) pseudonym.Domain {
	if name == "federation" {
		return pseudonym.Federation
	}
	return pseudonym.MemberDomain(t.member)
}

// apply validates a record's fields against the schema and returns them as
// they are to be stored, every policy applied; at names the record.
func (t *transformer) apply(s *Schema, at string, fields map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	for name := range fields {
		if s.field(name) == nil {
			return nil, invalid(at+".fields."+name, "not a field of %s version %d", s.Type, s.Version)
		}
	}
	out := make(map[string]json.RawMessage, len(fields))
	for i := range s.Fields {
		f := &s.Fields[i]
		fat := at + ".fields." + f.Name
		raw, ok := fields[f.Name]
		if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			if f.Required {
				return nil, invalid(fat, "required")
			}
			continue
		}
		v, err := f.parse(fat, raw)
		if err != nil {
			return nil, err
		}
		stored, keep, err := t.policy(f, fat, v)
		if err != nil {
			return nil, err
		}
		if keep {
			out[f.Name] = stored
		}
	}
	return out, nil
}

// field returns the schema's field of that name, or nil. Schemas have few
// fields: a scan is cheaper than a map per record.
func (s *Schema) field(name string) *Field {
	for i := range s.Fields {
		if s.Fields[i].Name == name {
			return &s.Fields[i]
		}
	}
	return nil
}

// jsonString decodes a JSON string, without reflection when it holds no
// escape.
func jsonString(raw []byte) (string, bool) {
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

// quoteJSON encodes s as a JSON string, as encoding/json does.
func quoteJSON(s string) json.RawMessage {
	return appendQuoted(make([]byte, 0, len(s)+2), s)
}

// appendQuoted appends s quoted as encoding/json would.
func appendQuoted(b []byte, s string) []byte {
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

// value is a parsed field value.
type value struct {
	s    string
	num  float64
	t    time.Time
	b    bool
	kind string
}

func (f *Field) parse(at string, raw json.RawMessage) (value, error) {
	v := value{kind: f.Kind}
	switch f.Kind {
	case "string", "postcode", "enum", "date", "time":
		s, ok := jsonString(raw)
		if !ok {
			return v, invalid(at, "must be a string")
		}
		v.s = s
		if len(v.s) > 1024 {
			return v, invalid(at, "longer than 1024 bytes")
		}
		switch f.Kind {
		case "enum":
			ok := false
			for _, allowed := range f.Values {
				ok = ok || allowed == v.s
			}
			if !ok {
				return v, invalid(at, "not one of the allowed values")
			}
		case "date":
			t, err := time.Parse("2006-01-02", v.s)
			if err != nil {
				return v, invalid(at, "not a date (YYYY-MM-DD)")
			}
			v.t = t
		case "time":
			t, err := time.Parse(time.RFC3339Nano, v.s)
			if err != nil {
				return v, invalid(at, "not an RFC 3339 time")
			}
			v.t = t
		case "postcode":
			if v.s == "" {
				return v, invalid(at, "empty postcode")
			}
		}
	case "integer", "decimal":
		n := string(bytes.TrimSpace(raw))
		if n == "" || (n[0] != '-' && (n[0] < '0' || n[0] > '9')) || !json.Valid([]byte(n)) {
			return v, invalid(at, "must be a number")
		}
		x, err := strconv.ParseFloat(n, 64)
		if err != nil || math.IsInf(x, 0) {
			return v, invalid(at, "must be a number")
		}
		if f.Kind == "integer" && x != math.Trunc(x) {
			return v, invalid(at, "must be an integer")
		}
		if f.Min != nil && x < *f.Min || f.Max != nil && x > *f.Max {
			return v, invalid(at, "out of range")
		}
		v.num, v.s = x, n
	case "boolean":
		switch string(bytes.TrimSpace(raw)) {
		case "true":
			v.b = true
		case "false":
		default:
			return v, invalid(at, "must be true or false")
		}
	}
	return v, nil
}

// policy returns the stored form of a value, and whether it is stored.
func (t *transformer) policy(f *Field, at string, v value) (json.RawMessage, bool, error) {
	p := f.Policy
	var out string
	switch p.Action {
	case "drop":
		return nil, false, nil
	case "keep":
		switch f.Kind {
		case "integer", "decimal":
			return json.RawMessage(v.s), true, nil
		case "boolean":
			return json.RawMessage(strconv.FormatBool(v.b)), true, nil
		default:
			out = v.s
		}
	case "pseudonymise":
		ps, err := t.pseudonym(t.domain(p.Domain), v.s)
		if err != nil {
			return nil, false, invalid(at, "cannot be pseudonymised: %v", err)
		}
		out = string(ps)
	case "generalise":
		var s string
		var err error
		switch f.Kind {
		case "date", "time":
			s, err = pseudonym.GeneraliseDate(v.t, units[p.Unit])
		case "integer", "decimal":
			if p.Band {
				s, err = pseudonym.AgeBand(int(v.num), int(p.Width))
			} else {
				s, err = pseudonym.GeneraliseNumber(v.num, p.Width)
			}
		case "postcode":
			s, err = pseudonym.GeneralisePostcode(v.s, p.Keep)
		}
		if err != nil {
			return nil, false, invalid(at, "cannot be generalised: %v", err)
		}
		out = s
	}
	return quoteJSON(out), true, nil
}

// PutSchema registers a schema, or the next version of one, as member (an
// admin's): its version must be one above the latest (1 for a new type).
// It runs on the leader.
func (n *Node) PutSchema(ctx context.Context, member string, s Schema) error {
	if err := s.validate(); err != nil {
		return err
	}
	n.awaitView(ctx)
	latest, _ := n.view.schema(s.Type, 0)
	if s.Version != latest.Version+1 {
		return &versionConflict{typ: s.Type, want: latest.Version + 1, got: s.Version}
	}
	if _, err := n.ledger.Append(ctx, systemEntry(KindSchema, member, time.Now().UTC(), s)); err != nil {
		return err
	}
	n.awaitView(ctx)
	return nil
}

// handlePutSchema registers a schema, or a new version of one: its version
// must be one above the latest (1 for a new type), or the request fails
// with 409.
func (n *Node) handlePutSchema(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if n.needsLeader() {
		return n.forward(w, r, body)
	}
	var s Schema
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := decodeBody(r, &s); err != nil {
		return err
	}
	if err := n.PutSchema(r.Context(), c.member, s); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, s)
}

// versionConflict reports a schema version that is not the next one.
type versionConflict struct {
	typ       string
	want, got int
}

func (e *versionConflict) Error() string {
	return fmt.Sprintf("coapp: the next version of the schema of %s is %d, not %d", e.typ, e.want, e.got)
}

func (n *Node) handleSchemas(w http.ResponseWriter, _ *http.Request, _ caller) error {
	all := n.view.allSchemas()
	sort.Slice(all, func(i, j int) bool { return all[i].Type < all[j].Type })
	return writeJSON(w, http.StatusOK, map[string]any{"schemas": all})
}

func (n *Node) handleSchema(w http.ResponseWriter, r *http.Request, _ caller) error {
	typ := r.PathValue("type")
	var versions []Schema
	for v := 1; ; v++ {
		s, ok := n.view.schema(typ, v)
		if !ok {
			break
		}
		versions = append(versions, s)
	}
	if len(versions) == 0 {
		return fmt.Errorf("%w: schema %s", ErrNotFound, typ)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"versions": versions})
}
