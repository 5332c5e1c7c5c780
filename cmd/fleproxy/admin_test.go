package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/internal/pgtest"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
)

// testCluster is the PostgreSQL cluster of this package's tests, started by TestMain.
var testCluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &testCluster) }

// testPolicy protects one bytea-storage and one text-storage column of public.secrets.
const testPolicy = `version: 1
columns:
  - column: public.secrets.note_b
    type: text
    key: pii
    storage: bytea
  - column: public.secrets.note_t
    type: text
    key: pii
    storage: text
`

// adminEnv is a database holding table public.secrets, with a configuration and a policy for it.
type adminEnv struct {
	db     string
	dir    string
	config string         // configuration file using policy testPolicy
	pool   *pgxpool.Pool  // direct connection to db, as the owner
	pol    *policy.Policy // testPolicy
}

func newAdminEnv(t *testing.T, ctx context.Context, db string) *adminEnv {
	t.Helper()
	if err := testCluster.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, testCluster.ConnString(pgtest.AppUser, pgtest.AppPassword, db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE public.secrets (id int PRIMARY KEY, note_b bytea, note_t text)`); err != nil {
		t.Fatal(err)
	}
	e := &adminEnv{db: db, dir: t.TempDir(), pool: pool}
	e.config = e.writeConfig(t, "config.yaml", testPolicy, "")
	if e.pol, err = policy.Load(filepath.Join(e.dir, "config.yaml.policy")); err != nil {
		t.Fatal(err)
	}
	return e
}

// writeConfig writes policy text and a configuration file name using it; extra is appended to
// the encryption section.
func (e *adminEnv) writeConfig(t *testing.T, name, policyText, extra string) string {
	t.Helper()
	pol := filepath.Join(e.dir, name+".policy")
	if err := os.WriteFile(pol, []byte(policyText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("encryption:\n  policy: %q\n  service: %q\n  kek_file: %q\n%s",
		pol, testCluster.ConnString(pgtest.AppUser, pgtest.AppPassword, e.db), filepath.Join(e.dir, "kek", "kek.json"), extra)
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runCLI runs fleproxy with args and returns what it printed on stdout.
func runCLI(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(ctx)
	t.Logf("fleproxy %s\n%s%s(error: %v)", strings.Join(args, " "), out.String(), errOut.String(), err)
	return out.String(), err
}

func mustRun(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := runCLI(t, ctx, args...)
	if err != nil {
		t.Fatalf("fleproxy %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func listKeys(t *testing.T, ctx context.Context, config string) keysListReport {
	t.Helper()
	var rep keysListReport
	if err := json.Unmarshal([]byte(mustRun(t, ctx, "keys", "list", "--config", config, "--json")), &rep); err != nil {
		t.Fatalf("keys list --json: %v", err)
	}
	return rep
}

func TestKeysCommands(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "admin_keys")

	out := mustRun(t, ctx, "keys", "init", "--config", env.config)
	for _, want := range []string{"KEK: created", "DEVELOPMENT ONLY", "never use it in production", "pii", "created", "Created 1 keyring"} {
		if !strings.Contains(out, want) {
			t.Errorf("first keys init output lacks %q", want)
		}
	}
	kekFile := filepath.Join(env.dir, "kek", "kek.json")
	st, err := os.Stat(kekFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("KEK file mode %04o, want 0600", st.Mode().Perm())
	}
	kekBytes, err := os.ReadFile(kekFile)
	if err != nil {
		t.Fatal(err)
	}

	out = mustRun(t, ctx, "keys", "init", "--config", env.config)
	for _, want := range []string{"KEK: using existing", "already present", "Nothing to do"} {
		if !strings.Contains(out, want) {
			t.Errorf("second keys init output lacks %q", want)
		}
	}
	if strings.Contains(out, "KEK: created") {
		t.Error("second keys init created a KEK")
	}
	if b, _ := os.ReadFile(kekFile); !bytes.Equal(b, kekBytes) {
		t.Error("second keys init changed the KEK file")
	}

	var initRep keysInitReport
	if err := json.Unmarshal([]byte(mustRun(t, ctx, "keys", "init", "--config", env.config, "--json")), &initRep); err != nil {
		t.Fatal(err)
	}
	if initRep.Created != 0 || len(initRep.Keyrings) != 1 || initRep.Keyrings[0].Created || !initRep.KEK.DevelopmentOnly {
		t.Errorf("keys init --json after init: %+v", initRep)
	}

	before := listKeys(t, ctx, env.config)
	if len(before.Keyrings) != 1 || len(before.Missing) != 0 {
		t.Fatalf("keys list: %+v", before)
	}
	kr := before.Keyrings[0]
	if kr.Name != "pii" || kr.Kind != "aead" || kr.KEKID != before.ConfiguredKEKID || kr.Version != 1 ||
		len(kr.Keys) != 1 || kr.Keys[0].ID != kr.PrimaryKeyID || !kr.Keys[0].Primary || kr.Keys[0].Status != "enabled" {
		t.Errorf("keys list: keyring %+v, configured KEK %q", kr, before.ConfiguredKEKID)
	}
	if kr.PrimaryKeyID != initRep.Keyrings[0].PrimaryKeyID {
		t.Errorf("keys list primary %08x, keys init said %08x", kr.PrimaryKeyID, initRep.Keyrings[0].PrimaryKeyID)
	}

	out = mustRun(t, ctx, "keys", "rotate", "pii", "--config", env.config)
	if !strings.Contains(out, keyID(kr.PrimaryKeyID)) || !strings.Contains(out, "refresh_interval (30s)") {
		t.Errorf("keys rotate output lacks the old primary or the refresh interval")
	}
	after := listKeys(t, ctx, env.config)
	nk := after.Keyrings[0]
	if nk.PrimaryKeyID == kr.PrimaryKeyID || nk.Version != 2 || len(nk.Keys) != 2 {
		t.Fatalf("after rotate: %+v", nk)
	}
	if !strings.Contains(out, keyID(nk.PrimaryKeyID)) {
		t.Errorf("keys rotate output lacks the new primary %s", keyID(nk.PrimaryKeyID))
	}

	out = mustRun(t, ctx, "keys", "list", "--config", env.config)
	for _, want := range []string{"Keyring pii", keyID(kr.PrimaryKeyID), keyID(nk.PrimaryKeyID), "primary", "version 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("keys list output lacks %q", want)
		}
	}

	if _, err := runCLI(t, ctx, "keys", "rotate", "nope", "--config", env.config); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("rotating a missing keyring: %v, want ErrNotFound", err)
	}

	// A lost KEK file is not silently replaced while keyrings wrapped by it exist.
	if err := os.Remove(kekFile); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, ctx, "keys", "init", "--config", env.config); err == nil || !strings.Contains(err.Error(), "restore that KEK file") {
		t.Errorf("keys init without the KEK file: %v", err)
	}
	if _, err := os.Stat(kekFile); err == nil {
		t.Error("keys init created a new KEK while keyrings exist")
	}
	// Listing needs no KEK.
	if rep := listKeys(t, ctx, env.config); rep.ConfiguredKEKID != "" || len(rep.Keyrings) != 1 {
		t.Errorf("keys list without a KEK: %+v", rep)
	}
}

func TestKeysWithoutStore(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "admin_nostore")
	_, err := runCLI(t, ctx, "keys", "list", "--config", env.config)
	if err == nil || !strings.Contains(err.Error(), "fleproxy keys init") {
		t.Errorf("keys list before init: %v", err)
	}
	if _, err := runCLI(t, ctx, "keys", "list"); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("keys list without --config: %v", err)
	}
}

func TestPolicyCheck(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "admin_check")
	// Before any keyring exists, the check says what `serve` would fail on.
	if _, err := runCLI(t, ctx, "policy", "check", "--config", env.config); err == nil || !strings.Contains(err.Error(), "fleproxy keys init") {
		t.Errorf("policy check before keys init: %v", err)
	}
	mustRun(t, ctx, "keys", "init", "--config", env.config)

	out := mustRun(t, ctx, "policy", "check", "--config", env.config)
	for _, want := range []string{"public.secrets.note_b", "public.secrets.note_t", "bytea", "pii", "exists", "OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy check output lacks %q", want)
		}
	}
	var rep policyCheckReport
	if err := json.Unmarshal([]byte(mustRun(t, ctx, "policy", "check", "--config", env.config, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Valid || len(rep.Columns) != 2 || !rep.Columns[1].TableExists || rep.Columns[1].Storage != "text" || rep.Columns[1].ID != "public.secrets.note_t" {
		t.Errorf("policy check --json: %+v", rep)
	}

	misspelt := env.writeConfig(t, "misspelt.yaml", strings.Replace(testPolicy, "note_t", "note_tt", 1), "")
	out, err := runCLI(t, ctx, "policy", "check", "--config", misspelt)
	var ve *policy.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "public.secrets.note_tt does not exist") {
		t.Errorf("policy check with a misspelt column: %v", err)
	}
	if !strings.Contains(out, "INVALID") {
		t.Errorf("policy check output does not say the policy is invalid")
	}

	missing := env.writeConfig(t, "missing.yaml", testPolicy+`  - column: public.later.x
    type: int4
    key: other
`, "")
	if _, err := runCLI(t, ctx, "policy", "check", "--config", missing); err == nil || !strings.Contains(err.Error(), "public.later does not exist") {
		t.Errorf("policy check with a missing table: %v", err)
	}
	allowed := env.writeConfig(t, "allowed.yaml", testPolicy+`  - column: public.later.x
    type: int4
    key: other
`, "  allow_missing_tables: true\n")
	mustRun(t, ctx, "keys", "init", "--config", allowed)
	out = mustRun(t, ctx, "policy", "check", "--config", allowed)
	if !strings.Contains(out, "missing (allowed") || !strings.Contains(out, "OK") {
		t.Errorf("policy check with allow_missing_tables does not show the missing table as allowed")
	}
}

// constraintNames lists the CHECK constraints of public.secrets.
func constraintNames(t *testing.T, ctx context.Context, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT conname FROM pg_constraint WHERE conrelid = 'public.secrets'::regclass AND contype = 'c' ORDER BY conname`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func wantSQLState(t *testing.T, err error, code, what string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code {
		t.Errorf("%s: got %v, want SQLSTATE %s", what, err, code)
	}
}

func TestPolicyConstraints(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "admin_constraints")
	wantNames := []string{"fleproxy_secrets_note_b_ciphertext", "fleproxy_secrets_note_t_ciphertext"}

	// The printed SQL runs as is, in another database with the same table.
	script := mustRun(t, ctx, "policy", "constraints", "--config", env.config)
	if !strings.Contains(script, `ALTER TABLE "public"."secrets" ADD CONSTRAINT "fleproxy_secrets_note_b_ciphertext" CHECK ((`) {
		t.Errorf("unexpected SQL:\n%s", script)
	}
	other := newAdminEnv(t, ctx, "admin_constraints_sql")
	if _, err := other.pool.Exec(ctx, script, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("running the printed SQL: %v", err)
	}
	if got := constraintNames(t, ctx, other.pool); !slices.Equal(got, wantNames) {
		t.Errorf("printed SQL made constraints %q, want %q", got, wantNames)
	}
	out := mustRun(t, ctx, "policy", "constraints", "--apply", "--config", other.config)
	if strings.Count(out, "already present, skipped") != 2 {
		t.Errorf("--apply after the printed SQL did not skip both constraints")
	}
	var plans []constraintPlan
	if err := json.Unmarshal([]byte(mustRun(t, ctx, "policy", "constraints", "--config", env.config, "--json")), &plans); err != nil {
		t.Fatal(err)
	}
	if len(plans) != 2 || plans[1].Constraint != wantNames[1] || !strings.HasPrefix(plans[1].SQL, "ALTER TABLE") {
		t.Errorf("policy constraints --json: %+v", plans)
	}

	out = mustRun(t, ctx, "policy", "constraints", "--apply", "--config", env.config)
	if strings.Count(out, "added") != 2 || !strings.Contains(out, "Added 2 constraint(s)") {
		t.Errorf("--apply did not report two added constraints")
	}
	if got := constraintNames(t, ctx, env.pool); !slices.Equal(got, wantNames) {
		t.Errorf("--apply made constraints %q, want %q", got, wantNames)
	}

	_, err := env.pool.Exec(ctx, `INSERT INTO secrets (id, note_b) VALUES (1, 'alice@example.com'::bytea)`)
	wantSQLState(t, err, sqlstateCheckViolation, "plaintext into the bytea column")
	_, err = env.pool.Exec(ctx, `INSERT INTO secrets (id, note_t) VALUES (1, 'alice@example.com')`)
	wantSQLState(t, err, sqlstateCheckViolation, "plaintext into the text column")
	_, err = env.pool.Exec(ctx, `INSERT INTO secrets (id, note_t) VALUES (1, 'fle1:not-a-ciphertext')`)
	wantSQLState(t, err, sqlstateCheckViolation, "a fake armoured value into the text column")
	if _, err := env.pool.Exec(ctx, `INSERT INTO secrets (id, note_b, note_t) VALUES (1, NULL, NULL)`); err != nil {
		t.Errorf("NULL into protected columns: %v", err)
	}

	// Real ciphertexts pass.
	mustRun(t, ctx, "keys", "init", "--config", env.config)
	kek, err := keys.OpenLocalKEK(filepath.Join(env.dir, "kek", "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := keys.NewManager(kek, keys.NewPostgresStore(env.pool))
	cols := env.pol.Columns()
	var sealed [2][]byte
	for i, c := range cols {
		cc, err := m.ColumnCipher(ctx, c.Key, c.ID, envelope.Randomized)
		if err != nil {
			t.Fatal(err)
		}
		if sealed[i], err = cc.Encrypt([]byte("alice@example.com")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.pool.Exec(ctx, `INSERT INTO secrets (id, note_b, note_t) VALUES (2, $1, $2)`, sealed[0], string(envelope.Armor(sealed[1]))); err != nil {
		t.Errorf("ciphertexts into protected columns: %v", err)
	}

	out = mustRun(t, ctx, "policy", "constraints", "--apply", "--config", env.config)
	if strings.Count(out, "already present, skipped") != 2 || !strings.Contains(out, "Added 0 constraint(s)") {
		t.Errorf("second --apply did not skip both constraints")
	}
}

func TestPolicyConstraintsOnPlaintext(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "admin_plaintext")
	const secret = "alice@example.com"
	if _, err := env.pool.Exec(ctx, `INSERT INTO secrets (id, note_t) VALUES (1, $1)`, secret); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, ctx, "policy", "constraints", "--apply", "--config", env.config)
	var pe *plaintextError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "column public.secrets.note_t holds values that are not fleproxy ciphertext") ||
		!strings.Contains(err.Error(), "encrypt the existing rows first") {
		t.Fatalf("--apply on plaintext: %v", err)
	}
	if strings.Contains(err.Error()+out, secret) {
		t.Error("the plaintext value appears in the output or the error")
	}
	if !strings.Contains(out, "FAILED") || !strings.Contains(out, "No constraint was added") {
		t.Errorf("--apply output does not report the failure")
	}
	if got := constraintNames(t, ctx, env.pool); len(got) != 0 {
		t.Errorf("constraints %q were added despite the failure", got)
	}
}

func TestPolicyConstraintsNeedsValidPolicy(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "admin_badpolicy")
	misspelt := env.writeConfig(t, "misspelt.yaml", strings.Replace(testPolicy, "note_b", "note_bb", 1), "")
	if _, err := runCLI(t, ctx, "policy", "constraints", "--apply", "--config", misspelt); err == nil || !strings.Contains(err.Error(), "note_bb does not exist") {
		t.Errorf("--apply with a misspelt column: %v", err)
	}
	if got := constraintNames(t, ctx, env.pool); len(got) != 0 {
		t.Errorf("constraints %q were added for an invalid policy", got)
	}
}

func TestConstraintName(t *testing.T) {
	if got := constraintName("customer", "email"); got != "fleproxy_customer_email_ciphertext" {
		t.Errorf("short name: %q", got)
	}
	long := strings.Repeat("t", 40)
	a, b := constraintName(long, strings.Repeat("c", 30)+"1"), constraintName(long, strings.Repeat("c", 30)+"2")
	if a == b {
		t.Errorf("columns differing past the cut share the name %q", a)
	}
	if a != constraintName(long, strings.Repeat("c", 30)+"1") {
		t.Error("name is not stable")
	}
	multi := strings.Repeat("é", 31) // 62 bytes
	for _, n := range []string{a, b, constraintName(multi, multi)} {
		if len(n) > maxIdentLen || !utf8.ValidString(n) || !strings.HasPrefix(n, "fleproxy_") || !strings.HasSuffix(n, "_ciphertext") {
			t.Errorf("long name %q (%d bytes)", n, len(n))
		}
	}
}
