package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/fleproxy/fleproxy/config"
	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/internal/pgtest"
	"github.com/fleproxy/fleproxy/internal/transittest"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/proxy"
)

// clearedPolicy is testPolicy with role app cleared for plaintext (require_mtls_for_plaintext is
// off by default).
const clearedPolicy = testPolicy + "cleared:\n  roles: [app]\n"

// lifecycleContext bounds a whole life-cycle test, longer than testContext's 45s.
func lifecycleContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// stack is the serve stack run in-process as demo.go builds it: openEncryption, enable and
// proxy.NewServer on a free port.
type stack struct {
	addr string
	log  *pgtest.LogBuffer
	stop func()
}

// startStack starts the proxy of configuration file cfgFile in front of testCluster; it stops
// at the end of the test, or earlier with stop.
func startStack(t *testing.T, ctx context.Context, cfgFile string) *stack {
	t.Helper()
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	enc, err := openEncryption(sctx, cfg.Encryption, true)
	if err != nil {
		cancel()
		t.Fatalf("openEncryption: %v", err)
	}
	st := &stack{log: &pgtest.LogBuffer{}}
	log := zerolog.New(st.log).With().Timestamp().Logger()
	pcfg := proxy.Config{UpstreamAddr: testCluster.Addr(), ShutdownTimeout: 2 * time.Second, Logger: log}
	if _, err := enc.enable(sctx, &pcfg, cfg.Encryption, log, zerolog.Nop()); err != nil {
		cancel()
		enc.close()
		t.Fatal(err)
	}
	srv, err := proxy.NewServer(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	st.stop = sync.OnceFunc(func() {
		cancel()
		<-done
		enc.close()
	})
	t.Cleanup(func() {
		st.stop()
		if t.Failed() {
			t.Logf("proxy log:\n%s", st.log.String())
		}
	})
	return st
}

// connect opens a session through the proxy as role app (cleared by clearedPolicy).
func (s *stack) connect(t *testing.T, ctx context.Context, db string) *pgx.Conn {
	t.Helper()
	u := url.URL{Scheme: "postgres", Host: s.addr, Path: "/" + db, User: url.UserPassword(pgtest.AppUser, pgtest.AppPassword), RawQuery: "sslmode=disable"}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("connect through the proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// outputs collects everything the CLI printed, to check that no value ever appears in it.
type outputs struct{ bytes.Buffer }

// run runs fleproxy with args and stdin in, and returns what it printed on stdout.
func (o *outputs) run(t *testing.T, ctx context.Context, in string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(in))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(ctx)
	o.WriteString(out.String() + errOut.String())
	if err != nil {
		o.WriteString(err.Error())
	}
	t.Logf("fleproxy %s\n%s%s(error: %v)", strings.Join(args, " "), out.String(), errOut.String(), err)
	return out.String(), err
}

func (o *outputs) must(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := o.run(t, ctx, "", args...)
	if err != nil {
		t.Fatalf("fleproxy %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// storedKeyIDs returns the data key ID of every stored value of column col of public.secrets, by
// row ID, read directly from the database.
func storedKeyIDs(t *testing.T, ctx context.Context, pool *pgxpool.Pool, col string) map[int]uint32 {
	t.Helper()
	rows, err := pool.Query(ctx, "SELECT id, "+col+"::bytea FROM public.secrets WHERE "+col+" IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int]uint32{}
	for rows.Next() {
		var id int
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		if col == "note_t" {
			if v, err = envelope.Dearmor(v); err != nil {
				t.Fatalf("row %d: %v", id, err)
			}
		}
		k, err := envelope.KeyID(v)
		if err != nil {
			t.Fatalf("row %d: stored %s is not ciphertext: %v", id, col, err)
		}
		ids[id] = k
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// countKey counts the stored values under key id in both protected columns.
func countKey(t *testing.T, ctx context.Context, pool *pgxpool.Pool, id uint32) (n int) {
	t.Helper()
	for _, col := range []string{"note_b", "note_t"} {
		for _, k := range storedKeyIDs(t, ctx, pool, col) {
			if k == id {
				n++
			}
		}
	}
	return n
}

// insertSecret writes row id through a proxy session.
func insertSecret(t *testing.T, ctx context.Context, conn *pgx.Conn, id int) {
	t.Helper()
	if _, err := conn.Exec(ctx, "INSERT INTO secrets (id, note_b, note_t) VALUES ($1, $2, $3)", id, fmt.Sprintf("SECRET-b-%d", id), fmt.Sprintf("SECRET-t-%d", id)); err != nil {
		t.Fatalf("insert row %d through the proxy: %v", id, err)
	}
}

// checkSecrets reads every row through a proxy session and compares it with what insertSecret
// wrote.
func checkSecrets(t *testing.T, ctx context.Context, conn *pgx.Conn) int {
	t.Helper()
	rows, err := conn.Query(ctx, "SELECT id, note_b, note_t FROM secrets ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var id int
		var b, tx string
		if err := rows.Scan(&id, &b, &tx); err != nil {
			t.Fatalf("reading through the proxy: %v", err)
		}
		if b != fmt.Sprintf("SECRET-b-%d", id) || tx != fmt.Sprintf("SECRET-t-%d", id) {
			t.Fatalf("row %d reads %q, %q through the proxy", id, b, tx)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading through the proxy: %v", err)
	}
	return n
}

// primaryKey returns the primary key ID of keyring name from `keys list --json`.
func primaryKey(t *testing.T, ctx context.Context, o *outputs, cfg, name string) (uint32, keyringJSON) {
	t.Helper()
	var rep keysListReport
	if err := json.Unmarshal([]byte(o.must(t, ctx, "keys", "list", "--config", cfg, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	for _, k := range rep.Keyrings {
		if k.Name == name {
			return k.PrimaryKeyID, k
		}
	}
	t.Fatalf("keys list has no keyring %s", name)
	return 0, keyringJSON{}
}

// eventually retries check every 100ms until it returns nil or limit passes, and returns how
// long it took.
func eventually(t *testing.T, limit time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s: %v", what, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wantProxyError checks that err is the proxy's error with SQLSTATE code naming column.
func wantProxyError(err error, code, column string) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("got %v, want an error %s naming %s", err, code, column)
	}
	if pe.Code != code || !strings.Contains(pe.Message, column) || !strings.HasPrefix(pe.Message, "fleproxy:") {
		return fmt.Errorf("got %s %q, want %s naming %s", pe.Code, pe.Message, code, column)
	}
	return nil
}

// TestKeyLifecycleThroughProxy runs the data key life cycle against a running proxy: rotate (new
// writes switch to the new key within refresh_interval, old rows keep reading), retire refused
// while rows use the old key, reencrypt, retire (the running proxy stops decrypting the old
// key), enable, and destroy (reads fail with XX001 naming the column, writes fail).
func TestKeyLifecycleThroughProxy(t *testing.T) {
	ctx := lifecycleContext(t)
	env := newAdminEnv(t, ctx, "lifecycle_keys")
	cfg := env.writeConfig(t, "lifecycle.yaml", clearedPolicy, "  refresh_interval: 1s\n")
	var o outputs
	o.must(t, ctx, "keys", "init", "--config", cfg)
	k1, _ := primaryKey(t, ctx, &o, cfg, "pii")

	st := startStack(t, ctx, cfg)
	conn := st.connect(t, ctx, env.db)
	for id := 1; id <= 20; id++ {
		insertSecret(t, ctx, conn, id)
	}
	if n := countKey(t, ctx, env.pool, k1); n != 40 {
		t.Fatalf("%d of 40 stored values under the first key %s", n, keyID(k1))
	}

	// Rotation: the running proxy encrypts with the new primary within refresh_interval.
	o.must(t, ctx, "keys", "rotate", "pii", "--config", cfg)
	rotated := time.Now()
	k2, _ := primaryKey(t, ctx, &o, cfg, "pii")
	if k2 == k1 {
		t.Fatal("rotate kept the primary key")
	}
	next := 100
	took := eventually(t, 10*time.Second, "the running proxy encrypting with the new primary", func() error {
		next++
		insertSecret(t, ctx, conn, next)
		if k := storedKeyIDs(t, ctx, env.pool, "note_b")[next]; k != k2 {
			return fmt.Errorf("row %d stored under key %s", next, keyID(k))
		}
		return nil
	})
	t.Logf("the running proxy switched to the new primary %s after the rotation", took)
	if took > 3*time.Second {
		t.Errorf("the running proxy took %s to pick up the rotation, refresh_interval is 1s", took)
	}
	other := st.connect(t, ctx, env.db)
	insertSecret(t, ctx, other, 200)
	if b, tk := storedKeyIDs(t, ctx, env.pool, "note_b")[200], storedKeyIDs(t, ctx, env.pool, "note_t")[200]; b != k2 || tk != k2 {
		t.Errorf("a new session wrote under keys %s, %s; want the new primary %s", keyID(b), keyID(tk), keyID(k2))
	}
	checkSecrets(t, ctx, conn) // rows under the old key still read

	// Retire: refused while rows use the old key, and for the primary.
	underOld := countKey(t, ctx, env.pool, k1)
	_, err := o.run(t, ctx, "", "keys", "retire", "pii", "--key-id", keyID(k1), "--config", cfg)
	if !errors.Is(err, errKeyInUse) || !strings.Contains(err.Error(), fmt.Sprintf("%d row(s) still hold values under it", underOld)) ||
		!strings.Contains(err.Error(), "fleproxy keys reencrypt --key pii") {
		t.Fatalf("retire before reencrypt: %v (want a refusal counting %d rows)", err, underOld)
	}
	var refused keysRetireReport
	out, _ := o.run(t, ctx, "", "keys", "retire", "pii", "--key-id", keyID(k1), "--config", cfg, "--json")
	if err := json.Unmarshal([]byte(out), &refused); err != nil || refused.RowsUnderKey != int64(underOld) || refused.Retired || len(refused.Columns) != 2 {
		t.Fatalf("retire --json before reencrypt: %+v (%v)", refused, err)
	}
	if _, err := o.run(t, ctx, "", "keys", "retire", "pii", "--key-id", keyID(k2), "--config", cfg); !errors.Is(err, keys.ErrPrimaryKey) {
		t.Fatalf("retiring the primary: %v", err)
	}
	if _, err := o.run(t, ctx, "", "keys", "retire", "pii", "--key-id", "nothex", "--config", cfg); err == nil || !strings.Contains(err.Error(), "8 hexadecimal digits") {
		t.Fatalf("retire with a malformed key ID: %v", err)
	}
	var oldValue []byte // a ciphertext under the old key, for later
	if err := env.pool.QueryRow(ctx, "SELECT note_b FROM secrets WHERE id = 1").Scan(&oldValue); err != nil {
		t.Fatal(err)
	}

	o.must(t, ctx, "keys", "reencrypt", "--key", "pii", "--config", cfg)
	if n := countKey(t, ctx, env.pool, k1); n != 0 {
		t.Fatalf("%d values still under the old key after reencrypt", n)
	}
	// Retire also waits until every proxy must have seen the rotation.
	if wait := time.Until(rotated.Add(2100 * time.Millisecond)); wait > 0 {
		time.Sleep(wait)
	}
	out = o.must(t, ctx, "keys", "retire", "pii", "--key-id", keyID(k1), "--config", cfg)
	if !strings.Contains(out, "Retired key "+keyID(k1)) || !strings.Contains(out, "fleproxy keys enable pii --key-id "+keyID(k1)) {
		t.Errorf("retire output:\n%s", out)
	}
	if _, kr := primaryKey(t, ctx, &o, cfg, "pii"); kr.Keys[0].ID != k1 || kr.Keys[0].Status != "disabled" || kr.Keys[1].Status != "enabled" {
		t.Errorf("keys after retire: %+v", kr.Keys)
	}
	if out = o.must(t, ctx, "keys", "retire", "pii", "--key-id", keyID(k1), "--config", cfg); !strings.Contains(out, "already retired") {
		t.Errorf("second retire:\n%s", out)
	}
	checkSecrets(t, ctx, conn)

	// The running proxy stops decrypting the retired key: a value under it (as from a backup)
	// fails, and reads again once the key is enabled.
	if _, err := env.pool.Exec(ctx, "INSERT INTO secrets (id, note_b) VALUES (500, $1)", oldValue); err != nil {
		t.Fatal(err)
	}
	readOld := func() error {
		var v string
		return conn.QueryRow(ctx, "SELECT note_b FROM secrets WHERE id = 500").Scan(&v)
	}
	eventually(t, 5*time.Second, "the retired key refused by the running proxy", func() error {
		return wantProxyError(readOld(), "XX001", "public.secrets.note_b")
	})
	o.must(t, ctx, "keys", "enable", "pii", "--key-id", keyID(k1), "--config", cfg)
	eventually(t, 5*time.Second, "the enabled key decrypting again", readOld)
	if _, err := env.pool.Exec(ctx, "DELETE FROM secrets WHERE id = 500"); err != nil {
		t.Fatal(err)
	}

	// Destroy: confirmation needed; then the running proxy fails reads and writes of the columns.
	if _, err := o.run(t, ctx, "pii\n", "keys", "destroy", "pii", "--config", cfg); err == nil || !strings.Contains(err.Error(), "not a terminal") {
		t.Fatalf("destroy without --yes and no terminal: %v", err)
	}
	primaryKey(t, ctx, &o, cfg, "pii") // still there
	rowsB := len(storedKeyIDs(t, ctx, env.pool, "note_b"))
	out = o.must(t, ctx, "keys", "destroy", "pii", "--yes", "--config", cfg)
	for _, want := range []string{fmt.Sprintf("public.secrets.note_b  %d", rowsB), "public.secrets.note_t", fmt.Sprintf("Total: %d value(s) unrecoverable", 2*rowsB), "Destroyed keyring pii", "XX001"} {
		if !strings.Contains(out, want) {
			t.Errorf("destroy output lacks %q:\n%s", want, out)
		}
	}
	var list keysListReport
	if err := json.Unmarshal([]byte(o.must(t, ctx, "keys", "list", "--config", cfg, "--json")), &list); err != nil || len(list.Keyrings) != 0 || !slices.Equal(list.Missing, []string{"pii"}) {
		t.Errorf("keys list after destroy: %+v (%v)", list, err)
	}
	for _, col := range []string{"note_b", "note_t"} {
		eventually(t, 5*time.Second, "reads of "+col+" failing after destroy", func() error {
			var v string
			return wantProxyError(conn.QueryRow(ctx, "SELECT "+col+" FROM secrets WHERE id = 1").Scan(&v), "XX001", "public.secrets."+col)
		})
	}
	_, err = conn.Exec(ctx, "INSERT INTO secrets (id, note_b) VALUES (600, $1)", "SECRET-b-600")
	if err == nil || !strings.Contains(err.Error(), "public.secrets.note_b") || !strings.Contains(err.Error(), `keyring "pii" is no longer available`) {
		t.Errorf("write after destroy: %v", err)
	}
	var n int
	if err := env.pool.QueryRow(ctx, "SELECT count(*) FROM secrets WHERE id = 600").Scan(&n); err != nil || n != 0 {
		t.Errorf("a write after destroy reached the database (%d rows, %v)", n, err)
	}
	if _, err := o.run(t, ctx, "", "keys", "destroy", "pii", "--yes", "--config", cfg); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("destroying again: %v", err)
	}
	if strings.Contains(o.String(), "SECRET") {
		t.Error("a command printed a value")
	}
}

// TestKeyLifecycleVaultRewrap: with the Vault Transit KEK, rotate the Transit key, `keys rewrap`,
// raise min_decryption_version, restart the proxy: everything still reads.
func TestKeyLifecycleVaultRewrap(t *testing.T) {
	ctx := lifecycleContext(t)
	for _, v := range []string{"VAULT_ADDR", "VAULT_AGENT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT",
		"VAULT_CAPATH", "VAULT_TLS_SERVER_NAME", "VAULT_SKIP_VERIFY", "VAULT_CLIENT_TIMEOUT", "VAULT_WRAP_TTL"} {
		t.Setenv(v, "")
	}
	t.Setenv("VAULT_MAX_RETRIES", "0")
	vault := transittest.New(t)
	acfg := api.DefaultConfig()
	acfg.Address = vault.URL()
	admin, err := api.NewClient(acfg)
	if err != nil {
		t.Fatal(err)
	}
	admin.SetToken(vault.RootToken())
	vaultWrite := func(path string, data map[string]any) {
		t.Helper()
		if _, err := admin.Logical().WriteWithContext(ctx, path, data); err != nil {
			t.Fatalf("vault write %s: %v", path, err)
		}
	}
	vaultWrite("transit/keys/fleproxy", nil)

	env := newAdminEnv(t, ctx, "lifecycle_vault")
	tokenFile := filepath.Join(env.dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(vault.CreateToken(transittest.TokenOptions{TTL: time.Hour})+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(env.dir, "vault.policy")
	if err := os.WriteFile(policyFile, []byte(clearedPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(env.dir, "vault.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`encryption:
  policy: %q
  service: %q
  refresh_interval: 1s
  vault:
    address: %q
    key: fleproxy
    timeout: 5s
    auth:
      method: token
      token_file: %q
`, policyFile, testCluster.ConnString(pgtest.AppUser, pgtest.AppPassword, env.db), vault.URL(), tokenFile)), 0o600); err != nil {
		t.Fatal(err)
	}

	// `keys init` handles only the local KEK so far: make the keyring as it would.
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := openKEK(ctx, c.Encryption)
	if err != nil {
		t.Fatal(err)
	}
	store := keys.NewPostgresStore(env.pool)
	if err := store.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureKeyring(ctx, keys.NewManager(kek, store), "pii", keys.KindAEAD); err != nil {
		t.Fatal(err)
	}
	kek.(*keys.VaultTransitKEK).Close()

	st := startStack(t, ctx, cfg)
	conn := st.connect(t, ctx, env.db)
	for id := 1; id <= 10; id++ {
		insertSecret(t, ctx, conn, id)
	}
	checkSecrets(t, ctx, conn)

	var o outputs
	out := o.must(t, ctx, "keys", "rewrap", "--config", cfg)
	if !strings.Contains(out, "1 -> 1") || !strings.Contains(out, "already wrapped by the latest version") {
		t.Errorf("rewrap before the Transit rotation:\n%s", out)
	}

	vaultWrite("transit/keys/fleproxy/rotate", nil)
	out = o.must(t, ctx, "keys", "rewrap", "--config", cfg)
	for _, want := range []string{"vault-transit:transit/fleproxy", "latest version 2", "1 -> 2", "rewrapped", "safe to raise min_decryption_version to 2",
		"vault write transit/keys/fleproxy/config min_decryption_version=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("rewrap output lacks %q:\n%s", want, out)
		}
	}
	var rep keysRewrapReport
	if err := json.Unmarshal([]byte(o.must(t, ctx, "keys", "rewrap", "--config", cfg, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Versioned || len(rep.Keyrings) != 1 || rep.Keyrings[0].Rewrapped || rep.Keyrings[0].KEKVersionBefore != 2 ||
		rep.Keyrings[0].KEKVersionAfter != 2 || rep.SafeMinDecryptionVersion != 2 || rep.VaultKey == nil || rep.VaultKey.LatestVersion != 2 {
		t.Errorf("second rewrap --json: %+v", rep)
	}

	vaultWrite("transit/keys/fleproxy/config", map[string]any{"min_decryption_version": 2})
	time.Sleep(1500 * time.Millisecond) // a refresh of the running proxy unwraps the rewrapped keyring
	checkSecrets(t, ctx, conn)
	insertSecret(t, ctx, conn, 11)
	if strings.Contains(st.log.String(), "keyring refresh failed") {
		t.Errorf("the running proxy failed to refresh:\n%s", st.log.String())
	}

	st.stop()
	st = startStack(t, ctx, cfg)
	conn = st.connect(t, ctx, env.db)
	if n := checkSecrets(t, ctx, conn); n != 11 {
		t.Errorf("%d rows read after the restart, want 11", n)
	}
	insertSecret(t, ctx, conn, 12)
	if strings.Contains(o.String(), "SECRET") {
		t.Error("a command printed a value")
	}
}

// pagilaPolicy protects the quickstart's pagila columns and clears role app (without mTLS).
const pagilaPolicy = `version: 1
columns:
  - {column: public.customer.email, id: customer.email, type: text, key: pii, storage: text}
  - {column: public.address.address, id: address.address, type: text, key: pii, storage: text}
  - {column: public.address.address2, id: address.address2, type: text, key: pii, storage: text}
  - {column: public.address.phone, id: address.phone, type: text, key: pii, storage: text}
  - {column: public.address.postal_code, id: address.postal_code, type: text, key: pii, storage: text}
cleared:
  roles: [app]
`

// pagilaRows reads the protected pagila columns as text, keyed by table and primary key.
func pagilaRows(t *testing.T, ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) map[string][]*string {
	t.Helper()
	got := map[string][]*string{}
	for _, query := range []string{
		"SELECT 'customer ' || customer_id, email FROM customer",
		"SELECT 'address ' || address_id, address, address2, phone, postal_code FROM address",
	} {
		rows, err := q.Query(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			var cells []*string
			for _, v := range vals[1:] {
				if v == nil {
					cells = append(cells, nil)
					continue
				}
				s := v.(string)
				cells = append(cells, &s)
			}
			got[vals[0].(string)] = cells
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	return got
}

// TestMigrateEncryptPagila loads pagila's customer and address tables in plaintext, directly,
// encrypts their personal data columns with `migrate encrypt` while the proxy runs, and reads
// the original values back through the proxy as a cleared role; the CHECK constraints are in
// place and the database holds only ciphertext.
func TestMigrateEncryptPagila(t *testing.T) {
	ctx := lifecycleContext(t)
	const db = "lifecycle_pagila"
	if err := testCluster.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(testCluster.Addr())
	for _, f := range []string{"pagila-schema.sql", "pagila-data.sql"} {
		c := exec.CommandContext(ctx, testCluster.Bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", pgtest.SuperUser, "-d", db,
			"-f", filepath.Join("..", "..", "examples", "quickstart", "pagila", f))
		c.Env = append(os.Environ(), "PGSSLMODE=disable")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("psql -f %s: %v\n%s", f, err, out)
		}
	}
	owner, err := pgxpool.New(ctx, testCluster.ConnString(pgtest.SuperUser, "", db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(owner.Close)
	if _, err := owner.Exec(ctx, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "+pgtest.AppUser); err != nil {
		t.Fatal(err)
	}
	plain := pagilaRows(t, ctx, owner)
	if len(plain) < 1000 {
		t.Fatalf("pagila loaded %d customer and address rows", len(plain))
	}

	dir := t.TempDir()
	policyFile := filepath.Join(dir, "pagila.policy")
	if err := os.WriteFile(policyFile, []byte(pagilaPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "pagila.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("encryption:\n  policy: %q\n  service: %q\n  kek_file: %q\n  refresh_interval: 1s\n",
		policyFile, testCluster.ConnString(pgtest.SuperUser, "", db), filepath.Join(dir, "kek.json"))), 0o600); err != nil {
		t.Fatal(err)
	}
	var o outputs
	o.must(t, ctx, "keys", "init", "--config", cfg)
	st := startStack(t, ctx, cfg)

	columns := []string{"public.customer.email", "public.address.address", "public.address.address2", "public.address.phone", "public.address.postal_code"}
	for _, col := range columns {
		out := o.must(t, ctx, "migrate", "encrypt", "--column", col, "--config", cfg)
		if !strings.Contains(out, ": done after") || !strings.Contains(out, "added: the database now refuses plaintext") {
			t.Errorf("migrate encrypt --column %s:\n%s", col, out)
		}
	}

	stored := pagilaRows(t, ctx, owner)
	for k, cells := range stored {
		for i, v := range cells {
			if v == nil {
				continue
			}
			if _, err := envelope.Dearmor([]byte(*v)); err != nil {
				t.Fatalf("%s column %d is stored as %v, not ciphertext", k, i, err)
			}
		}
	}
	conn := st.connect(t, ctx, db)
	through := pagilaRows(t, ctx, conn)
	if len(through) != len(plain) {
		t.Fatalf("%d rows through the proxy, %d loaded", len(through), len(plain))
	}
	for k, want := range plain {
		got := through[k]
		for i := range want {
			if (want[i] == nil) != (got[i] == nil) || want[i] != nil && *want[i] != *got[i] {
				t.Fatalf("%s column %d reads differently through the proxy than it was loaded", k, i)
			}
		}
	}

	rows, err := owner.Query(ctx, `SELECT conname FROM pg_constraint WHERE contype = 'c' AND conrelid IN ('public.customer'::regclass, 'public.address'::regclass) AND conname LIKE 'fleproxy_%' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fleproxy_address_address2_ciphertext", "fleproxy_address_address_ciphertext", "fleproxy_address_phone_ciphertext",
		"fleproxy_address_postal_code_ciphertext", "fleproxy_customer_email_ciphertext"}
	if !slices.Equal(names, want) {
		t.Errorf("constraints %q, want %q", names, want)
	}
	_, err = owner.Exec(ctx, "UPDATE customer SET email = 'plaintext@example.com' WHERE customer_id = 1")
	wantSQLState(t, err, sqlstateCheckViolation, "a direct plaintext write after migrate encrypt")
	if _, err := conn.Exec(ctx, "UPDATE customer SET email = $1 WHERE customer_id = 1", "new@example.com"); err != nil {
		t.Errorf("a write through the proxy after migrate encrypt: %v", err)
	}
	if strings.Contains(o.String(), "@sakilacustomer.org") {
		t.Error("a command printed a value")
	}
}

func TestConfirmDestroy(t *testing.T) {
	var prompt bytes.Buffer
	if err := confirmDestroy(strings.NewReader("pii\n"), true, &prompt, "pii"); err != nil || !strings.Contains(prompt.String(), "Type the keyring name (pii)") {
		t.Errorf("typed the name: %v, prompt %q", err, prompt.String())
	}
	for _, in := range []string{"pi\n", "", "PII\n"} {
		if err := confirmDestroy(strings.NewReader(in), true, &prompt, "pii"); err == nil || !strings.Contains(err.Error(), "not destroyed") {
			t.Errorf("typed %q: %v", in, err)
		}
	}
	if err := confirmDestroy(strings.NewReader("pii\n"), false, &prompt, "pii"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("not a terminal: %v", err)
	}
}

func TestParseKeyID(t *testing.T) {
	for in, want := range map[string]uint32{"0000002a": 42, "0x1A2B3C4D": 0x1a2b3c4d, "ffffffff": 0xffffffff} {
		if got, err := parseKeyID(in); err != nil || got != want {
			t.Errorf("parseKeyID(%q) = %08x, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0x", "123456789", "xyz", "-1"} {
		if _, err := parseKeyID(in); err == nil {
			t.Errorf("parseKeyID(%q) accepted", in)
		}
	}
}

// TestScanKeyUse counts stored values by data key in both storages, telling ciphertext from
// plaintext, short values and look-alikes; and rewraps with the local KEK through the CLI.
func TestScanKeyUse(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "lifecycle_scan")
	var o outputs
	o.must(t, ctx, "keys", "init", "--config", env.config)
	kek, err := keys.OpenLocalKEK(filepath.Join(env.dir, "kek", "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := keys.NewManager(kek, keys.NewPostgresStore(env.pool))
	cols := env.pol.Columns()
	seal := func(col int) []byte {
		t.Helper()
		cc, err := m.ColumnCipher(ctx, "pii", cols[col].ID, envelope.Randomized)
		if err != nil {
			t.Fatal(err)
		}
		v, err := cc.Encrypt([]byte("SECRET"))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	b1, t1 := seal(0), seal(1)
	kr, err := m.Rotate(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	b2, t2 := seal(0), seal(1)
	lookalike := append([]byte("FLE\x01\x01\x02"), b1[6:]...) // Tink prefix byte other than TINK
	for i, row := range []struct {
		b any
		t any
	}{
		{b1, string(envelope.Armor(t1))},
		{b1, string(envelope.Armor(t1))},
		{b2, string(envelope.Armor(t2))},
		{nil, nil},
		{[]byte("ab"), "fle1:short"},
		{[]byte("SECRET plaintext value"), "SECRET plaintext value"},
		{lookalike, "fle1:" + strings.Repeat("A", 40)},
	} {
		if _, err := env.pool.Exec(ctx, "INSERT INTO secrets (id, note_b, note_t) VALUES ($1, $2, $3)", i, row.b, row.t); err != nil {
			t.Fatal(err)
		}
	}
	first := keyIDOfEnvelope(t, b1)
	for i, col := range cols {
		use, err := scanKeyUse(ctx, env.pool, col)
		if err != nil {
			t.Fatal(err)
		}
		want := []keyCount{{KeyID: first, Rows: 2}, {KeyID: kr.PrimaryKeyID(), Rows: 1}}
		if !slices.Equal(use.ByKey, want) || use.NotCiphertext != 3 || use.TableMissing {
			t.Errorf("column %d: %+v, want %+v and 3 not ciphertext", i, use, want)
		}
	}
	if _, err := env.pool.Exec(ctx, "DROP TABLE secrets"); err != nil {
		t.Fatal(err)
	}
	if use, err := scanKeyUse(ctx, env.pool, cols[0]); err != nil || !use.TableMissing {
		t.Errorf("scan of a missing table: %+v, %v", use, err)
	}

	out := o.must(t, ctx, "keys", "rewrap", "--config", env.config)
	if !strings.Contains(out, "rewrapped (store version 3)") || !strings.Contains(out, "has no versions") {
		t.Errorf("rewrap with the local KEK:\n%s", out)
	}
}

func keyIDOfEnvelope(t *testing.T, raw []byte) uint32 {
	t.Helper()
	id, err := envelope.KeyID(raw)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
