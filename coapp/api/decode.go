package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Decode decodes one JSON value from r into v, strictly: unknown fields,
// trailing data and wrong types are *ValidationErrors naming the field. An
// error reading r (such as *http.MaxBytesError) is returned as it is.
func Decode(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if !isJSONError(err) {
			return err
		}
		return Invalid(jsonErrField(err), "%s", jsonErrReason(err))
	}
	if dec.More() {
		return Invalid("body", "trailing data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil && !isJSONError(err) {
			return err
		}
		return Invalid("body", "trailing data after the JSON value")
	}
	return nil
}

// DecodeBytes is Decode of a byte slice.
func DecodeBytes(b []byte, v any) error { return Decode(bytes.NewReader(b), v) }

// isJSONError tells errors of the JSON itself (syntax, types, unknown
// fields, a malformed UUID or time) from errors reading it: a body over
// its limit (*http.MaxBytesError), a connection cut.
func isJSONError(err error) bool {
	var mbe *http.MaxBytesError
	return !errors.As(err, &mbe)
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
	var se *json.SyntaxError
	var te *time.ParseError
	switch {
	case errors.As(err, &ute):
		return fmt.Sprintf("expected %s, got %s", ute.Type, ute.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return "not an RFC 3339 time"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return "unknown field"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated body"
	default:
		return "malformed JSON"
	}
}
