package server

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Metrics holds the node's counters and histograms, exported in the
// Prometheus text format at GET /metrics (Write). Gauges are read at
// scrape time. It is safe for concurrent use.
type Metrics struct {
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

// NewMetrics returns zeroed metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		requests: map[[2]string]uint64{},
		latency:  histogram{counts: make([]uint64, len(appendBuckets)+1)},
	}
}

// Request counts an HTTP request by route and status.
func (m *Metrics) Request(route string, status int) {
	m.mu.Lock()
	m.requests[[2]string{route, fmt.Sprint(status)}]++
	m.mu.Unlock()
}

// Requests returns the number of requests counted so far.
func (m *Metrics) Requests() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n uint64
	for _, c := range m.requests {
		n += c
	}
	return n
}

func (m *Metrics) appendLatency(d time.Duration, err error) {
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
func (m *Metrics) signedBatch(requests int, failed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches++
	m.batchRequests += uint64(requests)
	if failed && requests > 1 {
		m.batchFallbacks += uint64(requests)
	}
}

// Write writes the counters in the Prometheus text format.
func (m *Metrics) Write(w io.Writer) {
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

// SignedBatches returns the signed batches appended through the
// coalescer, the publish requests they carried, and the requests signed
// again alone after the batch that gathered them failed.
func (m *Metrics) SignedBatches() (batches, requests, fallbacks uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.batches, m.batchRequests, m.batchFallbacks
}
