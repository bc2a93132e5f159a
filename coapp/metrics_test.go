package coapp

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"coapp.coop/coapp/client"
	"coapp.coop/internal/testcerts"
)

// scrape gets url (a /metrics) with hc and parses it with client_golang's
// text parser.
func scrape(t *testing.T, hc *http.Client, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s = %d: %s", url, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("GET %s: Content-Type %q, want the Prometheus text format", url, ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: not the Prometheus text format: %v", url, err)
	}
	return fams
}

// sample returns the value of the series of family name whose labels
// include the given ones (name=value pairs), and whether there is one.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// servedFamilies are the families /metrics must hold, with their types:
// today's names first (kept from the hand-written exposition), then the
// ones bridged from Raft and Badger, the build's, the Go runtime's and
// the process's.
var servedFamilies = []struct {
	name string
	typ  dto.MetricType
}{
	{"coapp_raft_state", dto.MetricType_GAUGE},
	{"coapp_raft_term", dto.MetricType_GAUGE},
	{"coapp_raft_commit_index", dto.MetricType_GAUGE},
	{"coapp_raft_applied_index", dto.MetricType_GAUGE},
	{"coapp_ledger_size", dto.MetricType_GAUGE},
	{"coapp_cluster_servers", dto.MetricType_GAUGE},
	{"coapp_append_duration_seconds", dto.MetricType_HISTOGRAM},
	{"coapp_append_failures_total", dto.MetricType_COUNTER},
	{"coapp_signed_batches_total", dto.MetricType_COUNTER},
	{"coapp_signed_batch_requests_total", dto.MetricType_COUNTER},
	{"coapp_signed_batch_fallbacks_total", dto.MetricType_COUNTER},
	{"coapp_http_requests_total", dto.MetricType_COUNTER},
	{"coapp_erasures_pending", dto.MetricType_GAUGE},
	{"coapp_erasure_oldest_pending_seconds", dto.MetricType_GAUGE},
	{"coapp_erasure_purged_index", dto.MetricType_GAUGE},
	{"coapp_erasure_verified_index", dto.MetricType_GAUGE},
	{"coapp_purge_rounds_total", dto.MetricType_COUNTER},

	{"coapp_raft_last_log_index", dto.MetricType_GAUGE},
	{"coapp_raft_last_log_term", dto.MetricType_GAUGE},
	{"coapp_raft_last_snapshot_index", dto.MetricType_GAUGE},
	{"coapp_raft_last_snapshot_term", dto.MetricType_GAUGE},
	{"coapp_raft_fsm_pending", dto.MetricType_GAUGE},
	{"coapp_raft_peers", dto.MetricType_GAUGE},
	{"coapp_raft_voters", dto.MetricType_GAUGE},
	{"coapp_raft_last_contact_seconds", dto.MetricType_GAUGE},

	{"coapp_badger_lsm_size_bytes", dto.MetricType_GAUGE},
	{"coapp_badger_vlog_size_bytes", dto.MetricType_GAUGE},
	{"coapp_badger_level_tables", dto.MetricType_GAUGE},
	{"coapp_badger_level_size_bytes", dto.MetricType_GAUGE},
	{"coapp_badger_level_target_size_bytes", dto.MetricType_GAUGE},
	{"coapp_badger_block_cache_hits_total", dto.MetricType_COUNTER},
	{"coapp_badger_block_cache_misses_total", dto.MetricType_COUNTER},
	{"coapp_badger_index_cache_hits_total", dto.MetricType_COUNTER},
	{"coapp_badger_index_cache_misses_total", dto.MetricType_COUNTER},

	{"coapp_build_info", dto.MetricType_GAUGE},

	{"go_goroutines", dto.MetricType_GAUGE},
	{"go_info", dto.MetricType_GAUGE},
	{"go_memstats_heap_alloc_bytes", dto.MetricType_GAUGE},
	{"go_gc_duration_seconds", dto.MetricType_SUMMARY},
}

// processFamilies are the process collector's, on systems with /proc.
var processFamilies = []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"}

// TestMetricsScrape scrapes a node's /metrics after a publish, parses it
// with client_golang's text parser, and checks every family and the
// values that the node's state fixes.
func TestMetricsScrape(t *testing.T) {
	n, token := bootstrapNode(t)
	if _, err := client.New(n.URL(), token).Publish(testCtx(t), []client.Record{record(1), record(2)}); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, http.DefaultClient, n.URL()+"/metrics")
	for _, want := range servedFamilies {
		f := fams[want.name]
		switch {
		case f == nil:
			t.Errorf("no family %s", want.name)
		case f.GetType() != want.typ:
			t.Errorf("%s is a %v, want a %v", want.name, f.GetType(), want.typ)
		case f.GetHelp() == "":
			t.Errorf("%s has no help", want.name)
		}
	}
	if runtime.GOOS == "linux" {
		for _, name := range processFamilies {
			if fams[name] == nil {
				t.Errorf("no family %s", name)
			}
		}
	}

	st, err := n.Ledger().Status()
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string, labels ...string) float64 {
		t.Helper()
		v, ok := sample(fams, name, labels...)
		if !ok {
			t.Errorf("no series %s%v", name, labels)
		}
		return v
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"coapp_raft_state", []string{"state", "Leader"}, 1},
		{"coapp_raft_state", []string{"state", "Follower"}, 0},
		{"coapp_ledger_size", nil, float64(st.Size)},
		{"coapp_cluster_servers", nil, 1},
		{"coapp_raft_voters", nil, 1},
		{"coapp_raft_peers", nil, 0},
		{"coapp_raft_last_contact_seconds", nil, 0},
		{"coapp_append_duration_seconds", nil, 1},
		{"coapp_append_failures_total", nil, 0},
		{"coapp_signed_batch_requests_total", nil, 1},
		{"coapp_http_requests_total", []string{"route", "POST /v1/records", "status", "200"}, 1},
		{"coapp_http_requests_total", []string{"route", "POST /v1/schemas", "status", "201"}, 1},
		{"coapp_erasures_pending", nil, 0},
		{"coapp_build_info", []string{"goversion", runtime.Version()}, 1},
	} {
		if got := get(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if commit, last := get("coapp_raft_commit_index"), get("coapp_raft_last_log_index"); commit == 0 || last < commit {
		t.Errorf("coapp_raft_last_log_index %v, coapp_raft_commit_index %v: want 0 < commit <= last", last, commit)
	}
	if term := get("coapp_raft_last_log_term"); term != get("coapp_raft_term") {
		t.Errorf("coapp_raft_last_log_term %v, want the term %v: this leader wrote the last entry", term, get("coapp_raft_term"))
	}
	for _, store := range []string{"raft", "state"} {
		// Badger preallocates the value log it writes to.
		if v := get("coapp_badger_vlog_size_bytes", "store", store); v <= 0 {
			t.Errorf("coapp_badger_vlog_size_bytes{store=%q} = %v, want > 0", store, v)
		}
		for level := range 7 {
			if _, ok := sample(fams, "coapp_badger_level_target_size_bytes", "store", store, "level", fmt.Sprint(level)); !ok {
				t.Errorf("no level %d of store %s", level, store)
			}
		}
	}
	// The buckets are today's.
	var bounds []float64
	for _, b := range fams["coapp_append_duration_seconds"].GetMetric()[0].GetHistogram().GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
	}
	if want := []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, math.Inf(1)}; !slices.Equal(bounds, want) {
		t.Errorf("append buckets %v, want %v", bounds, want)
	}
}

// TestMetricsDocumented checks that docs/operations.md names every coapp_
// family a node serves, and serves every one it names.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(coapp_[a-z_]+)").FindAllSubmatch(doc, -1) {
		documented[string(m[1])] = true
	}
	served := map[string]bool{}
	for _, f := range servedFamilies {
		if strings.HasPrefix(f.name, "coapp_") {
			served[f.name] = true
			if !documented[f.name] {
				t.Errorf("docs/operations.md does not name %s", f.name)
			}
		}
	}
	for name := range documented {
		if !served[name] {
			t.Errorf("docs/operations.md names %s, which no node serves", name)
		}
	}
}

// TestMetricsPerNode runs two nodes in one process: each serves its own
// counters, a collector registered with one is served by it alone, and
// nothing lands in client_golang's process-wide default registry.
func TestMetricsPerNode(t *testing.T) {
	n0, token := bootstrapNode(t)
	n1, _ := bootstrapNode(t)
	if _, err := client.New(n0.URL(), token).Publish(testCtx(t), []client.Record{record(1)}); err != nil {
		t.Fatal(err)
	}
	if n0.Registry() == n1.Registry() {
		t.Fatal("two nodes share a registry")
	}
	extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_extra_total", Help: "An embedding app's counter."})
	extra.Add(3)
	if err := n0.Registry().Register(extra); err != nil {
		t.Fatal(err)
	}
	f0 := scrape(t, http.DefaultClient, n0.URL()+"/metrics")
	f1 := scrape(t, http.DefaultClient, n1.URL()+"/metrics")
	if v, _ := sample(f0, "coapp_http_requests_total", "route", "POST /v1/records"); v != 1 {
		t.Errorf("n0 counts %v publish requests, want 1", v)
	}
	if v, ok := sample(f1, "coapp_http_requests_total", "route", "POST /v1/records"); ok {
		t.Errorf("n1 counts %v publish requests, want none: it got n0's", v)
	}
	if v, _ := sample(f0, "app_extra_total"); v != 3 {
		t.Errorf("n0's app_extra_total = %v, want 3", v)
	}
	if _, ok := f1["app_extra_total"]; ok {
		t.Error("n1 serves the collector registered with n0")
	}
	def, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range def {
		if strings.HasPrefix(f.GetName(), "coapp_") {
			t.Errorf("%s is in the process-wide default registry", f.GetName())
		}
	}
}

// TestProbeListener runs a node with mutual TLS and a probe listener: the
// probe listener answers plain HTTP without a certificate for /healthz,
// /readyz and /metrics and nothing else, while the API still refuses a
// client without a certificate.
func TestProbeListener(t *testing.T) {
	ca, err := testcerts.NewCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nodeCert, err := ca.Issue("n0")
	if err != nil {
		t.Fatal(err)
	}
	appCert, err := ca.Issue("app")
	if err != nil {
		t.Fatal(err)
	}
	cfg := nodeConfig(t.TempDir())
	cfg.Bootstrap, cfg.Federation, cfg.Member = true, "Probe Federation", "coop-a"
	cfg.TLS = TLSFiles(nodeCert)
	cfg.ProbeAddr = "127.0.0.1:0"
	n := mustStart(t, cfg)
	if !strings.HasPrefix(n.URL(), "https://") || !strings.HasPrefix(n.ProbeURL(), "http://") {
		t.Fatalf("API at %s, probes at %s: want https and http", n.URL(), n.ProbeURL())
	}
	raw, err := os.ReadFile(filepath.Join(cfg.Dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))

	plain := &http.Client{Timeout: 10 * time.Second} // no TLS, no certificate
	get := func(hc *http.Client, method, url string) (int, error) {
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		waitUntil(t, "probe listener: GET "+path+" answers 200", 10*time.Second, func() error {
			code, err := get(plain, "GET", n.ProbeURL()+path)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("status %d", code)
			}
			return err
		})
	}
	fams := scrape(t, plain, n.ProbeURL()+"/metrics")
	if v, _ := sample(fams, "coapp_raft_state", "state", "Leader"); v != 1 {
		t.Errorf("probe listener's coapp_raft_state{state=Leader} = %v, want 1", v)
	}
	if v, _ := sample(fams, "coapp_http_requests_total", "route", "GET /readyz", "status", "200"); v < 1 {
		t.Errorf("probe requests are not counted: GET /readyz 200 = %v", v)
	}
	// Nothing else, even with the admin token.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/ledger"}, {"GET", "/v1/status"}, {"GET", "/v1/backup"}, {"POST", "/v1/records"},
		{"GET", "/v1/members"}, {"GET", "/"}, {"GET", "/console"},
	} {
		if code, err := get(plain, c.method, n.ProbeURL()+c.path); err != nil || code != http.StatusNotFound {
			t.Errorf("probe listener: %s %s = %d, %v; want 404", c.method, c.path, code, err)
		}
	}

	// The API still wants a certificate, for the probes' paths too.
	noCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLSConfig(t, appCert, false)}}
	withCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLSConfig(t, appCert, true)}}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, err := get(noCert, "GET", n.URL()+path); err == nil {
			t.Errorf("API without a client certificate: GET %s = %d, want a refused handshake", path, code)
		}
		if code, err := get(plain, "GET", strings.Replace(n.URL(), "https://", "http://", 1)+path); err == nil && code == http.StatusOK {
			t.Errorf("API in plain HTTP: GET %s = 200", path)
		}
		if code, err := get(withCert, "GET", n.URL()+path); err != nil || code != http.StatusOK {
			t.Errorf("API with a client certificate: GET %s = %d, %v; want 200", path, code, err)
		}
	}
}

// TestProbeAddrInvalid: a malformed ProbeAddr is refused by name before
// anything is written.
func TestProbeAddrInvalid(t *testing.T) {
	for _, addr := range []string{"nonsense", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:65536", "127.0.0.1:-1", "[::1:7402"} {
		cfg := nodeConfig(filepath.Join(t.TempDir(), "d"))
		cfg.Bootstrap, cfg.Federation = true, "Bad Probe"
		cfg.ProbeAddr = addr
		n, err := Open(testCtx(t), cfg)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "probe_addr" {
			if n != nil {
				_ = n.Close(testCtx(t))
			}
			t.Errorf("ProbeAddr %q: Open = %v, want a validation error on probe_addr", addr, err)
			continue
		}
		if _, err := os.Stat(cfg.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ProbeAddr %q: Open refused it but made %s (%v)", addr, cfg.Dir, err)
		}
	}
}

// TestMetricsAfterClose: gathering a closed node's registry reports the
// ledger's families as an error, never a panic, and still gathers the
// rest.
func TestMetricsAfterClose(t *testing.T) {
	n, _ := bootstrapNode(t)
	if err := n.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	fams, err := n.Registry().Gather()
	if err == nil {
		t.Error("gathering a closed node's metrics reported no error")
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	if !names["go_goroutines"] || !names["coapp_build_info"] || !names["coapp_erasures_pending"] {
		t.Errorf("a closed node gathers %v, want the runtime's, the build's and the erasures'", names)
	}
	if names["coapp_raft_state"] || names["coapp_badger_lsm_size_bytes"] {
		t.Errorf("a closed node gathers its ledger's families: %v", names)
	}
}
