package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
)

// An operation of the fault test's history: a write of one record, or a
// linearizable read of it.
type opInput struct {
	write bool
	id    uuid.UUID
}

type opOutput struct {
	ok    bool // write: acknowledged
	found bool // read: the record was there
}

// recordModel is the sequential specification, one partition per record
// id: a record is absent until a write of it takes effect, present after.
var recordModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byID := map[uuid.UUID][]porcupine.Operation{}
		var order []uuid.UUID
		for _, op := range history {
			id := op.Input.(opInput).id
			if _, ok := byID[id]; !ok {
				order = append(order, id)
			}
			byID[id] = append(byID[id], op)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, id := range order {
			out = append(out, byID[id])
		}
		return out
	},
	Init: func() any { return false },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(opInput), output.(opOutput)
		if in.write {
			return true, true
		}
		return out.found == state.(bool), state
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(opInput), output.(opOutput)
		if in.write {
			return fmt.Sprintf("write(%s) ok=%v", in.id, out.ok)
		}
		return fmt.Sprintf("read(%s) found=%v", in.id, out.found)
	},
}

// history records every client operation with its start, end and outcome.
type history struct {
	mu      sync.Mutex
	ops     []porcupine.Operation
	pending []porcupine.Operation // writes whose outcome is unknown
	acked   map[uuid.UUID]bool
	written []uuid.UUID
}

func (h *history) add(op porcupine.Operation, unknown bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	in := op.Input.(opInput)
	if in.write {
		h.written = append(h.written, in.id)
		if op.Output.(opOutput).ok {
			h.acked[in.id] = true
		}
	}
	if unknown {
		h.pending = append(h.pending, op)
		return
	}
	h.ops = append(h.ops, op)
}

// TestFaults runs three coapp node processes under concurrent writes and
// reads over HTTP while it kills the leader with SIGKILL and restarts it
// (three times), stops a follower with SIGSTOP for a while, and replaces a
// node with a fresh one that catches up by snapshot. It then checks the
// history for linearizability with porcupine, that every acknowledged
// record is on every node exactly once, and that all nodes have the same
// root at the same size.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster of processes for about a minute")
	}
	n0, token := bootstrapProc(t, "n0")
	waitFor(t, "n0 ready", 30*time.Second, func() error { return readyz(n0.url()) })
	if _, err := client.New(n0.url(), token).PutSchema(context.Background(), api.Schema{Type: "delivery", Version: 1, Fields: []api.Field{}}); err != nil {
		t.Fatal(err)
	}
	procs := map[string]*proc{"n0": n0}
	for _, id := range []string{"n1", "n2"} {
		p := newProc(t, id, "--join", n0.url(), "--token", token, "--keys", filepath.Join(n0.dir, "keys.json"))
		p.copyMemberKeys(n0)
		p.start()
		procs[id] = p
	}
	for _, p := range procs {
		waitFor(t, p.id+" ready", 30*time.Second, func() error { return readyz(p.url()) })
	}

	var mu sync.Mutex
	live := func() []*proc {
		mu.Lock()
		defer mu.Unlock()
		var out []*proc
		for _, p := range procs {
			out = append(out, p)
		}
		return out
	}

	h := &history{acked: map[uuid.UUID]bool{}}
	// Writes acknowledged through each node: every node takes writes
	// (a follower seals and signs them, and sends them to the leader).
	var ackedVia counter
	var clientID atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	began := time.Now()
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cid := int(clientID.Add(1))
			for ctx.Err() == nil {
				ps := live()
				via := ps[rand.IntN(len(ps))]
				c := client.New(via.url(), token)
				c.Retries = 1
				id := uuid.Must(uuid.NewV7())
				rec := client.Record{ID: id, Type: "delivery", Subject: "s-" + id.String()[:8], Time: time.Now().UTC()}
				start := time.Now().UnixNano()
				opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
				_, err := c.Publish(opCtx, []client.Record{rec})
				cancel()
				end := time.Now().UnixNano()
				op := porcupine.Operation{ClientId: cid, Input: opInput{write: true, id: id}, Call: start, Return: end, Output: opOutput{ok: err == nil}}
				h.add(op, err != nil)
				if err == nil {
					ackedVia.Add(via.id)
				}
				// Read it back, and an older one, at linearizable
				// consistency through a random node.
				for _, rid := range []uuid.UUID{id, h.randomWritten()} {
					rc := client.New(live()[rand.IntN(len(live()))].url(), token)
					rc.Retries = 1
					start := time.Now().UnixNano()
					opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
					_, err := rc.Record(opCtx, rid, "linearizable")
					cancel()
					end := time.Now().UnixNano()
					var ae *client.Error
					switch {
					case err == nil:
						h.add(porcupine.Operation{ClientId: cid, Input: opInput{id: rid}, Call: start, Return: end, Output: opOutput{found: true}}, false)
					case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
						h.add(porcupine.Operation{ClientId: cid, Input: opInput{id: rid}, Call: start, Return: end, Output: opOutput{found: false}}, false)
					}
					// Reads that failed tell nothing and change nothing.
				}
			}
		}()
	}

	leaderOf := func() *proc {
		var leader *proc
		waitFor(t, "a leader", 30*time.Second, func() error {
			for _, p := range live() {
				st, err := client.New(p.url(), token).Status(context.Background())
				if err == nil && st.State == "Leader" {
					leader = p
					return nil
				}
			}
			return errors.New("no node leads")
		})
		return leader
	}

	time.Sleep(2 * time.Second)
	for round := 0; round < 3; round++ {
		l := leaderOf()
		t.Logf("%v round %d: SIGKILL leader %s", time.Since(began).Round(time.Millisecond), round, l.id)
		l.kill()
		time.Sleep(1500 * time.Millisecond)
		l.start() // same directory, ports and flags
		waitFor(t, l.id+" ready after restart", 60*time.Second, func() error { return readyz(l.url()) })
		time.Sleep(time.Second)
	}

	var follower *proc
	leader := leaderOf()
	for _, p := range live() {
		if p != leader {
			follower = p
			break
		}
	}
	t.Logf("%v SIGSTOP follower %s for 3s", time.Since(began).Round(time.Millisecond), follower.id)
	follower.signal(syscall.SIGSTOP)
	time.Sleep(3 * time.Second)
	follower.signal(syscall.SIGCONT)
	waitFor(t, follower.id+" ready after SIGCONT", 60*time.Second, func() error { return readyz(follower.url()) })

	// Replace a follower with a fresh node; it catches up by snapshot (the
	// snapshot threshold is 200 entries and the log is far longer).
	leader = leaderOf()
	var gone *proc
	for _, p := range live() {
		if p != leader {
			gone = p
			break
		}
	}
	t.Logf("%v remove %s, join n3", time.Since(began).Round(time.Millisecond), gone.id)
	mu.Lock()
	delete(procs, gone.id)
	mu.Unlock()
	if err := client.New(leader.url(), token).RemoveNode(context.Background(), gone.id); err != nil {
		t.Fatalf("remove %s: %v", gone.id, err)
	}
	gone.kill()
	n3 := newProc(t, "n3", "--join", leader.url(), "--token", token, "--keys", filepath.Join(n0.dir, "keys.json"))
	n3.copyMemberKeys(n0)
	n3.start()
	waitFor(t, "n3 ready", 60*time.Second, func() error { return readyz(n3.url()) })
	mu.Lock()
	procs["n3"] = n3
	mu.Unlock()

	time.Sleep(2 * time.Second)

	stop()
	wg.Wait()
	t.Logf("%v load stopped; writes acknowledged through each node: %v", time.Since(began).Round(time.Millisecond), ackedVia.snapshot())
	for _, id := range []string{"n0", "n1", "n2"} {
		if ackedVia.snapshot()[id] == 0 {
			t.Errorf("no write was acknowledged through %s", id)
		}
	}

	// Resolve the writes whose outcome was unknown: one that took effect is
	// in the log now, and took effect between its call and the end.
	final := live()
	var size uint64
	var root string
	waitFor(t, "all nodes converge", 60*time.Second, func() error {
		size, root = 0, ""
		for i, p := range final {
			li, err := client.New(p.url(), token).Ledger(context.Background(), "stale")
			if err != nil {
				return err
			}
			if i > 0 && (li.Size != size || li.Root.String() != root) {
				return fmt.Errorf("%s at %d/%s, another at %d/%s", p.id, li.Size, li.Root, size, root)
			}
			size, root = li.Size, li.Root.String()
		}
		return nil
	})
	if b, _ := os.ReadFile(n3.logPath); !strings.Contains(string(b), "restoring ledger state from snapshot") {
		t.Errorf("n3 did not catch up by snapshot; its log ends:\n%s", n3.log())
	}
	clients := map[*proc]*client.Client{}
	for _, p := range final {
		clients[p] = client.New(p.url(), token)
	}
	present := func(id uuid.UUID, p *proc) (uint64, bool) {
		info, err := clients[p].Record(context.Background(), id, "stale")
		if err != nil {
			var ae *client.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
				t.Errorf("read %s on %s: %v", id, p.id, err)
			}
			return 0, false
		}
		return info.Index, true
	}
	end := time.Now().UnixNano()
	ops := h.ops
	for _, op := range h.pending {
		if _, ok := present(op.Input.(opInput).id, final[0]); ok {
			op.Return = end
			ops = append(ops, op)
		}
	}
	// Every acknowledged record is on every node, at one index.
	ids := make(chan uuid.UUID)
	var cwg sync.WaitGroup
	for w := 0; w < 16; w++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for id := range ids {
				var at uint64
				for i, p := range final {
					idx, ok := present(id, p)
					if !ok {
						t.Errorf("acknowledged record %s missing on %s", id, p.id)
						continue
					}
					if i > 0 && idx != at {
						t.Errorf("record %s at %d on one node, %d on %s", id, at, idx, p.id)
					}
					at = idx
				}
			}
		}()
	}
	for id := range h.acked {
		ids <- id
	}
	close(ids)
	cwg.Wait()
	t.Logf("%v acknowledged records checked on every node", time.Since(began).Round(time.Millisecond))
	// Exactly once: the log holds no more entries than the records written,
	// each after its batch signature (one record per request here), plus
	// the federation's own entries (genesis, nodes, tokens).
	if size > 2*uint64(len(h.written))+16 {
		t.Errorf("the log holds %d entries for %d records written", size, len(h.written))
	}
	res := porcupine.CheckOperationsTimeout(recordModel, ops, 60*time.Second)
	if res != porcupine.Ok {
		t.Errorf("history of %d operations is not linearizable (%v)", len(ops), res)
	}
	t.Logf("%d operations, %d writes acknowledged, %d unknown; final size %d; all nodes at root %s", len(ops), len(h.acked), len(h.pending), size, root)
}

func (h *history) randomWritten() uuid.UUID {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.written) == 0 {
		return uuid.Nil
	}
	return h.written[rand.IntN(len(h.written))]
}

// TestRecordModelCatchesLostWrite checks that the checker would catch what
// TestFaults looks for: a read that misses an acknowledged write.
func TestRecordModelCatchesLostWrite(t *testing.T) {
	id := uuid.New()
	w := porcupine.Operation{ClientId: 1, Input: opInput{write: true, id: id}, Call: 0, Return: 10, Output: opOutput{ok: true}}
	lost := porcupine.Operation{ClientId: 2, Input: opInput{id: id}, Call: 20, Return: 30, Output: opOutput{found: false}}
	seen := porcupine.Operation{ClientId: 2, Input: opInput{id: id}, Call: 20, Return: 30, Output: opOutput{found: true}}
	early := porcupine.Operation{ClientId: 3, Input: opInput{id: id}, Call: 5, Return: 8, Output: opOutput{found: false}}
	if porcupine.CheckOperations(recordModel, []porcupine.Operation{w, lost}) {
		t.Error("a read after an acknowledged write that misses it passed as linearizable")
	}
	if !porcupine.CheckOperations(recordModel, []porcupine.Operation{w, seen, early}) {
		t.Error("a correct history failed")
	}
}
