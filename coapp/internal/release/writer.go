package release

import (
	"bytes"
	"encoding/csv"
	"fmt"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
)

// Writer encodes released rows in one format, deterministically: the same
// rows give the same bytes, so that anyone can check an export's hash by
// exporting again.
type Writer interface {
	// ContentType is the output's media type.
	ContentType() string
	// Header returns what precedes the rows (nil for none).
	Header() ([]byte, error)
	// AppendRow appends one row's bytes to b.
	AppendRow(b []byte, r *Row) ([]byte, error)
}

// Formats are the formats NewWriter knows.
var Formats = []string{"jsonl", "csv"}

// NewWriter returns the Writer of a format ("jsonl" or "csv") for a
// dataset's columns (CSV writes one column per field).
func NewWriter(name string, columns []string) (Writer, error) {
	switch name {
	case "jsonl", "":
		return jsonlWriter{}, nil
	case "csv":
		w := &csvWriter{columns: columns}
		w.csv = csv.NewWriter(&w.buf)
		return w, nil
	}
	return nil, api.Invalid("format", "jsonl or csv")
}

// jsonlWriter writes JSON Lines: one object a row, as encoding/json would
// write an api.ExportRow (fields sorted by name), without reflection.
type jsonlWriter struct{}

func (jsonlWriter) ContentType() string     { return "application/x-ndjson" }
func (jsonlWriter) Header() ([]byte, error) { return nil, nil }

func (jsonlWriter) AppendRow(b []byte, r *Row) ([]byte, error) {
	b = append(b, `{"subject":`...)
	b = format.AppendQuoted(b, r.Subject)
	b = append(b, `,"member":`...)
	b = format.AppendQuoted(b, r.Member)
	b = append(b, `,"type":`...)
	b = format.AppendQuoted(b, r.Type)
	b = append(b, `,"date":`...)
	b = format.AppendQuoted(b, r.Date)
	b = append(b, `,"fields":`...)
	b = format.AppendFields(b, r.Fields)
	return append(b, "}\n"...), nil
}

// csvWriter writes RFC 4180 CSV: a header, then one line a row, a column
// a field (strings unquoted from JSON, other values as JSON).
type csvWriter struct {
	columns []string
	buf     bytes.Buffer
	csv     *csv.Writer
	rec     []string
}

func (w *csvWriter) ContentType() string { return "text/csv; charset=utf-8" }

func (w *csvWriter) Header() ([]byte, error) {
	return w.line(append([]string{"subject", "member", "type", "date"}, w.columns...))
}

func (w *csvWriter) AppendRow(b []byte, r *Row) ([]byte, error) {
	rec := append(w.rec[:0], r.Subject, r.Member, r.Type, r.Date)
	for _, c := range w.columns {
		raw, ok := r.Fields[c]
		s, isString := format.JSONString(raw)
		switch {
		case !ok:
			s = ""
		case !isString:
			s = string(raw)
		}
		rec = append(rec, s)
	}
	w.rec = rec
	line, err := w.line(rec)
	return append(b, line...), err
}

// line encodes one record; the bytes are valid until the next call.
func (w *csvWriter) line(rec []string) ([]byte, error) {
	w.buf.Reset()
	if err := w.csv.Write(rec); err != nil {
		return nil, fmt.Errorf("coapp: csv: %w", err)
	}
	w.csv.Flush()
	return w.buf.Bytes(), w.csv.Error()
}
