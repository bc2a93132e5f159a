package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp"
	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
	"coapp.coop/internal/raftfloor"
)

// runBench publishes a bounded load over HTTP to an in-process cluster (or
// to running nodes with --target) and, in the same run, measures the floor:
// raw hashicorp/raft Apply with a trivial state machine on the same stores
// and cluster size, with as many records per Apply as per request.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("bench", stderr)
	nodes := f.int("nodes", 1, "in-process cluster size: 1 or 3")
	records := f.int("records", 100000, "records to publish")
	clients := f.int("clients", 64, "concurrent clients")
	batch := f.int("batch", 100, "records per request (and per Apply for the floor)")
	size := f.int("size", 300, "bytes per record")
	subjects := f.int("subjects", 20000, "people the records are about (each has a data key; 0: a new person per record, the worst case)")
	target := f.string("target", "", "URL of a running node to load instead of an in-process cluster")
	token := f.String("token", "", "token for --target ($COAPP_TOKEN)")
	tokenFile := f.string("token-file", "", "file holding the token for --target")
	tlsCert := f.string("tls-cert", "", "client certificate for --target with mutual TLS")
	tlsKey := f.string("tls-key", "", "key for --tls-cert")
	tlsCA := f.string("tls-ca", "", "CA that signs --target's certificate")
	floor := f.bool("floor", true, "measure the raw Raft floor too")
	cpuprofile := f.string("cpuprofile", "", "write a CPU profile of the load (not the floor) to this file")
	memprofile := f.string("memprofile", "", "write a profile of the memory allocated by the load (not the floor) to this file")
	if err := f.parse(args, 0); err != nil {
		return err
	}
	if *nodes != 1 && *nodes != 3 {
		return usageError{"--nodes must be 1 or 3"}
	}
	if err := checkBench(*records, *clients, *batch, *size, *subjects); err != nil {
		return err
	}
	if *target != "" {
		if err := checkURL("target", *target); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "coapp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var ld *loader
	if *target == "" {
		cluster, err := startBenchCluster(ctx, dir, *nodes)
		if err != nil {
			return err
		}
		defer cluster.close()
		ld = newLoader(cluster.nodes[0].URL(), cluster.token, *clients, nil)
		fmt.Fprintf(stdout, "coapp bench: %d node(s), %d records of %d bytes, %d clients, %d records per request\n",
			*nodes, *records, *size, *clients, *batch)
	} else {
		cf := clientFlags{url: target, token: token, tokenFile: tokenFile, cert: tlsCert, key: tlsKey, ca: tlsCA}
		tok, tlsCfg, err := cf.credentials()
		if err != nil {
			return err
		}
		ld = newLoader(*target, tok, *clients, tlsCfg)
		if err := putBenchSchema(ctx, ld.c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "coapp bench: %s, %d records of %d bytes, %d clients, %d records per request\n",
			*target, *records, *size, *clients, *batch)
	}
	requests := (*records + *batch - 1) / *batch
	if *memprofile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
	}
	res, err := measure(*clients, requests, func(i int) error {
		return ld.publish(ctx, i, *batch, *size, *subjects)
	})
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		if err := writeHeapProfile(*memprofile); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	res.print(stdout, "coapp over HTTP", requests**batch)
	if !*floor {
		return nil
	}
	fc, err := raftfloor.Start(ctx, dir, raftfloor.Options{Nodes: *nodes})
	if err != nil {
		return err
	}
	defer fc.Close()
	cmd := make([]byte, *batch**size)
	_, _ = rand.Read(cmd)
	fres, err := measure(*clients, requests, func(int) error { return fc.Apply(cmd) })
	if err != nil {
		return err
	}
	fres.print(stdout, fmt.Sprintf("raw Raft floor (%d records per Apply)", *batch), requests**batch)
	n := requests * *batch
	fmt.Fprintf(stdout, "ratio: %.2fx the floor", res.rate(n)/fres.rate(n))
	if res.usage && fres.usage && res.cpuPerRecord(n) > 0 {
		fmt.Fprintf(stdout, " (%.2fx in CPU per record)", float64(fres.cpuPerRecord(n))/float64(res.cpuPerRecord(n)))
	}
	fmt.Fprintln(stdout)
	return nil
}

// minRecordSize is the size of a bench record's JSON without its padding
// (its id, type, subject, time and field names): the smallest --size.
const minRecordSize = 150

// checkBench refuses bench sizes that cannot work: a record smaller than
// its JSON, or counts beyond what one run can hold.
func checkBench(records, clients, batch, size, subjects int) error {
	switch {
	case records < 1 || records > 100_000_000:
		return usageError{"--records must be from 1 to 100000000"}
	case clients < 1 || clients > 10_000:
		return usageError{"--clients must be from 1 to 10000"}
	case batch < 1 || batch > 100_000:
		return usageError{"--batch must be from 1 to 100000"}
	case size < minRecordSize || size > 1<<20:
		return usageError{fmt.Sprintf("--size must be from %d (a record's JSON without its padding) to 1048576 bytes", minRecordSize)}
	case subjects < 0:
		return usageError{"--subjects must not be negative (0: a new person per record)"}
	}
	return nil
}

// benchCluster is an in-process federation on loopback.
type benchCluster struct {
	nodes []*coapp.Node
	token string
}

func startBenchCluster(ctx context.Context, dir string, n int) (*benchCluster, error) {
	bc := &benchCluster{}
	for i := 0; i < n; i++ {
		cfg := coapp.Config{
			Dir:      fmt.Sprintf("%s/node-%d", dir, i),
			NodeID:   fmt.Sprintf("bench-%d", i),
			HTTPAddr: "127.0.0.1:0",
			RaftAddr: "127.0.0.1:0",
		}
		if i == 0 {
			cfg.Bootstrap, cfg.Federation = true, "bench"
		} else {
			cfg.Join, cfg.JoinToken, cfg.KeyFile = bc.nodes[0].URL(), bc.token, bc.nodes[0].KeyFile()
		}
		// The node's goroutines carry its id as a profiling label
		// (go tool pprof -tagfocus node=bench-1).
		var node *coapp.Node
		var err error
		pprof.Do(ctx, pprof.Labels("node", cfg.NodeID), func(ctx context.Context) {
			node, err = coapp.Open(ctx, cfg)
		})
		if err != nil {
			bc.close()
			return nil, err
		}
		bc.nodes = append(bc.nodes, node)
		if i == 0 {
			b, err := os.ReadFile(cfg.Dir + "/" + coapp.AdminTokenFile)
			if err != nil {
				bc.close()
				return nil, err
			}
			bc.token = string(b[:len(b)-1])
			if err := putBenchSchema(ctx, client.New(node.URL(), bc.token)); err != nil {
				bc.close()
				return nil, err
			}
		}
	}
	return bc, nil
}

// benchSchema is the schema of the bench's records.
var benchSchema = api.Schema{Type: "purchase", Version: 1, Fields: []api.Field{
	{Name: "note", Kind: "string", Class: "attribute", Policy: api.Policy{Action: "keep"}}}}

// putBenchSchema registers the bench's schema, unless the federation has
// one for its type already (a bench run before): then a record that does
// not fit it is refused with 400, naming the field.
func putBenchSchema(ctx context.Context, c *client.Client) error {
	_, err := c.PutSchema(ctx, benchSchema)
	var e *client.Error
	if errors.As(err, &e) && e.Status == http.StatusConflict {
		return nil
	}
	return err
}

func (bc *benchCluster) close() {
	for i := len(bc.nodes) - 1; i >= 0; i-- {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = bc.nodes[i].Close(ctx)
		cancel()
	}
}

// writeHeapProfile writes the allocations profile (go tool pprof
// -sample_index=alloc_space) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loader is the load generator: it writes each request's JSON by hand
// into a reused buffer, so that the clients, which share the machine's
// cores with the nodes, weigh on them as little as they can (encoding
// through client.Publish cost a sixth of the CPU of a one-node run), and
// posts it with the client package, which retries while a leader is
// being elected.
type loader struct {
	c    *client.Client
	bufs sync.Pool
}

func newLoader(url, token string, clients int, tlsCfg *tls.Config) *loader {
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: clients, TLSClientConfig: tlsCfg}}
	return &loader{
		c:    client.New(url, token, client.WithHTTPClient(hc)),
		bufs: sync.Pool{New: func() any { return new(benchBuf) }},
	}
}

type benchBuf struct {
	body []byte
	pad  []byte
}

// publish posts request i's n records, each about size bytes of JSON,
// about subjects people (a new one per record when 0): members of a
// cooperative trade again and again, and each person's first record
// creates their data key. It checks that every record got a receipt.
func (l *loader) publish(ctx context.Context, i, n, size, subjects int) error {
	b := l.bufs.Get().(*benchBuf)
	defer l.bufs.Put(b)
	pad := max(0, (size-minRecordSize)/2)
	b.pad = slices.Grow(b.pad[:0], pad)[:pad]
	body := append(b.body[:0], `{"records":[`...)
	now := time.Now().UTC()
	ids := make([]uuid.UUID, n)
	for j := range n {
		_, _ = rand.Read(b.pad)
		ids[j] = uuid.Must(uuid.NewV7())
		if j > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"id":"`...)
		body = append(body, ids[j].String()...)
		body = append(body, `","type":"purchase","subject":"`...)
		body = append(body, benchSubject(i*n+j, subjects)...)
		body = append(body, `","time":"`...)
		body = now.AppendFormat(body, time.RFC3339Nano)
		body = append(body, `","fields":{"note":"`...)
		body = hex.AppendEncode(body, b.pad)
		body = append(body, `"}}`...)
	}
	body = append(body, `]}`...)
	b.body = body
	rs, err := l.c.PublishJSON(ctx, body)
	if err != nil {
		return err
	}
	if len(rs) != n {
		return fmt.Errorf("POST /v1/records: %d receipts for %d records", len(rs), n)
	}
	for j, rc := range rs {
		if rc.ID != ids[j] {
			return fmt.Errorf("POST /v1/records: receipt %d is for %s, not %s", j, rc.ID, ids[j])
		}
	}
	return nil
}

// result is one measured load.
type result struct {
	elapsed time.Duration
	lat     []time.Duration
	// The process's CPU time and minor page faults during the load
	// (usage false where the system does not say): on a shared machine,
	// CPU per record varies less from run to run than records/s.
	user, system time.Duration
	faults       int64
	usage        bool
}

// measure runs total operations over clients goroutines.
func measure(clients, total int, op func(i int) error) (result, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	lat := make([]time.Duration, total)
	user0, sys0, faults0, usage := processUsage()
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				t := time.Now()
				if err := op(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	elapsed := time.Since(start)
	user1, sys1, faults1, usage1 := processUsage()
	slices.Sort(lat)
	return result{elapsed: elapsed, lat: lat, user: user1 - user0, system: sys1 - sys0, faults: faults1 - faults0, usage: usage && usage1}, nil
}

// cpuPerRecord is the process's CPU time per record during the load.
func (r result) cpuPerRecord(records int) time.Duration {
	return (r.user + r.system) / time.Duration(records)
}

func (r result) rate(records int) float64 { return float64(records) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

func (r result) print(w io.Writer, name string, records int) {
	fmt.Fprintf(w, "  %-40s %10.0f records/s   p50 %-9v p99 %-9v p999 %v\n", name, r.rate(records),
		r.pct(0.50).Round(10*time.Microsecond), r.pct(0.99).Round(10*time.Microsecond), r.pct(0.999).Round(10*time.Microsecond))
	if r.usage {
		fmt.Fprintf(w, "  %-40s %10.1f µs CPU per record (%.1f s user, %.1f s system), %d minor page faults\n", "",
			float64(r.cpuPerRecord(records).Nanoseconds())/1e3, r.user.Seconds(), r.system.Seconds(), r.faults)
	}
}

func benchSubject(k, subjects int) string {
	if subjects <= 0 {
		return fmt.Sprintf("member-new-%d", k)
	}
	return fmt.Sprintf("member-%d", (k*7919)%subjects)
}
