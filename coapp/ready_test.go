package coapp

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"coapp.coop/coapp/client"
)

// freeAddr returns a loopback address whose port is free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestReadyMeansServing polls /readyz from before a bootstrapping node
// starts, on its API or (every other start) on its probe listener: on the
// first 200, the admin token file must exist and hold a token the node
// accepts for an admin call. Six starts, since the window it guards
// against lasted 1 to 140 ms.
func TestReadyMeansServing(t *testing.T) {
	for i := range 6 {
		cfg := nodeConfig(t.TempDir())
		cfg.Bootstrap, cfg.Federation, cfg.Member = true, "Ready Federation", "coop-a"
		cfg.HTTPAddr, cfg.ProbeAddr = freeAddr(t), freeAddr(t)
		tokenPath := filepath.Join(cfg.Dir, AdminTokenFile)

		type opened struct {
			n   *Node
			err error
		}
		done := make(chan opened, 1)
		go func() {
			n, err := Open(testCtx(t), cfg)
			done <- opened{n, err}
		}()
		result := sync.OnceValue(func() opened { return <-done })
		t.Cleanup(func() {
			if o := result(); o.n != nil {
				_ = o.n.Close(context.Background())
			}
		})
		hc := &http.Client{Timeout: time.Second}
		ready := func(url string) bool {
			resp, err := hc.Get(url + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}
		urls := []string{"http://" + cfg.HTTPAddr, "http://" + cfg.ProbeAddr}
		if i%2 == 1 {
			urls[0], urls[1] = urls[1], urls[0] // the probe listener polled from the start
		}
		for _, url := range urls {
			deadline := time.Now().Add(30 * time.Second)
			for !ready(url) {
				if time.Now().After(deadline) {
					t.Fatalf("start %d: %s/readyz not 200 after 30s", i, url)
				}
				time.Sleep(time.Millisecond)
			}
			// The first 200: what the node prints must be there.
			b, err := os.ReadFile(tokenPath)
			if err != nil {
				t.Fatalf("start %d: %s/readyz answered 200, but the token file: %v", i, url, err)
			}
			token := strings.TrimSpace(string(b))
			c := client.New("http://"+cfg.HTTPAddr, token)
			c.Retries = 1
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err = c.CreateToken(ctx, "coop-a", false)
			cancel()
			if err != nil {
				t.Fatalf("start %d: %s/readyz answered 200, but the admin token %q fails: %v", i, url, token, err)
			}
		}
		if o := result(); o.err != nil {
			t.Fatalf("start %d: Open: %v", i, o.err)
		} else if err := o.n.Close(context.Background()); err != nil {
			t.Fatalf("start %d: Close: %v", i, err)
		}
	}
}
