package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// faultNet is a loopback network whose links between nodes can be cut and
// healed. Each connection opens with a line naming the dialling node, so
// that the accepting side knows its peer too.
type faultNet struct {
	mu    sync.Mutex
	cut   map[[2]string]bool       // unordered pair of Raft addresses
	conns map[[2]string][]net.Conn // live connections per pair
}

func newFaultNet() *faultNet {
	return &faultNet{cut: map[[2]string]bool{}, conns: map[[2]string][]net.Conn{}}
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// partition cuts every link between a node of side and a node outside it.
func (f *faultNet) partition(side []string, all []string) {
	in := map[string]bool{}
	for _, s := range side {
		in[s] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range all {
		for _, b := range all {
			if in[a] && !in[b] {
				p := pair(a, b)
				f.cut[p] = true
				for _, c := range f.conns[p] {
					c.Close()
				}
				delete(f.conns, p)
			}
		}
	}
}

func (f *faultNet) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = map[[2]string]bool{}
}

// track registers a connection, or closes it when its link is cut.
func (f *faultNet) track(a, b string, c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := pair(a, b)
	if f.cut[p] {
		c.Close()
		return false
	}
	f.conns[p] = append(f.conns[p], c)
	return true
}

// faultStream is one node's raft.StreamLayer on the faultNet.
type faultStream struct {
	net.Listener
	net  *faultNet
	self string
}

func (f *faultNet) stream(tb testing.TB) *faultStream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return &faultStream{Listener: ln, net: f, self: ln.Addr().String()}
}

func (s *faultStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	s.net.mu.Lock()
	blocked := s.net.cut[pair(s.self, string(addr))]
	s.net.mu.Unlock()
	if blocked {
		return nil, fmt.Errorf("link %s-%s cut", s.self, addr)
	}
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(c, "%s\n", s.self); err != nil {
		c.Close()
		return nil, err
	}
	if !s.net.track(s.self, string(addr), c) {
		return nil, fmt.Errorf("link %s-%s cut", s.self, addr)
	}
	return c, nil
}

func (s *faultStream) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer, err := readLine(c)
		if err != nil {
			c.Close()
			continue
		}
		if s.net.track(s.self, peer, c) {
			return c, nil
		}
	}
}

func readLine(r io.Reader) (string, error) {
	var b [1]byte
	var out []byte
	for len(out) < 64 {
		if _, err := r.Read(b[:]); err != nil {
			return "", err
		}
		if b[0] == '\n' {
			return string(out), nil
		}
		out = append(out, b[0])
	}
	return "", errors.New("peer line too long")
}

// TestPartition cuts the leader off from the two followers: the leader
// cannot commit, the majority elects a new leader and goes on; after the
// links heal, all three converge on one log holding every acknowledged
// entry.
func TestPartition(t *testing.T) {
	fn := newFaultNet()
	var nodes []*Ledger
	var addrs []string
	for i := 0; i < 3; i++ {
		cfg := testConfig(t.TempDir())
		cfg.NodeID = fmt.Sprintf("p%d", i)
		cfg.Join = i > 0
		cfg.StreamLayer = fn.stream(t)
		l := mustOpen(t, cfg)
		nodes = append(nodes, l)
		addrs = append(addrs, l.Addr())
		if i > 0 {
			if err := nodes[0].AddVoter(testContext(t), cfg.NodeID, l.Addr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := leaderOf(t, nodes)
	var acked []Receipt
	for i := 0; i < 20; i++ {
		acked = append(acked, mustAppend(t, old, newEntry(i))...)
	}
	waitConverged(t, nodes, 20)

	// Cut the leader off.
	fn.partition([]string{old.Addr()}, addrs)
	var majority []*Ledger
	for _, n := range nodes {
		if n != old {
			majority = append(majority, n)
		}
	}
	// The isolated leader cannot commit: its append fails or times out.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := old.Append(ctx, newEntry(1000))
	cancel()
	if err == nil {
		t.Fatal("the isolated leader committed an append")
	}
	// The majority elects a leader and takes writes.
	next := leaderOf(t, majority)
	for i := 20; i < 40; i++ {
		var rs []Receipt
		waitFor(t, "an append on the majority", 10*time.Second, func() error {
			var err error
			rs, err = next.Append(context.Background(), newEntry(i))
			if err != nil {
				next = leaderOf(t, majority)
			}
			return err
		})
		acked = append(acked, rs...)
	}

	fn.heal()
	waitFor(t, "the old leader to rejoin", 20*time.Second, func() error {
		var size uint64
		err := old.Read(context.Background(), Stale, func(v *View) error {
			size = v.Size()
			return nil
		})
		if err == nil && size < 40 {
			err = fmt.Errorf("old leader at size %d", size)
		}
		return err
	})
	waitConverged(t, nodes, 40)
	for _, n := range nodes {
		mustRead(t, n, Stale, func(v *View) error {
			for _, r := range acked {
				if _, rc, err := v.ByID(r.ID); err != nil || rc.Index != r.Index {
					t.Errorf("%s: acknowledged %s: %+v, %v", n.ID(), r.ID, rc, err)
				}
			}
			// The entry the isolated leader appended but could not
			// commit was truncated: the size of 40 above has no room for it.
			if _, _, err := v.ByID(newEntry(1000).ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: the uncommitted entry is in the log: %v", n.ID(), err)
			}
			return nil
		})
	}
}
