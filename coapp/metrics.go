package coapp

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"
)

// metrics holds the node's counters and histograms, exported in the
// Prometheus text format at GET /metrics. Gauges are read at scrape time.
type metrics struct {
	mu       sync.Mutex
	requests map[[2]string]uint64 // route, status -> count
	latency  histogram
	failures uint64
	// Signed batches appended through the coalescer, the publish
	// requests they carried, and the requests signed again alone after
	// the batch that gathered them failed.
	batches, batchRequests, batchFallbacks uint64
}

// appendBuckets are the upper bounds, in seconds, of the append latency
// histogram.
var appendBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

type histogram struct {
	counts []uint64 // per bucket, then +Inf
	sum    float64
	n      uint64
}

func newMetrics() *metrics {
	return &metrics{
		requests: map[[2]string]uint64{},
		latency:  histogram{counts: make([]uint64, len(appendBuckets)+1)},
	}
}

func (m *metrics) request(route string, status int) {
	m.mu.Lock()
	m.requests[[2]string{route, fmt.Sprint(status)}]++
	m.mu.Unlock()
}

// snapshotRequests returns the number of requests counted so far.
func (m *metrics) snapshotRequests() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n uint64
	for _, c := range m.requests {
		n += c
	}
	return n
}

func (m *metrics) appendLatency(d time.Duration, err error) {
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.failures++
		return
	}
	i := sort.SearchFloat64s(appendBuckets, s)
	m.latency.counts[i]++
	m.latency.sum += s
	m.latency.n++
}

// signedBatch counts a batch of requests signed and appended together.
func (m *metrics) signedBatch(requests int, failed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches++
	m.batchRequests += uint64(requests)
	if failed && requests > 1 {
		m.batchFallbacks += uint64(requests)
	}
}

func (n *Node) handleMetrics(w http.ResponseWriter, _ *http.Request, _ caller) error {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	st, err := n.ledger.Status()
	if err != nil {
		return err
	}
	states := []string{"Follower", "Candidate", "Leader", "Shutdown"}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# HELP coapp_raft_state Raft state of this node (1 for the current state).\n# TYPE coapp_raft_state gauge\n")
	for _, s := range states {
		v := 0
		if s == st.State {
			v = 1
		}
		p("coapp_raft_state{state=%q} %d\n", s, v)
	}
	p("# HELP coapp_raft_term Current Raft term.\n# TYPE coapp_raft_term gauge\ncoapp_raft_term %d\n", st.Term)
	p("# HELP coapp_raft_commit_index Raft commit index known to this node.\n# TYPE coapp_raft_commit_index gauge\ncoapp_raft_commit_index %d\n", st.CommitIndex)
	p("# HELP coapp_raft_applied_index Raft index applied to the ledger state.\n# TYPE coapp_raft_applied_index gauge\ncoapp_raft_applied_index %d\n", st.AppliedIndex)
	p("# HELP coapp_ledger_size Entries in the ledger on this node.\n# TYPE coapp_ledger_size gauge\ncoapp_ledger_size %d\n", st.Size)
	p("# HELP coapp_cluster_servers Servers in the Raft configuration.\n# TYPE coapp_cluster_servers gauge\ncoapp_cluster_servers %d\n", len(st.Servers))
	n.metrics.write(w)
	return nil
}

func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprint(w, "# HELP coapp_append_duration_seconds Time to append a request's records, until durable on a quorum.\n# TYPE coapp_append_duration_seconds histogram\n")
	var cum uint64
	for i, b := range appendBuckets {
		cum += m.latency.counts[i]
		fmt.Fprintf(w, "coapp_append_duration_seconds_bucket{le=\"%g\"} %d\n", b, cum)
	}
	cum += m.latency.counts[len(appendBuckets)]
	fmt.Fprintf(w, "coapp_append_duration_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(w, "coapp_append_duration_seconds_sum %g\ncoapp_append_duration_seconds_count %d\n", m.latency.sum, m.latency.n)
	fmt.Fprintf(w, "# HELP coapp_append_failures_total Appends that returned an error.\n# TYPE coapp_append_failures_total counter\ncoapp_append_failures_total %d\n", m.failures)
	fmt.Fprintf(w, "# HELP coapp_signed_batches_total Signed batches of records this node appended, each for one or more publish requests of one member.\n# TYPE coapp_signed_batches_total counter\ncoapp_signed_batches_total %d\n", m.batches)
	fmt.Fprintf(w, "# HELP coapp_signed_batch_requests_total Publish requests the signed batches carried.\n# TYPE coapp_signed_batch_requests_total counter\ncoapp_signed_batch_requests_total %d\n", m.batchRequests)
	fmt.Fprintf(w, "# HELP coapp_signed_batch_fallbacks_total Requests signed and appended again alone after the batch that gathered them failed.\n# TYPE coapp_signed_batch_fallbacks_total counter\ncoapp_signed_batch_fallbacks_total %d\n", m.batchFallbacks)
	fmt.Fprint(w, "# HELP coapp_http_requests_total HTTP requests by route and status.\n# TYPE coapp_http_requests_total counter\n")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		fmt.Fprintf(w, "coapp_http_requests_total{route=%q,status=%q} %d\n", k[0], k[1], m.requests[k])
	}
}
