package coapp

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/hashicorp/raft"

	"coapp.coop/coapp/api"
)

// TLSFiles names the PEM files for mutual TLS: this node's certificate and
// key, and the CA that signs every node's and client's certificate.
type TLSFiles struct {
	Cert, Key, CA string
}

// tlsConfigs loads the files into a server configuration that requires a
// client certificate signed by the CA, and a client configuration that
// presents this node's certificate and trusts only the CA.
func (f TLSFiles) tlsConfigs() (server, client *tls.Config, err error) {
	if f.Cert == "" && f.Key == "" && f.CA == "" {
		return nil, nil, nil
	}
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return nil, nil, api.Invalid("tls", "certificate, key and CA are needed together")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, nil, api.Invalid("tls", "certificate and key: %v", err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, nil, api.Invalid("tls", "CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, api.Invalid("tls", "CA file holds no PEM certificate")
	}
	server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	client = &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	}
	return server, client, nil
}

// tlsStream carries Raft traffic over mutual TLS.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
}

var _ raft.StreamLayer = (*tlsStream)(nil)

func newTLSStream(bind, advertise string, server, client *tls.Config) (*tlsStream, error) {
	ln, err := tls.Listen("tcp", bind, server)
	if err != nil {
		return nil, fmt.Errorf("coapp: raft listener on %s: %w", bind, err)
	}
	var adv net.Addr = ln.Addr()
	if advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			_ = ln.Close()
			return nil, api.Invalid("raft-advertise", "%v", err)
		}
		adv = a
	}
	if tcp, ok := adv.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		_ = ln.Close()
		return nil, api.Invalid("raft-advertise", "%s is not an address other nodes can reach", adv)
	}
	return &tlsStream{Listener: ln, advertise: adv, client: client}, nil
}

// Addr returns the address other nodes dial.
func (s *tlsStream) Addr() net.Addr { return s.advertise }

// Dial opens a TLS connection to another node's Raft listener.
func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", string(addr), s.client)
	if err != nil {
		return nil, err
	}
	return conn, nil
}
