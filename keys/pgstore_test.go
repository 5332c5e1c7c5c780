package keys

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// cluster is the throwaway PostgreSQL of this package's tests, started by
// pgtest.Main.
var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

var dbSeq atomic.Int64

// freshDB creates an empty database for one test and returns a function
// that opens a new connection to it (closed at the end of the test). Tests
// use one connection per simulated replica or writer, as the module does
// not depend on pgxpool.
func freshDB(t *testing.T) func() *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, cluster.ConnString(pgtest.SuperUser, "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("keys_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []*pgx.Conn
	)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close(ctx)
		}
		c, err := pgx.Connect(ctx, cluster.ConnString(pgtest.SuperUser, "", "postgres"))
		if err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	return func() *pgx.Conn {
		c, err := pgx.Connect(ctx, cluster.ConnString(pgtest.SuperUser, "", name))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		return c
	}
}

func TestPostgresStore(t *testing.T) {
	ctx := context.Background()
	connect := freshDB(t)
	newStore := func() Store { return NewPostgresStore(connect()) }

	// Replicas starting together all run EnsureSchema.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		s := NewPostgresStore(connect())
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.EnsureSchema(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent EnsureSchema: %v", err)
		}
	}
	if err := NewPostgresStore(connect()).EnsureSchema(ctx); err != nil {
		t.Fatalf("EnsureSchema again: %v", err)
	}
	testStoreContract(t, newStore)
}

func TestPostgresStoreReplicas(t *testing.T) {
	ctx := context.Background()
	connect := freshDB(t)
	db := connect()
	s := NewPostgresStore(db)
	if err := s.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	kek := newTestKEK(t)
	admin, replica := NewManager(kek, s), NewManager(kek, NewPostgresStore(connect()))
	if _, err := admin.Create(ctx, "pii", KindAEAD); err != nil {
		t.Fatal(err)
	}
	c := mustCipher(t, replica, "pii", colEmail)
	old, _ := c.Encrypt([]byte("old"))
	rotated, err := admin.Rotate(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	fresh, _ := c.Encrypt([]byte("new"))
	if keyIDOf(t, fresh) != rotated.PrimaryKeyID() {
		t.Fatal("replica did not pick up the rotation")
	}
	if got, err := c.Decrypt(old); err != nil || string(got) != "old" {
		t.Fatalf("Decrypt(old) = %q, %v", got, err)
	}
	infos, err := replica.List(ctx)
	if err != nil || len(infos) != 1 || len(infos[0].Keys) != 2 || infos[0].Keys[1].Created.IsZero() {
		t.Fatalf("List = %+v, %v", infos, err)
	}

	// Replicas rotating at the same time each add one key; none is lost.
	const replicas = 3
	var wg sync.WaitGroup
	errs := make(chan error, replicas)
	for range replicas {
		m := NewManager(kek, NewPostgresStore(connect()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Rotate(ctx, "pii")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := replica.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	kr, err := replica.Keyring(ctx, "pii")
	if err != nil || len(kr.Info().Keys) != 2+replicas || kr.Version() != 2+replicas {
		t.Fatalf("after concurrent rotations: %v, %v", kr, err)
	}
	if got, err := c.Decrypt(old); err != nil || string(got) != "old" {
		t.Fatalf("Decrypt(old) after rotations = %q, %v", got, err)
	}

	// The table holds no key material in clear: only wrapped keysets.
	var wrapped []byte
	if err := db.QueryRow(ctx, "SELECT wrapped FROM fleproxy.keyrings WHERE name = 'pii'").Scan(&wrapped); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(wrapped), `"encryptedKeyset"`) || strings.Contains(string(wrapped), `"value"`) {
		t.Fatalf("stored keyset is not a Tink EncryptedKeyset: %.80s", wrapped)
	}
}

// TestCheckExpressionPostgres runs CheckExpression in real CHECK constraints
// and a domain, with real ciphertexts.
func TestCheckExpressionPostgres(t *testing.T) {
	ctx := context.Background()
	conn := freshDB(t)()
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	c := mustCipher(t, f.m, "pii", colEmail)
	var real [][]byte
	for _, n := range []int{0, 1, 17, 32, 1000} {
		raw, err := c.Encrypt(make([]byte, n))
		if err != nil {
			t.Fatal(err)
		}
		real = append(real, raw)
	}
	ct := real[3]
	// The reserved deterministic mode: shape only.
	h := envelope.Header(envelope.Deterministic)
	det := append(h[:], 0x01)
	det = binary.BigEndian.AppendUint32(det, 42)
	det = append(det, make([]byte, 16)...)

	set := func(b []byte, i int, v byte) []byte {
		b = append([]byte(nil), b...)
		b[i] = v
		return b
	}
	badRaw := map[string][]byte{
		"plaintext":          []byte("alice@example.com"),
		"empty":              {},
		"one byte":           {0x46},
		"magic only":         []byte("FLE"),
		"header only":        ct[:5],
		"truncated":          ct[:37],
		"truncated det":      det[:25],
		"wrong magic":        set(ct, 0, 'f'),
		"version 2":          set(ct, 3, 2),
		"mode 0":             set(ct, 4, 0),
		"mode 3":             set(ct, 4, 3),
		"crunchy prefix":     set(ct, 5, 0),
		"plaintext 40 bytes": []byte("this plaintext is long enough to pass!!!"),
	}

	// The constraints are created under standard_conforming_strings=off to
	// show the literals do not depend on it.
	setup := []string{
		"SET standard_conforming_strings = off",
		"CREATE TABLE b (id serial, v bytea CHECK " + envelope.CheckExpression(`"v"`, envelope.Bytea) + ")",
		"CREATE TABLE t (id serial, v text CHECK " + envelope.CheckExpression(`"v"`, envelope.Text) + ")",
		"CREATE TABLE vc (id serial, v varchar(2000) CHECK " + envelope.CheckExpression(`"v"`, envelope.Text) + ")",
		"CREATE DOMAIN fle_bytea AS bytea CHECK " + envelope.CheckExpression("VALUE", envelope.Bytea),
		"CREATE TABLE d (id serial, v fle_bytea)",
		"RESET standard_conforming_strings",
	}
	for _, q := range setup {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	insert := func(table string, v any) error {
		_, err := conn.Exec(ctx, "INSERT INTO "+table+" (v) VALUES ($1)", v)
		return err
	}
	wantCheckViolation := func(what string, err error) {
		t.Helper()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("%s: error %v, want check_violation (23514)", what, err)
		}
	}

	for _, table := range []string{"b", "d"} {
		if err := insert(table, nil); err != nil {
			t.Errorf("%s: NULL rejected: %v", table, err)
		}
		for i, raw := range append(real, det) {
			if err := insert(table, raw); err != nil {
				t.Errorf("%s: ciphertext %d (%d bytes) rejected: %v", table, i, len(raw), err)
			}
		}
		for name, raw := range badRaw {
			wantCheckViolation(table+": "+name, insert(table, raw))
		}
	}

	armouredTrunc := string(envelope.Armor(ct[:37]))
	armoured := string(envelope.Armor(ct))
	badText := map[string]string{
		"plaintext":         "alice@example.com",
		"empty":             "",
		"prefix only":       "fle1:",
		"raw base64":        armoured[5:],
		"other version":     "fle2:" + armoured[5:],
		"truncated":         armouredTrunc,
		"padding":           armoured + "==",
		"newline":           armoured[:30] + "\n" + armoured[30:],
		"trailing newline":  armoured + "\n",
		"std alphabet":      armoured[:30] + "+" + armoured[31:],
		"impossible length": impossible(armoured),
		"armoured plain":    "fle1:" + strings.Repeat("YWxpY2VAZXhhbXBsZS5jb20", 3),
		"wrong mode byte":   string(envelope.Armor(set(ct, 4, 3))),
	}
	for _, table := range []string{"t", "vc"} {
		if err := insert(table, nil); err != nil {
			t.Errorf("%s: NULL rejected: %v", table, err)
		}
		for i, raw := range append(real, det) {
			if err := insert(table, string(envelope.Armor(raw))); err != nil {
				t.Errorf("%s: armoured ciphertext %d (%d bytes) rejected: %v", table, i, len(raw), err)
			}
		}
		for name, v := range badText {
			wantCheckViolation(table+": "+name, insert(table, v))
		}
	}

	// What the database accepted decrypts; nothing else got in.
	rows, err := conn.Query(ctx, "SELECT v FROM b WHERE v IS NOT NULL ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(real)+1 {
		t.Fatalf("%d rows in b, want %d", len(got), len(real)+1)
	}
	for i, raw := range got[:len(real)] {
		if _, err := c.Decrypt(raw); err != nil {
			t.Errorf("row %d: %v", i, err)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t WHERE v IS NOT NULL").Scan(&n); err != nil || n != len(real)+1 {
		t.Fatalf("%d rows in t, %v", n, err)
	}
}

// impossible pads an armoured value to a length no unpadded base64 text has
// (4k+1 characters after "fle1:").
func impossible(armoured string) string {
	for len(armoured)%4 != 2 {
		armoured += "A"
	}
	return armoured
}
