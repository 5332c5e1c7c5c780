package rewrite_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/fleproxy/fleproxy/internal/pgtest"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy"
	"github.com/fleproxy/fleproxy/proxy/catalog"
	"github.com/fleproxy/fleproxy/proxy/rewrite"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

// Roles of the encryption tests: one cleared for plaintext, one not.
const (
	usRole     = "us_service"
	usPassword = "us-secret"
	sgRole     = "sg_operator"
	sgPassword = "sg-secret"
	// auditorRole is cleared for masks and nulls of some columns and denied one.
	auditorRole     = "auditor"
	auditorPassword = "auditor-secret"
)

var (
	rolesOnce sync.Once
	dbSeq     atomic.Int64
)

// fixture is one database with protected tables, the keys, and a proxy enforcing the policy.
type fixture struct {
	t      *testing.T
	db     string
	admin  *pgx.Conn // direct superuser connection: what is at rest
	env    *rewrite.Env
	keys   *keys.Manager
	proxy  string
	logs   *pgtest.LogBuffer
	policy *policy.Policy
}

// newFixture creates a database, runs schema in it directly, and starts a proxy whose policy is
// policyYAML (cleared role us_service).
func newFixture(t *testing.T, schema, policyYAML string) *fixture {
	t.Helper()
	return newFixtureWith(t, schema, policyYAML, nil)
}

// newFixtureWith is newFixture with a hook to adjust the proxy's configuration (TLS, …).
func newFixtureWith(t *testing.T, schema, policyYAML string, mutate func(*proxy.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	rolesOnce.Do(func() {
		su := connectT(t, cluster.ConnString("postgres", "", "postgres"))
		for _, r := range [][2]string{{usRole, usPassword}, {sgRole, sgPassword}, {auditorRole, auditorPassword}} {
			if _, err := su.Exec(ctx, fmt.Sprintf("create role %s login password '%s'", r[0], r[1])); err != nil {
				t.Fatal(err)
			}
		}
		su.Close(ctx)
	})
	db := strings.ToLower(strings.NewReplacer("/", "_", " ", "_", "-", "_").Replace(t.Name()))
	if len(db) > 50 {
		db = db[:50]
	}
	db = fmt.Sprintf("%s_%d", db, dbSeq.Add(1)) // unique across -count runs
	if err := cluster.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	admin := connectT(t, cluster.ConnString("postgres", "", db))
	if _, err := admin.Exec(ctx, schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("grant all on all tables in schema public to %[1]s, %[2]s, %[3]s; grant usage, create on schema public to %[1]s, %[2]s, %[3]s", usRole, sgRole, auditorRole)); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse([]byte(policyYAML), "test-policy.yaml")
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	if err := pol.CheckAgainstCatalog(ctx, admin); err != nil {
		t.Fatalf("policy check: %v", err)
	}
	dir := t.TempDir()
	kek, err := keys.InitLocalKEK(filepath.Join(dir, "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := keys.NewFileStore(filepath.Join(dir, "keyrings"))
	if err != nil {
		t.Fatal(err)
	}
	km := keys.NewManager(kek, store)
	for _, col := range pol.Columns() {
		if _, err := km.Create(ctx, col.Key, keys.KindAEAD); err != nil && !strings.Contains(err.Error(), "exists") {
			t.Fatal(err)
		}
	}
	catConn := connectT(t, cluster.ConnString("postgres", "", db))
	cat, err := catalog.New(ctx, pol, catConn)
	if err != nil {
		t.Fatal(err)
	}
	logs := &pgtest.LogBuffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	audit := zerolog.New(logs).With().Str("stream", "audit").Logger()
	env, err := rewrite.NewEnv(ctx, cat, km, log, audit)
	if err != nil {
		t.Fatal(err)
	}
	pcfg := proxy.Config{
		UpstreamAddr:    cluster.Addr(),
		ShutdownTimeout: 2 * time.Second,
		Logger:          log,
		NewInterceptor: func(si proxy.SessionInfo) (proxy.Interceptor, error) {
			return rewrite.NewSession(rewrite.Static(env), rewrite.SessionInfo{ID: si.ID, Identity: policyIdentity(si.Identity), Params: si.Params, Log: si.Log}), nil
		},
	}
	if mutate != nil {
		mutate(&pcfg)
	}
	srv, err := proxy.NewServer(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return &fixture{t: t, db: db, admin: admin, env: env, keys: km, proxy: ln.Addr().String(), logs: logs, policy: pol}
}

// url returns a connection URL for role through the proxy.
func (f *fixture) url(role, password string, params ...string) string {
	u := url.URL{Scheme: "postgres", Host: f.proxy, Path: "/" + f.db, User: url.UserPassword(role, password)}
	q := url.Values{"sslmode": {"disable"}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// us and sg connect through the proxy as the cleared and the uncleared role.
func (f *fixture) us(params ...string) *pgx.Conn {
	return connectT(f.t, f.url(usRole, usPassword, params...))
}

// owner connects through the proxy as the superuser that owns the tables (not cleared).
func (f *fixture) owner() *pgx.Conn {
	return connectT(f.t, strings.Replace(f.url("postgres", "x"), "postgres:x@", "postgres@", 1))
}

func (f *fixture) sg(params ...string) *pgx.Conn {
	return connectT(f.t, f.url(sgRole, sgPassword, params...))
}

// assertNoPlaintextAtRest scans every row of table, read directly from the database, for the
// bytes of each plaintext.
func (f *fixture) assertNoPlaintextAtRest(table string, plaintexts ...string) {
	f.t.Helper()
	var dump bytes.Buffer
	if _, err := f.admin.PgConn().CopyTo(context.Background(), &dump, "copy (select * from "+table+") to stdout with (format binary)"); err != nil {
		f.t.Fatal(err)
	}
	var text bytes.Buffer
	if _, err := f.admin.PgConn().CopyTo(context.Background(), &text, "copy (select * from "+table+") to stdout"); err != nil {
		f.t.Fatal(err)
	}
	for _, p := range plaintexts {
		if bytes.Contains(dump.Bytes(), []byte(p)) || bytes.Contains(text.Bytes(), []byte(p)) {
			f.t.Fatalf("plaintext %q found at rest in %s", p, table)
		}
	}
}

// assertNotLogged checks that no plaintext reached the proxy's log.
func (f *fixture) assertNotLogged(plaintexts ...string) {
	f.t.Helper()
	logs := f.logs.String()
	for _, p := range plaintexts {
		if strings.Contains(logs, p) {
			f.t.Fatalf("plaintext %q found in the proxy's log", p)
		}
	}
}

func connectT(t testing.TB, cs string) *pgx.Conn { return pgtest.Connect(t, cs) }

func ctxT(t testing.TB) context.Context { return pgtest.Context(t) }

// policyIdentity keeps the verified facts of a proxy identity that the policy matches on, as
// fleproxy serve does.
func policyIdentity(id proxy.Identity) policy.Identity {
	pid := policy.Identity{Role: id.Role, TLS: id.TLS}
	if id.Source.IsValid() {
		pid.Source = id.Source.Addr().Unmap()
	}
	if len(id.ClientCert) > 0 {
		pid.Cert = id.ClientCert[0]
	}
	return pid
}
