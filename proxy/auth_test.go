package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleproxy/fleproxy/internal/pgtest"
	"github.com/fleproxy/fleproxy/internal/testcerts"
)

// TestAuthenticationMethods relays each pg_hba method the proxy supports, with the right and a
// wrong password, and expects exactly what a direct connection gets.
func TestAuthenticationMethods(t *testing.T) {
	h := startProxy(t, nil)
	users := []struct{ user, password string }{
		{"trust_user", ""},
		{"password_user", "password-secret"},
		{"md5_user", "md5-secret"},
		{"scram_user", "scram-secret"},
	}
	for _, u := range users {
		t.Run(u.user, func(t *testing.T) {
			compare(t, h, func(t *testing.T, addr string) []string {
				var out []string
				for _, pw := range []string{u.password, "wrong-password"} {
					ctx := ctxT(t)
					conn, err := pgx.Connect(ctx, connString(addr, u.user, pw, pgtest.AppDatabase))
					if err != nil {
						out = append(out, errString(errors.Unwrap(err)))
						continue
					}
					var who string
					if err := conn.QueryRow(ctx, "select current_user").Scan(&who); err != nil {
						t.Fatal(err)
					}
					out = append(out, "ok as "+who)
					conn.Close(ctx)
				}
				return out
			})
		})
	}
	if strings.Contains(h.logs.String(), "secret") {
		t.Fatal("a password reached the proxy's log")
	}
}

// tlsFixture holds a CA and files for the proxy's client-facing certificate.
type tlsFixture struct {
	ca             *testcerts.CA
	caFile         string
	server         *testcerts.Issued
	serverTLS      *tls.Config
	clientCertFile string
	clientKeyFile  string
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	dir := t.TempDir()
	ca, err := testcerts.NewCA("fleproxy test client-side CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue(testcerts.Leaf{CommonName: "fleproxy", DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(testcerts.Leaf{CommonName: "us-billing", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := client.WriteFiles(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	return &tlsFixture{
		ca: ca, caFile: caFile, server: server,
		serverTLS:      &tls.Config{Certificates: []tls.Certificate{server.TLS}, MinVersion: tls.VersionTLS12},
		clientCertFile: certFile, clientKeyFile: keyFile,
	}
}

// sslState reports whether the server sees the proxy's connection as TLS.
func sslState(t *testing.T, conn *pgx.Conn) bool {
	var ssl bool
	if err := conn.QueryRow(ctxT(t), "select ssl from pg_stat_ssl where pid = pg_backend_pid()").Scan(&ssl); err != nil {
		t.Fatal(err)
	}
	return ssl
}

// TestTLSOnEachSide runs client TLS and upstream TLS independently, in all four combinations.
func TestTLSOnEachSide(t *testing.T) {
	fx := newTLSFixture(t)
	upstreamTLS := &tls.Config{RootCAs: cluster.CA.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	for _, tc := range []struct {
		name             string
		client, upstream bool
	}{{"plain-plain", false, false}, {"tls-plain", true, false}, {"plain-tls", false, true}, {"tls-tls", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := startProxy(t, func(c *Config) {
				if tc.client {
					c.ClientTLS = fx.serverTLS
				}
				if tc.upstream {
					c.UpstreamTLS = upstreamTLS
				}
			})
			cs := connString(h.addr, "scram_user", "scram-secret", pgtest.AppDatabase, "channel_binding", "disable")
			if tc.client {
				cs = strings.Replace(cs, "sslmode=disable", "sslmode=verify-full&sslrootcert="+fx.caFile, 1)
			}
			conn := connect(t, cs)
			if _, isTLS := conn.PgConn().Conn().(*tls.Conn); isTLS != tc.client {
				t.Fatalf("client-side TLS = %v, want %v", isTLS, tc.client)
			}
			if got := sslState(t, conn); got != tc.upstream {
				t.Fatalf("upstream TLS = %v, want %v", got, tc.upstream)
			}
		})
	}
}

// TestSCRAMChannelBindingIsStripped checks that SCRAM-SHA-256-PLUS is never offered to a client
// (it would bind to the proxy's certificate, which the server cannot check), and that a client that
// insists on channel binding over TLS with a TLS upstream gets the proxy's explanation.
func TestSCRAMChannelBindingIsStripped(t *testing.T) {
	fx := newTLSFixture(t)
	upstreamTLS := &tls.Config{RootCAs: cluster.CA.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	tlsParams := "sslmode=verify-full&sslrootcert=" + fx.caFile

	// Upstream in plain TCP: the server does not offer -PLUS, the client's "y" is accepted.
	h := startProxy(t, func(c *Config) { c.ClientTLS = fx.serverTLS })
	conn := connect(t, strings.Replace(connString(h.addr, "scram_user", "scram-secret", pgtest.AppDatabase), "sslmode=disable", tlsParams, 1))
	conn.Close(context.Background())

	// Upstream TLS: the server offers -PLUS; the proxy must hide it.
	h = startProxy(t, func(c *Config) { c.ClientTLS = fx.serverTLS; c.UpstreamTLS = upstreamTLS })
	_, err := pgx.Connect(ctxT(t), strings.Replace(connString(h.addr, "scram_user", "scram-secret", pgtest.AppDatabase, "channel_binding", "require"), "sslmode=disable", tlsParams, 1))
	if err == nil || !strings.Contains(err.Error(), "server does not support SCRAM-SHA-256-PLUS") {
		t.Fatalf("channel_binding=require: want the client to see no -PLUS mechanism, got %v", err)
	}
	_, err = pgx.Connect(ctxT(t), strings.Replace(connString(h.addr, "scram_user", "scram-secret", pgtest.AppDatabase), "sslmode=disable", tlsParams, 1))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "channel binding") || !strings.Contains(pe.Hint, "channel_binding=disable") {
		t.Fatalf("channel_binding=prefer over TLS on both sides: want the proxy's 28000 explanation, got %v", err)
	}
}

// TestMutualTLS checks client-certificate verification and that the verified certificate becomes
// the session's identity, while a certificate from another CA is refused.
func TestMutualTLS(t *testing.T) {
	fx := newTLSFixture(t)
	serverTLS := fx.serverTLS.Clone()
	serverTLS.ClientCAs = fx.ca.Pool()
	serverTLS.ClientAuth = tls.RequireAndVerifyClientCert
	h := startProxy(t, func(c *Config) { c.ClientTLS = serverTLS; c.RequireClientTLS = true })

	base := connString(h.addr, "app", "app-secret", pgtest.AppDatabase)
	withCert := strings.Replace(base, "sslmode=disable", "sslmode=verify-full&sslrootcert="+fx.caFile+"&sslcert="+fx.clientCertFile+"&sslkey="+fx.clientKeyFile, 1)
	conn := connect(t, withCert)
	var one int
	if err := conn.QueryRow(ctxT(t), "select 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the identity in the log", func() bool { return strings.Contains(h.logs.String(), `"client_cert_subject":"CN=us-billing"`) })

	// No certificate: the handshake fails.
	if _, err := pgx.Connect(ctxT(t), strings.Replace(base, "sslmode=disable", "sslmode=verify-full&sslrootcert="+fx.caFile, 1)); err == nil {
		t.Fatal("connected without a client certificate")
	}
	// A certificate from another CA with the same subject: refused.
	other := newTLSFixture(t)
	forged := strings.Replace(base, "sslmode=disable", "sslmode=verify-full&sslrootcert="+fx.caFile+"&sslcert="+other.clientCertFile+"&sslkey="+other.clientKeyFile, 1)
	if _, err := pgx.Connect(ctxT(t), forged); err == nil {
		t.Fatal("connected with a certificate signed by another CA")
	}
	// Plain TCP: refused with the proxy's message.
	_, err := pgx.Connect(ctxT(t), base)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" {
		t.Fatalf("plain TCP to a TLS-only proxy: want 28000, got %v", err)
	}
}

// TestPsqlOverTLS connects psql (libpq) through a TLS proxy to a TLS upstream.
func TestPsqlOverTLS(t *testing.T) {
	fx := newTLSFixture(t)
	h := startProxy(t, func(c *Config) {
		c.ClientTLS = fx.serverTLS
		c.UpstreamTLS = &tls.Config{RootCAs: cluster.CA.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	})
	host, port, _ := net.SplitHostPort(h.addr)
	cmd := exec.CommandContext(ctxT(t), cluster.Bin("psql"), "-X", "-At", "-c", "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
		"host="+host+" port="+port+" user=md5_user dbname=app sslmode=verify-full sslrootcert="+fx.caFile)
	cmd.Env = append(os.Environ(), "PGPASSWORD=md5-secret")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "t" {
		t.Fatalf("psql over TLS: %v\n%s", err, out)
	}
}
