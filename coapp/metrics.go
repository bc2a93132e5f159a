package coapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/server"
)

// telemetry is a node's metrics registry and its probe listener.
type telemetry struct {
	registry *prometheus.Registry
	probeLn  net.Listener // nil when Config.ProbeAddr is empty
	probeSrv *http.Server
	probeURL string
}

// validateProbeAddr checks Config.ProbeAddr: empty, or HOST:PORT with a
// port number (HOST may be empty, for every interface).
func (c *Config) validateProbeAddr() error {
	if c.ProbeAddr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(c.ProbeAddr)
	if err != nil {
		return api.Invalid("probe_addr", "want HOST:PORT, such as 127.0.0.1:7402")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return api.Invalid("probe_addr", "the port must be a number from 0 to 65535")
	}
	return nil
}

// listenProbe opens the probe listener, when Config.ProbeAddr asks for
// one.
func (n *Node) listenProbe() error {
	if n.cfg.ProbeAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.ProbeAddr)
	if err != nil {
		return fmt.Errorf("coapp: probe listener on %s: %w", n.cfg.ProbeAddr, err)
	}
	n.tel.probeLn = ln
	n.tel.probeURL = "http://" + ln.Addr().String()
	return nil
}

// newRegistry makes the node's own metrics registry.
func (n *Node) newRegistry() error {
	reg, err := server.NewRegistry(n.svc)
	if err != nil {
		return err
	}
	n.tel.registry = reg
	return nil
}

// serveProbe serves h, plain HTTP, on the probe listener if there is one.
func (n *Node) serveProbe(h http.Handler) {
	if n.tel.probeLn == nil {
		return
	}
	n.tel.probeSrv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn),
	}
	n.logger.Info("serving probes and metrics without TLS", "url", n.tel.probeURL)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.tel.probeSrv.Serve(n.tel.probeLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("probe listener stopped", "err", err)
		}
	}()
}

// closeProbe stops the probe listener, letting scrapes in flight finish
// within ctx.
func (n *Node) closeProbe(ctx context.Context) error {
	switch {
	case n.tel.probeSrv != nil:
		return n.tel.probeSrv.Shutdown(ctx)
	case n.tel.probeLn != nil:
		return n.tel.probeLn.Close()
	}
	return nil
}

// ProbeURL returns the base URL of the node's probe listener
// (Config.ProbeAddr), such as http://127.0.0.1:7402; empty when there is
// none.
func (n *Node) ProbeURL() string { return n.tel.probeURL }

// Registry returns the node's own Prometheus registry, which GET /metrics
// serves, on the API and on the probe listener. An app that embeds the
// node may register its own collectors in it, under names of its own
// (not coapp_, go_ or process_). Each node has its own registry, never
// the process-wide default one.
func (n *Node) Registry() *prometheus.Registry { return n.tel.registry }
