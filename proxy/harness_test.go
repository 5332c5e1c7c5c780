package proxy

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/fleproxy/fleproxy/internal/pgtest"
)

// cluster is the throwaway PostgreSQL server shared by this package's tests.
var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

// harness is a proxy running in-process in front of cluster.
type harness struct {
	srv  *Server
	addr string
	logs *pgtest.LogBuffer
}

// startProxy starts a proxy for the test; mutate adjusts its configuration. The proxy is shut
// down when the test ends.
func startProxy(t testing.TB, mutate func(*Config)) *harness {
	t.Helper()
	logs := &pgtest.LogBuffer{}
	cfg := Config{
		UpstreamAddr:    cluster.Addr(),
		ConnectTimeout:  5 * time.Second,
		StartupTimeout:  10 * time.Second,
		ShutdownTimeout: 2 * time.Second,
		Logger:          zerolog.New(logs).Level(zerolog.DebugLevel),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{srv: srv, addr: ln.Addr().String(), logs: logs}
}

// connString returns a URL connection string for addr.
func connString(addr, user, password, database string, params ...string) string {
	u := url.URL{Scheme: "postgres", Host: addr, Path: "/" + database}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	q := url.Values{"sslmode": {"disable"}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// target is one place a client can connect: the database directly or through the proxy.
type target struct {
	name string
	addr string
}

// targets returns the direct database and the proxy h, for tests that compare the two.
func (h *harness) targets() []target {
	return []target{{"direct", cluster.Addr()}, {"proxy", h.addr}}
}

// compare runs f against the database directly and through the proxy and fails the test if the
// results differ.
func compare[T any](t *testing.T, h *harness, f func(t *testing.T, addr string) T) T {
	t.Helper()
	var results []T
	for _, tg := range h.targets() {
		results = append(results, f(t, tg.addr))
	}
	if !reflect.DeepEqual(results[0], results[1]) {
		t.Fatalf("results differ\ndirect: %#v\nproxy:  %#v", results[0], results[1])
	}
	return results[1]
}

func connect(t testing.TB, cs string) *pgx.Conn { return pgtest.Connect(t, cs) }

func ctxT(t testing.TB) context.Context { return pgtest.Context(t) }

// appConn connects as the test database's owner.
func appConn(t testing.TB, addr string) *pgx.Conn {
	return connect(t, connString(addr, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDatabase))
}

// uniqueName returns a table name unique to the test.
func uniqueName(t testing.TB) string {
	r := strings.NewReplacer("/", "_", " ", "_", "-", "_")
	return strings.ToLower(r.Replace(t.Name())) + fmt.Sprintf("_%d", time.Now().UnixNano()%1e6)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
