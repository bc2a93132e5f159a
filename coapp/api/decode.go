package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Decode decodes one JSON value from r into v, strictly: unknown fields,
// trailing data and wrong types are *ValidationErrors naming the field. An
// error reading r (such as *http.MaxBytesError) is returned as it is.
func Decode(r io.Reader, v any) error {
	rr := &readErr{r: r}
	dec := json.NewDecoder(rr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if rr.err != nil && !errors.Is(rr.err, io.EOF) {
			return rr.err
		}
		return Invalid(jsonErrField(err), "%s", jsonErrReason(err))
	}
	if dec.More() {
		return Invalid("body", "trailing data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		if rr.err != nil && !errors.Is(rr.err, io.EOF) {
			return rr.err
		}
		return Invalid("body", "trailing data after the JSON value")
	}
	return nil
}

// DecodeBytes is Decode of a byte slice.
func DecodeBytes(b []byte, v any) error { return Decode(bytes.NewReader(b), v) }

// readErr remembers the error of reading the body (a body over its limit,
// a connection cut), to tell it from an error of the JSON itself.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
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
