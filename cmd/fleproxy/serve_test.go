package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/fleproxy/fleproxy/internal/pgtest"
)

// reloadPolicy clears role app for plaintext of note_t, or not.
func reloadPolicy(cleared bool) string {
	p := testPolicy
	if cleared {
		p += "cleared:\n  roles: [app]\n"
	}
	return p
}

// TestServeReloadsPolicyOnSIGHUP runs `fleproxy serve` with a policy, reloads a changed policy
// with SIGHUP (new statements of an open session and new sessions follow it, the session is not
// dropped), and checks that an invalid policy is refused with the running one kept. The audit
// stream records the sessions, the plaintext revealed and the reloads, without values.
func TestServeReloadsPolicyOnSIGHUP(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "serve_reload")
	mustRun(t, ctx, "keys", "init", "--config", env.config)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	policyFile := filepath.Join(env.dir, "config.yaml.policy")
	auditFile := filepath.Join(env.dir, "audit.log")
	cfg, err := os.ReadFile(env.config)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(env.dir, "serve.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("listen: %s\nupstream:\n  address: %s\naudit:\n  output: %s\n%s  refresh_interval: 1s\n", addr, testCluster.Addr(), auditFile, cfg)), 0o600); err != nil {
		t.Fatal(err)
	}

	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := runCLI(t, sctx, "serve", "--config", cfgFile, "--log-level", "debug"); done <- err }()
	t.Cleanup(func() { stop(); <-done })

	u := url.URL{Scheme: "postgres", Host: addr, Path: "/" + env.db, User: url.UserPassword(pgtest.AppUser, pgtest.AppPassword), RawQuery: "sslmode=disable"}
	var conn *pgx.Conn
	deadline := time.Now().Add(20 * time.Second)
	for {
		if conn, err = pgx.Connect(ctx, u.String()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "insert into secrets (id, note_t) values (1, 'reload-canary')"); err != nil {
		t.Fatal(err)
	}
	read := func(c *pgx.Conn) string {
		t.Helper()
		var v string
		if err := c.QueryRow(ctx, "select note_t from secrets where id = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := read(conn); !strings.HasPrefix(v, "fle1:") {
		t.Fatalf("before the reload: %q", v)
	}

	if err := os.WriteFile(policyFile, []byte(reloadPolicy(true)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil := time.Now().Add(10 * time.Second)
	for read(conn) != "reload-canary" {
		if time.Now().After(waitUntil) {
			t.Fatal("the open session did not follow the reloaded policy")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// An invalid policy is refused; the running one stays.
	if err := os.WriteFile(policyFile, []byte("version: 1\ncolumns:\n  - column: public.secrets.nope\n    type: text\n    key: pii\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	fresh, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close(ctx)
	if v := read(fresh); v != "reload-canary" {
		t.Fatalf("after a failed reload a new session reads %q", v)
	}
	if v := read(conn); v != "reload-canary" {
		t.Fatalf("after a failed reload the open session reads %q", v)
	}

	audit, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"event":"session"`, `"event":"policy_reloaded"`, `"event":"policy_reload_failed"`, `"event":"plaintext"`, `"columns":["public.secrets.note_t"]`} {
		if !strings.Contains(string(audit), want) {
			t.Errorf("audit log lacks %s:\n%s", want, audit)
		}
	}
	if strings.Contains(string(audit), "reload-canary") {
		t.Fatal("a value reached the audit log")
	}
}

// TestPolicyCheckPerIdentity prints what each identity sees of each column.
func TestPolicyCheckPerIdentity(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "check_identities")
	cfg := env.writeConfig(t, "ids.yaml", testPolicy+`require_mtls_for_plaintext: true
identities:
  - name: reader
    match: {roles: [app]}
    clearance: {default: plaintext, columns: {public.secrets.note_b: deny}}
    write: false
`, "")
	mustRun(t, ctx, "keys", "init", "--config", cfg)
	out := mustRun(t, ctx, "policy", "check", "--config", cfg)
	for _, want := range []string{`identity "reader"`, "may not write protected columns", "public.secrets.note_b  deny", "plaintext with a client certificate, ciphertext without"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy check output lacks %q:\n%s", want, out)
		}
	}
}

// TestServeFailsWithoutVault starts `fleproxy serve` with a Vault KEK whose Vault cannot be
// reached: it must stop with an error that says so, not serve without keys.
func TestServeFailsWithoutVault(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "serve_no_vault")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	tokenFile := filepath.Join(env.dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s.not-a-real-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(env.dir, "novault.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
encryption:
  policy: %q
  service: %q
  vault:
    address: "http://%s"
    key: fleproxy
    timeout: 2s
    auth:
      method: token
      token_file: %q
`, testCluster.Addr(), filepath.Join(env.dir, "config.yaml.policy"), testCluster.ConnString(pgtest.AppUser, pgtest.AppPassword, env.db), dead, tokenFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = runCLI(t, ctx, "serve", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), "Vault") || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("serve without Vault: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("serve took %v to give up on Vault", d)
	}
	if strings.Contains(err.Error(), "not-a-real-token") {
		t.Fatal("the token reached the error message")
	}
}

// TestReloadRevokesOpenPortal keeps a portal open across a reload that revokes plaintext: its
// next rows must not be sent decrypted.
func TestReloadRevokesOpenPortal(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "serve_reload_portal")
	policyFile := filepath.Join(env.dir, "config.yaml.policy")
	if err := os.WriteFile(policyFile, []byte(reloadPolicy(true)), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, ctx, "keys", "init", "--config", env.config)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg, err := os.ReadFile(env.config)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(env.dir, "serve.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("listen: %s\nupstream:\n  address: %s\naudit:\n  output: %s\n%s", addr, testCluster.Addr(), filepath.Join(env.dir, "audit.log"), cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := runCLI(t, sctx, "serve", "--config", cfgFile); done <- err }()
	t.Cleanup(func() { stop(); <-done })

	u := url.URL{Scheme: "postgres", Host: addr, Path: "/" + env.db, User: url.UserPassword(pgtest.AppUser, pgtest.AppPassword), RawQuery: "sslmode=disable"}
	connect := func() *pgx.Conn {
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := pgx.Connect(ctx, u.String())
			if err == nil {
				t.Cleanup(func() { c.Close(context.Background()) })
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("connect: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	conn := connect()
	for i := range 3 {
		if _, err := conn.Exec(ctx, "insert into secrets (id, note_t) values ($1, $2)", i, fmt.Sprintf("portal-canary-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	pc := conn.PgConn()
	if _, err := pc.Exec(ctx, "begin").ReadAll(); err != nil {
		t.Fatal(err)
	}
	hj, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Conn.Close()
	fe := hj.Frontend
	execute := func() (rows []string, code string) {
		fe.Send(&pgproto3.Execute{MaxRows: 1})
		fe.Send(&pgproto3.Flush{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *pgproto3.DataRow:
				rows = append(rows, string(m.Values[0]))
			case *pgproto3.ErrorResponse:
				return rows, m.Code
			case *pgproto3.PortalSuspended, *pgproto3.CommandComplete:
				return rows, ""
			}
		}
	}
	fe.Send(&pgproto3.Parse{Query: "select note_t from secrets order by id"})
	fe.Send(&pgproto3.Bind{})
	if rows, code := execute(); code != "" || len(rows) != 1 || rows[0] != "portal-canary-0" {
		t.Fatalf("first row before the reload: %v %s", rows, code)
	}

	if err := os.WriteFile(policyFile, []byte(reloadPolicy(false)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	probe := connect()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var v string
		if err := probe.QueryRow(ctx, "select note_t from secrets where id = 0").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(v, "fle1:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reload did not take effect")
		}
		time.Sleep(100 * time.Millisecond)
	}
	rows, code := execute()
	for _, r := range rows {
		if strings.Contains(r, "portal-canary") {
			t.Fatalf("the open portal sent plaintext after the reload revoked it: %v", rows)
		}
	}
	if code != "55000" {
		t.Fatalf("open portal after the reload: rows %v, code %q; want 55000", rows, code)
	}
}

// TestQuickstart runs the README's main command, the pagila quickstart, end to end.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := runDemo(ctx, &out, "../../examples/quickstart", "json"); err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out.String())
	}
	for _, want := range []string{"MARY.SMITH@sakilacustomer.org", "*******4290", "fle1:", "ERROR 23514", "ERROR 0A000"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("quickstart output lacks %q", want)
		}
	}
}
