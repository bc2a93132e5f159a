package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"coapp.coop/coapp/client"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// coappBinary builds the coapp command once per test run.
func coappBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "coapp-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "coapp")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freePort returns a loopback address with a port free right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is one `coapp node` process.
type proc struct {
	t        *testing.T
	id, dir  string
	httpAddr string
	raftAddr string
	args     []string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the running process has exited
	logPath  string
}

func (p *proc) url() string { return "http://" + p.httpAddr }

// copyMemberKeys copies the member signing keys of another node's
// directory into this one's, before it starts: the tests publish as the
// founding member through every node, as a member running several nodes
// would, with its key copied out of band.
func (p *proc) copyMemberKeys(from *proc) {
	p.t.Helper()
	files, _ := filepath.Glob(filepath.Join(from.dir, "members", "*.key"))
	if len(files) == 0 {
		p.t.Fatalf("no member key in %s", from.dir)
	}
	if err := os.MkdirAll(filepath.Join(p.dir, "members"), 0o700); err != nil {
		p.t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			p.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p.dir, "members", filepath.Base(f)), b, 0o600); err != nil {
			p.t.Fatal(err)
		}
	}
}

// counter counts by name, safely from several goroutines.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) Add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

func newProc(t *testing.T, id string, extra ...string) *proc {
	p := &proc{t: t, id: id, dir: filepath.Join(t.TempDir(), id), httpAddr: freePort(t), raftAddr: freePort(t)}
	p.logPath = filepath.Join(t.TempDir(), id+".log")
	p.args = append([]string{"node", "--dir", p.dir, "--id", id, "--http", p.httpAddr, "--raft", p.raftAddr,
		"--election-timeout", "300ms", "--snapshot-threshold", "200", "--trailing-logs", "250", "--snapshot-interval", "500ms", "--log-format", "json"}, extra...)
	return p
}

// start runs the process and waits until its API answers.
func (p *proc) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(coappBinary(p.t), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	p.exited = exited
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); logf.Close(); close(exited) }(p.cmd)
	p.t.Cleanup(p.kill)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", p.httpAddr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("node %s did not start; log:\n%s", p.id, p.log())
}

func (p *proc) signal(sig syscall.Signal) {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Errorf("node %s did not exit after SIGKILL", p.id)
	}
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(string(b), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// bootstrapProc starts the first node and returns it with the admin token.
func bootstrapProc(t *testing.T, id string) (*proc, string) {
	t.Helper()
	p := newProc(t, id, "--bootstrap", "--federation", "Fault Federation")
	p.start()
	var token string
	waitFor(t, "admin token", 30*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(p.dir, "admin.token"))
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(b))
		return nil
	})
	return p, token
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not after %v: %v", what, timeout, err)
}

func readyz(url string) error {
	c := client.New(url, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if !c.Ready(ctx) {
		return fmt.Errorf("%s not ready", url)
	}
	return nil
}
