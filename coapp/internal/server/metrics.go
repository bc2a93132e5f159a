package server

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the node's counters and histograms of requests and
// appends. It is a prometheus.Collector, registered in the node's own
// registry (NewRegistry), never in the process-wide default one, so that
// nodes in one process keep theirs apart. It is safe for concurrent use.
type Metrics struct {
	requests       *prometheus.CounterVec
	requestsN      atomic.Uint64
	appendDuration prometheus.Histogram
	appendFailures prometheus.Counter
	// Signed batches appended through the coalescer, the publish
	// requests they carried, and the requests signed again alone after
	// the batch that gathered them failed.
	batches, batchRequests, batchFallbacks atomic.Uint64
	batchCounters                          []prometheus.Collector
}

var _ prometheus.Collector = (*Metrics)(nil)

// appendBuckets are the upper bounds, in seconds, of the append latency
// histogram.
var appendBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// NewMetrics returns zeroed metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coapp_http_requests_total",
			Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		appendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "coapp_append_duration_seconds",
			Help:    "Time to append a request's records, until durable on a quorum.",
			Buckets: appendBuckets,
		}),
		appendFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coapp_append_failures_total",
			Help: "Appends that returned an error.",
		}),
	}
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	m.batchCounters = []prometheus.Collector{
		counter("coapp_signed_batches_total", "Signed batches of records this node appended, each for one or more publish requests of one member.", &m.batches),
		counter("coapp_signed_batch_requests_total", "Publish requests the signed batches carried.", &m.batchRequests),
		counter("coapp_signed_batch_fallbacks_total", "Requests signed and appended again alone after the batch that gathered them failed.", &m.batchFallbacks),
	}
	return m
}

func (m *Metrics) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{m.requests, m.appendDuration, m.appendFailures}, m.batchCounters...)
}

// Describe sends the descriptors of the metrics (prometheus.Collector).
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect sends the current values (prometheus.Collector).
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

// Request counts an HTTP request by route and status.
func (m *Metrics) Request(route string, status int) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.requestsN.Add(1)
}

// Requests returns the number of requests counted so far.
func (m *Metrics) Requests() uint64 { return m.requestsN.Load() }

// appendLatency observes a successful append's duration, or counts a
// failed one.
func (m *Metrics) appendLatency(d time.Duration, err error) {
	if err != nil {
		m.appendFailures.Inc()
		return
	}
	m.appendDuration.Observe(d.Seconds())
}

// signedBatch counts a batch of requests signed and appended together.
func (m *Metrics) signedBatch(requests int, failed bool) {
	m.batches.Add(1)
	m.batchRequests.Add(uint64(requests))
	if failed && requests > 1 {
		m.batchFallbacks.Add(uint64(requests))
	}
}

// SignedBatches returns the signed batches appended through the
// coalescer, the publish requests they carried, and the requests signed
// again alone after the batch that gathered them failed.
func (m *Metrics) SignedBatches() (batches, requests, fallbacks uint64) {
	return m.batches.Load(), m.batchRequests.Load(), m.batchFallbacks.Load()
}
