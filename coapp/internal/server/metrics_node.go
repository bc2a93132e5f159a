package server

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"coapp.coop/ledger"
)

// NewRegistry returns a Prometheus registry of the node's own holding
// everything GET /metrics serves: the service's Metrics, the ledger's
// Raft and Badger statistics read at scrape time (LedgerCollector), the
// Go runtime's and the process's collectors, and coapp_build_info. Each
// node has its own: two nodes in one process never share a metric.
func NewRegistry(s *Service) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		s.metrics,
		NewLedgerCollector(s.ledger),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("coapp: metrics: %w", err)
		}
	}
	return reg, nil
}

// buildInfo is coapp_build_info: 1, labelled with what the binary was
// built from ("unknown" where the build recorded nothing).
func buildInfo() prometheus.Collector {
	version, revision := "unknown", "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" {
			version = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "coapp_build_info",
		Help:        "1, labelled with the module version, Go version and version control revision the binary was built from.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version(), "revision": revision},
	})
	g.Set(1)
	return g
}

// LedgerCollector reads a ledger's state at scrape time: its Raft status
// and statistics, its erasures' purge, and Badger's statistics of its two
// databases.
type LedgerCollector struct {
	l *ledger.Ledger

	raftState, term, commit, applied, size, servers *prometheus.Desc

	lastLogIndex, lastLogTerm, lastSnapIndex, lastSnapTerm *prometheus.Desc
	fsmPending, peers, voters, lastContact                 *prometheus.Desc

	erasuresPending, erasureOldest, erasurePurged, erasureVerified, purgeRounds *prometheus.Desc

	lsmBytes, vlogBytes, levelTables, levelBytes, levelTarget *prometheus.Desc
	blockHits, blockMisses, indexHits, indexMisses            *prometheus.Desc
}

var _ prometheus.Collector = (*LedgerCollector)(nil)

// raftStates are the values of coapp_raft_state's label.
var raftStates = []string{"Follower", "Candidate", "Leader", "Shutdown"}

// NewLedgerCollector returns the collector of l.
func NewLedgerCollector(l *ledger.Ledger) *LedgerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &LedgerCollector{
		l: l,

		raftState: d("coapp_raft_state", "Raft state of this node (1 for the current state).", "state"),
		term:      d("coapp_raft_term", "Current Raft term."),
		commit:    d("coapp_raft_commit_index", "Raft commit index known to this node."),
		applied:   d("coapp_raft_applied_index", "Raft index applied to the ledger state."),
		size:      d("coapp_ledger_size", "Entries in the ledger on this node."),
		servers:   d("coapp_cluster_servers", "Servers in the Raft configuration."),

		lastLogIndex:  d("coapp_raft_last_log_index", "Index of the last entry in this node's Raft log."),
		lastLogTerm:   d("coapp_raft_last_log_term", "Term of the last entry in this node's Raft log."),
		lastSnapIndex: d("coapp_raft_last_snapshot_index", "Raft index of this node's latest snapshot (0 before the first)."),
		lastSnapTerm:  d("coapp_raft_last_snapshot_term", "Raft term of this node's latest snapshot (0 before the first)."),
		fsmPending:    d("coapp_raft_fsm_pending", "Committed batches of Raft commands queued for the state machine."),
		peers:         d("coapp_raft_peers", "Other voters in the Raft configuration, when this node is a voter (0 otherwise)."),
		voters:        d("coapp_raft_voters", "Voters in the Raft configuration."),
		lastContact:   d("coapp_raft_last_contact_seconds", "Time since this follower last heard from the leader (0 on the leader, and before any contact)."),

		erasuresPending: d("coapp_erasures_pending", "Destroyed keys this node has yet to verify gone from its files."),
		erasureOldest:   d("coapp_erasure_oldest_pending_seconds", "Age of the oldest erasure this node has yet to verify (0 when none)."),
		erasurePurged:   d("coapp_erasure_purged_index", "Raft index through which destroyed keys are purged from this node's files."),
		erasureVerified: d("coapp_erasure_verified_index", "Raft index through which a scan of this node's files found no destroyed key."),
		purgeRounds:     d("coapp_purge_rounds_total", "Purge rounds this node ran since it started (one covers the erasures of a --purge-delay)."),

		lsmBytes:    d("coapp_badger_lsm_size_bytes", "Apparent size of a Badger database's table files (store: raft or state).", "store"),
		vlogBytes:   d("coapp_badger_vlog_size_bytes", "Apparent size of a Badger database's value-log files, preallocated and sparse (store: raft or state).", "store"),
		levelTables: d("coapp_badger_level_tables", "Tables in a level of a Badger database's LSM tree.", "store", "level"),
		levelBytes:  d("coapp_badger_level_size_bytes", "Size of the tables in a level of a Badger database's LSM tree.", "store", "level"),
		levelTarget: d("coapp_badger_level_target_size_bytes", "Size above which Badger compacts a level into the next.", "store", "level"),
		blockHits:   d("coapp_badger_block_cache_hits_total", "Lookups found in a Badger database's block cache.", "store"),
		blockMisses: d("coapp_badger_block_cache_misses_total", "Lookups missed in a Badger database's block cache.", "store"),
		indexHits:   d("coapp_badger_index_cache_hits_total", "Lookups found in a Badger database's index cache (0 when it is off).", "store"),
		indexMisses: d("coapp_badger_index_cache_misses_total", "Lookups missed in a Badger database's index cache (0 when it is off).", "store"),
	}
}

func (c *LedgerCollector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{
		c.raftState, c.term, c.commit, c.applied, c.size, c.servers,
		c.lastLogIndex, c.lastLogTerm, c.lastSnapIndex, c.lastSnapTerm,
		c.fsmPending, c.peers, c.voters, c.lastContact,
		c.erasuresPending, c.erasureOldest, c.erasurePurged, c.erasureVerified, c.purgeRounds,
		c.lsmBytes, c.vlogBytes, c.levelTables, c.levelBytes, c.levelTarget,
		c.blockHits, c.blockMisses, c.indexHits, c.indexMisses,
	}
}

// Describe sends the descriptors of the metrics (prometheus.Collector).
func (c *LedgerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// Collect reads the ledger and sends its metrics (prometheus.Collector).
// A read that fails (the ledger closed) is reported as an invalid metric,
// which the scrape logs, and the other families are still served.
func (c *LedgerCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}

	if st, err := c.l.Status(); err != nil {
		ch <- prometheus.NewInvalidMetric(c.raftState, err)
	} else {
		for _, s := range raftStates {
			v := 0.0
			if s == st.State {
				v = 1
			}
			gauge(c.raftState, v, s)
		}
		gauge(c.term, float64(st.Term))
		gauge(c.commit, float64(st.CommitIndex))
		gauge(c.applied, float64(st.AppliedIndex))
		gauge(c.size, float64(st.Size))
		gauge(c.servers, float64(len(st.Servers)))
		voters := 0
		for _, s := range st.Servers {
			if s.Voter {
				voters++
			}
		}
		gauge(c.voters, float64(voters))
		contact := 0.0
		if !st.LastContact.IsZero() {
			contact = time.Since(st.LastContact).Seconds()
		}
		gauge(c.lastContact, contact)
	}

	if rs, err := c.l.RaftStats(); err != nil {
		ch <- prometheus.NewInvalidMetric(c.lastLogIndex, err)
	} else {
		gauge(c.lastLogIndex, float64(rs.LastLogIndex))
		gauge(c.lastLogTerm, float64(rs.LastLogTerm))
		gauge(c.lastSnapIndex, float64(rs.LastSnapshotIndex))
		gauge(c.lastSnapTerm, float64(rs.LastSnapshotTerm))
		gauge(c.fsmPending, float64(rs.FSMPending))
		gauge(c.peers, float64(rs.NumPeers))
	}

	ps := c.l.PurgeStatus()
	age := 0.0
	if !ps.Since.IsZero() {
		age = time.Since(ps.Since).Seconds()
	}
	gauge(c.erasuresPending, float64(ps.Pending))
	gauge(c.erasureOldest, age)
	gauge(c.erasurePurged, float64(ps.Purged))
	gauge(c.erasureVerified, float64(ps.Verified))
	counter(c.purgeRounds, float64(ps.Rounds))

	stores, err := c.l.StoreStats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.lsmBytes, err)
		return
	}
	for name, s := range stores {
		gauge(c.lsmBytes, float64(s.LSMBytes), name)
		gauge(c.vlogBytes, float64(s.ValueLogBytes), name)
		for _, l := range s.Levels {
			level := strconv.Itoa(l.Level)
			gauge(c.levelTables, float64(l.Tables), name, level)
			gauge(c.levelBytes, float64(l.Bytes), name, level)
			gauge(c.levelTarget, float64(l.TargetBytes), name, level)
		}
		counter(c.blockHits, float64(s.BlockCache.Hits), name)
		counter(c.blockMisses, float64(s.BlockCache.Misses), name)
		counter(c.indexHits, float64(s.IndexCache.Hits), name)
		counter(c.indexMisses, float64(s.IndexCache.Misses), name)
	}
}
