package testcerts

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// handshake runs a TLS handshake over loopback TCP and returns both sides'
// errors. (net.Pipe is unbuffered: in TLS 1.3 the client finishes before
// the server checks its certificate, and the server's alert would block.)
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error, serverState tls.ConnectionState) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		err   error
		state tls.ConnectionState
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(c, server)
		err = s.Handshake()
		done <- result{err, s.ConnectionState()}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	clientErr = tls.Client(c, client).Handshake()
	r := <-done
	return r.err, clientErr, r.state
}

func TestMutualTLS(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || len(ca.Cert.SubjectKeyId) == 0 {
		t.Fatalf("CA certificate: IsCA=%v SubjectKeyId=%x", ca.Cert.IsCA, ca.Cert.SubjectKeyId)
	}
	spiffe, _ := url.Parse("spiffe://fleproxy.test/client")
	srv, err := ca.Issue(Leaf{CommonName: "localhost", DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ca.Issue(Leaf{CommonName: "alice", URIs: []*url.URL{spiffe}, Client: true})
	if err != nil {
		t.Fatal(err)
	}

	serverConf := &tls.Config{
		Certificates: []tls.Certificate{srv.TLS},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	clientConf := &tls.Config{
		Certificates: []tls.Certificate{cli.TLS},
		RootCAs:      ca.Pool(),
		ServerName:   "localhost",
	}
	serr, cerr, state := handshake(t, serverConf, clientConf)
	if serr != nil || cerr != nil {
		t.Fatalf("handshake: server %v, client %v", serr, cerr)
	}
	if len(state.VerifiedChains) != 1 || state.PeerCertificates[0].Subject.CommonName != "alice" {
		t.Fatalf("server did not verify the client certificate: %+v", state.PeerCertificates)
	}
	if got := state.PeerCertificates[0].URIs; len(got) != 1 || got[0].String() != spiffe.String() {
		t.Fatalf("client URI SANs = %v", got)
	}

	// The IP SAN verifies too.
	ipConf := clientConf.Clone()
	ipConf.ServerName = "127.0.0.1"
	if serr, cerr, _ := handshake(t, serverConf, ipConf); serr != nil || cerr != nil {
		t.Fatalf("handshake by IP: server %v, client %v", serr, cerr)
	}

	// A client certificate cannot serve as a server certificate.
	swapped := serverConf.Clone()
	swapped.Certificates = []tls.Certificate{cli.TLS}
	wrongName := clientConf.Clone()
	wrongName.ServerName = "alice"
	if _, cerr, _ := handshake(t, swapped, wrongName); cerr == nil {
		t.Fatal("client accepted a server presenting a client-auth certificate")
	}

	// A certificate from another CA is rejected by the server.
	other, err := NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := other.Issue(Leaf{CommonName: "mallory", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	strangerConf := clientConf.Clone()
	strangerConf.Certificates = []tls.Certificate{stranger.TLS}
	if serr, _, _ := handshake(t, serverConf, strangerConf); serr == nil {
		t.Fatal("server accepted a client certificate from another CA")
	}
}

func TestWriteFiles(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(Leaf{CommonName: "localhost", DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// A pre-existing key file with a wide mode must still end up 0600.
	if err := os.WriteFile(dir+"/server.key", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := leaf.WriteFiles(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: ca.Pool()}); err != nil {
		t.Fatalf("verify written certificate: %v", err)
	}
	if b, _ := pem.Decode(leaf.KeyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM block: %+v", b)
	}
}
