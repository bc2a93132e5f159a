package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
)

// TestErrorTable sends every sentinel of api's table through the HTTP
// error writer and the Go client: the client's error matches the same
// sentinel (and its broader kind) with errors.Is, and the status and code
// are the table's.
func TestErrorTable(t *testing.T) {
	a := &API{log: slog.New(slog.DiscardHandler)}
	for _, row := range api.Codes {
		t.Run(row.Code+"/"+row.Kind, func(t *testing.T) {
			sent := fmt.Errorf("%w: because", row.Err)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				a.writeErr(w, sent)
			}))
			defer srv.Close()
			c := client.New(srv.URL, "", client.WithRetries(1))
			_, err := c.Ledger(context.Background(), "")
			if !errors.Is(err, row.Err) {
				t.Fatalf("through HTTP: %v does not match %v", err, row.Err)
			}
			if !errors.Is(sent, row.Err) {
				t.Fatalf("in-process: %v does not match %v", sent, row.Err)
			}
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != row.Status || ce.Code != row.Code || ce.Kind != row.Kind {
				t.Fatalf("answer %+v, want status %d code %q kind %q", ce, row.Status, row.Code, row.Kind)
			}
			if parent := errors.Unwrap(row.Err); parent != nil && !errors.Is(err, parent) {
				t.Fatalf("through HTTP: %v does not match the broader %v", err, parent)
			}
			// No other sentinel matches, but for the broader kind.
			for _, other := range api.Codes {
				if other.Err != row.Err && other.Err != errors.Unwrap(row.Err) && errors.Is(err, other.Err) {
					t.Errorf("through HTTP: %v also matches %v", err, other.Err)
				}
			}
		})
	}
}

// TestUnknownErrorIsInternal: an error the table does not know is a 500
// "internal" whose message says nothing of it.
func TestUnknownErrorIsInternal(t *testing.T) {
	a := &API{log: slog.New(slog.DiscardHandler)}
	w := httptest.NewRecorder()
	a.writeErr(w, errors.New("secret detail of a failure"))
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), `"code":"internal"`) || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}
