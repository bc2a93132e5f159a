package api

import (
	"fmt"
	"math"
	"regexp"
	"slices"
)

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

// Units are the units a date or time field may be generalised to.
var Units = []string{"day", "week", "month", "year"}

// Validate checks a schema definition itself.
func (s *Schema) Validate() error {
	if !ValidType(s.Type) {
		return Invalid("type", "1 to 64 characters of [a-z0-9._-]")
	}
	if s.Version < 1 {
		return Invalid("version", "must be 1 or more")
	}
	switch s.SubjectDomain {
	case "", "member", "federation":
	default:
		return Invalid("subject_domain", "must be member or federation")
	}
	if len(s.Fields) > MaxFields {
		return Invalid("fields", "more than %d fields", MaxFields)
	}
	seen := map[string]bool{}
	for i, f := range s.Fields {
		at := fmt.Sprintf("fields[%d]", i)
		if !namePattern.MatchString(f.Name) {
			return Invalid(at+".name", "must match [a-z][a-z0-9_]{0,63}")
		}
		if seen[f.Name] {
			return Invalid(at+".name", "repeats field %q", f.Name)
		}
		seen[f.Name] = true
		switch f.Kind {
		case "string", "integer", "decimal", "boolean", "date", "time", "postcode":
		case "enum":
			if len(f.Values) == 0 {
				return Invalid(at+".values", "an enum needs values")
			}
		default:
			return Invalid(at+".kind", "not one of string, integer, decimal, boolean, date, time, enum, postcode")
		}
		if (f.Min != nil || f.Max != nil) && f.Kind != "integer" && f.Kind != "decimal" {
			return Invalid(at+".min", "only integer and decimal fields have a range")
		}
		if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
			return Invalid(at+".min", "above max")
		}
		if err := f.checkPolicy(at); err != nil {
			return err
		}
	}
	return nil
}

// Field returns the schema's field of that name, or nil. Schemas have few
// fields: a scan is cheaper than a map per record.
func (s *Schema) Field(name string) *Field {
	for i := range s.Fields {
		if s.Fields[i].Name == name {
			return &s.Fields[i]
		}
	}
	return nil
}

// checkPolicy refuses policies that would store what the class forbids:
// a direct identifier is dropped or pseudonymised, never kept or
// generalised; a quasi-identifier is not kept as it is unless it is an
// enum.
func (f *Field) checkPolicy(at string) error {
	p := f.Policy
	// The policy's parameters as the API documents them, whatever the
	// action: a value out of its range is refused even where the action
	// does not use it.
	switch {
	case p.Domain != "" && p.Domain != "member" && p.Domain != "federation":
		return Invalid(at+".policy.domain", "must be member or federation")
	case p.Unit != "" && !slices.Contains(Units, p.Unit):
		return Invalid(at+".policy.unit", "must be day, week, month or year")
	case p.Width < 0 || math.IsNaN(p.Width) || math.IsInf(p.Width, 0):
		return Invalid(at+".policy.width", "must be positive")
	case p.Keep < 0:
		return Invalid(at+".policy.keep", "must not be negative")
	}
	switch f.Class {
	case "direct":
		if p.Action != "drop" && p.Action != "pseudonymise" {
			return Invalid(at+".policy.action", "a direct identifier is dropped or pseudonymised")
		}
	case "quasi":
		if p.Action == "keep" && f.Kind != "enum" && f.Kind != "boolean" {
			return Invalid(at+".policy.action", "a quasi-identifier is generalised, pseudonymised or dropped")
		}
	case "attribute", "sensitive":
	default:
		return Invalid(at+".class", "not one of direct, quasi, attribute, sensitive")
	}
	switch p.Action {
	case "drop", "keep":
	case "pseudonymise":
		if p.Domain != "" && p.Domain != "member" && p.Domain != "federation" {
			return Invalid(at+".policy.domain", "must be member or federation")
		}
		if f.Kind != "string" && f.Kind != "postcode" && f.Kind != "integer" {
			return Invalid(at+".policy.action", "only string, postcode and integer fields are pseudonymised")
		}
	case "generalise":
		switch f.Kind {
		case "date", "time":
			ok := false
			for _, u := range Units {
				ok = ok || u == p.Unit
			}
			if !ok {
				return Invalid(at+".policy.unit", "must be day, week, month or year")
			}
		case "integer", "decimal":
			if !(p.Width > 0) {
				return Invalid(at+".policy.width", "must be positive")
			}
		case "postcode":
			if p.Keep < 0 {
				return Invalid(at+".policy.keep", "must not be negative")
			}
		default:
			return Invalid(at+".policy.action", "a %s field cannot be generalised", f.Kind)
		}
	default:
		return Invalid(at+".policy.action", "not one of drop, pseudonymise, generalise, keep")
	}
	return nil
}
