package migrate

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/internal/pgtest"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy/codec"
)

// testCluster is the PostgreSQL cluster of this package's tests, started by TestMain.
var testCluster *pgtest.Cluster

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	pgtest.Main(m, &testCluster)
}

// testPolicy protects every column of public.people, one per kind of storage and plaintext form.
const testPolicy = `version: 1
columns:
  - column: public.people.note
    type: text
    key: pii
    storage: text
  - column: public.people.email
    type: text
    key: pii
    storage: bytea
  - column: public.people.photo
    type: bytea
    key: pii
    storage: bytea
  - column: public.people.born
    type: date
    key: pii
    storage: text
  - column: public.people.amount
    type: numeric
    key: money
    storage: text
  - column: public.pairs.secret
    type: text
    key: pii
    storage: text
  - column: public.parts.secret
    type: int8
    key: pii
    storage: text
  - column: public.nokey.secret
    type: text
    key: pii
    storage: text
  - column: public.plain.secret
    type: text
    key: pii
    storage: bytea
  - column: public.docs.body
    type: text
    key: pii
    storage: bytea
  - column: public.blocked.secret
    type: text
    key: pii
    storage: bytea
`

// peopleColumns are the protected columns of public.people.
var peopleColumns = []string{"note", "email", "photo", "born", "amount"}

// fixture is a database with table public.people of n rows, a policy and keys for it.
type fixture struct {
	t        *testing.T
	ctx      context.Context
	db       string
	conn     string // connection string of db, as its owner
	pool     *pgxpool.Pool
	dir      string
	kekFile  string
	storeDir string
	polFile  string
	km       *keys.Manager
	pol      *policy.Policy
	runner   *Runner
	ids      []int64

	mu      sync.Mutex
	ciphers map[*policy.Column]*keys.ColumnCipher
}

func newFixture(t *testing.T, db string, rows int) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	db = fmt.Sprintf("%s_%d", db, time.Now().UnixNano()) // unique, for -count
	if err := testCluster.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, db: db, conn: testCluster.ConnString(pgtest.AppUser, pgtest.AppPassword, db), dir: t.TempDir()}
	var err error
	if f.pool, err = pgxpool.New(ctx, f.conn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.pool.Close)
	f.exec(`CREATE TABLE public.people (
	id     bigint PRIMARY KEY,
	name   text NOT NULL,
	note   text,
	email  bytea,
	photo  bytea,
	born   text,
	amount varchar(120)
)`)
	f.fill(rows)

	f.kekFile = filepath.Join(f.dir, "kek.json")
	f.storeDir = filepath.Join(f.dir, "keyrings")
	kek, err := keys.InitLocalKEK(f.kekFile)
	if err != nil {
		t.Fatal(err)
	}
	store, err := keys.NewFileStore(f.storeDir)
	if err != nil {
		t.Fatal(err)
	}
	f.km = keys.NewManager(kek, store)
	for _, name := range []string{"pii", "money"} {
		if _, err := f.km.Create(ctx, name, keys.KindAEAD); err != nil {
			t.Fatal(err)
		}
	}
	f.polFile = filepath.Join(f.dir, "policy.yaml")
	if err := os.WriteFile(f.polFile, []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if f.pol, err = policy.Load(f.polFile); err != nil {
		t.Fatal(err)
	}
	f.runner = NewRunner(f.pool, f.km)
	return f
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(f.ctx, sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// fill inserts n rows with ids 3, 6, 9, … holding NULLs, empty values, multi-byte text, quotes
// and backslashes, each in the text form PostgreSQL itself would print, so that decrypting
// restores the exact bytes.
func (f *fixture) fill(n int) {
	f.t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"alpha", "Ünïcødé", "日本語", "it's", `back\slash`, "tab\there", "new\nline", "😀", "\"quoted\"", "fle1:RkxF"}
	rows := make([][]any, n)
	for i := range n {
		id := int64(3 * (i + 1))
		f.ids = append(f.ids, id)
		var note, born, amount any
		var email, photo any
		switch {
		case i%17 == 0:
		case i%13 == 0:
			note = ""
		default:
			var b strings.Builder
			for range 1 + rng.IntN(5) {
				b.WriteString(words[rng.IntN(len(words))])
				b.WriteByte(' ')
			}
			note = b.String()
		}
		switch {
		case i%11 == 0:
		case i%19 == 0:
			email = []byte{}
		default:
			email = []byte(fmt.Sprintf("user%d@exämple.com", i))
		}
		if i%7 != 0 {
			p := make([]byte, rng.IntN(48))
			for j := range p {
				p[j] = byte(rng.UintN(256))
			}
			photo = p
		}
		if i%5 != 0 {
			born = time.Date(1900+rng.IntN(120), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
		}
		if i%9 != 0 {
			amount = fmt.Sprintf("%d.%02d", rng.IntN(100000)-5000, rng.IntN(100))
		}
		rows[i] = []any{id, fmt.Sprintf("person %d", i), note, email, photo, born, amount}
	}
	_, err := f.pool.CopyFrom(f.ctx, pgx.Identifier{"public", "people"},
		[]string{"id", "name", "note", "email", "photo", "born", "amount"}, pgx.CopyFromRows(rows))
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) column(name string) *policy.Column {
	f.t.Helper()
	c, err := policy.ParseColumnName(name)
	if err != nil {
		f.t.Fatal(err)
	}
	col, ok := f.pol.Column(c.Schema, c.Table, c.Column)
	if !ok {
		f.t.Fatalf("column %s is not in the policy", name)
	}
	return col
}

func (f *fixture) job(kind Kind, name string) Job {
	col := f.column(name)
	return Job{Kind: kind, Column: col, Constraint: "fleproxy_" + col.Name.Table + "_" + col.Name.Column + "_ciphertext"}
}

// run runs a job and fails the test on error.
func (f *fixture) run(kind Kind, name string, opts Options) *Report {
	f.t.Helper()
	rep, err := f.runner.Run(f.ctx, f.job(kind, name), opts)
	if err != nil {
		f.t.Fatalf("%s %s: %v", kind, name, err)
	}
	return rep
}

// snapshot holds the stored bytes of each column of each row (nil for NULL).
type snapshot map[int64]map[string][]byte

func (f *fixture) snapshot(table string, cols ...string) snapshot {
	f.t.Helper()
	rows, err := f.pool.Query(f.ctx, "SELECT id, "+strings.Join(cols, ", ")+" FROM "+table)
	if err != nil {
		f.t.Fatal(err)
	}
	snap := snapshot{}
	for rows.Next() {
		var id int64
		vals := make([][]byte, len(cols))
		dst := []any{&id}
		for i := range vals {
			dst = append(dst, &vals[i])
		}
		if err := rows.Scan(dst...); err != nil {
			f.t.Fatal(err)
		}
		m := map[string][]byte{}
		for i, c := range cols {
			m[c] = vals[i]
		}
		snap[id] = m
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return snap
}

// plainOf decrypts one stored value of col independently of the package's converter: it must be
// a well-formed envelope of the column, and its plaintext must not be one (double encryption).
// It returns the plaintext in the stored form the column had before encryption.
func (f *fixture) plainOf(col *policy.Column, stored []byte) ([]byte, uint32, error) {
	raw := stored
	if col.Storage == policy.StorageText {
		var err error
		if raw, err = envelope.Dearmor(stored); err != nil {
			return nil, 0, fmt.Errorf("not ciphertext: %w", err)
		}
	}
	id, err := envelope.KeyID(raw)
	if err != nil {
		return nil, 0, fmt.Errorf("not ciphertext: %w", err)
	}
	pt, err := f.cipher(col).Decrypt(raw)
	if err != nil {
		return nil, 0, err
	}
	if _, _, err := envelope.Parse(pt); err == nil {
		return nil, 0, fmt.Errorf("double encrypted: the plaintext is an envelope")
	}
	if armored, err := envelope.Dearmor(pt); err == nil && armored != nil {
		return nil, 0, fmt.Errorf("double encrypted: the plaintext is an armoured envelope")
	}
	if col.Type == policy.TypeBytea {
		return pt, id, nil
	}
	typ, _ := codec.Lookup(string(col.Type))
	text, err := codec.Wire(typ, codec.FormatText, pt, nil)
	return text, id, err
}

// checkEncrypted asserts that every row of table holds, in col, the encryption of its value in
// want (NULL stays NULL), that no row appeared or vanished, and returns the key IDs seen.
func (f *fixture) checkEncrypted(table string, col *policy.Column, want snapshot) map[uint32]int {
	f.t.Helper()
	got := f.snapshot(table, col.Name.Column)
	if len(got) != len(want) {
		f.t.Fatalf("%s: %d rows, want %d", table, len(got), len(want))
	}
	ids := map[uint32]int{}
	bad := 0
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			f.t.Fatalf("row %d vanished", id)
		}
		wv, gv := w[col.Name.Column], g[col.Name.Column]
		if wv == nil || gv == nil {
			if (wv == nil) != (gv == nil) {
				f.t.Errorf("row %d: NULL mismatch (want NULL %v)", id, wv == nil)
				bad++
			}
			continue
		}
		pt, keyID, err := f.plainOf(col, gv)
		if err != nil {
			f.t.Errorf("row %d of %s: %v", id, col.Name, err)
			bad++
		} else if !bytes.Equal(pt, wv) {
			f.t.Errorf("row %d of %s: decrypts to another value", id, col.Name)
			bad++
		}
		ids[keyID]++
		if bad > 10 {
			f.t.FailNow()
		}
	}
	return ids
}

// checkPlain asserts that col of every row holds exactly its value in want.
func (f *fixture) checkPlain(table string, col string, want snapshot) {
	f.t.Helper()
	got := f.snapshot(table, col)
	if len(got) != len(want) {
		f.t.Fatalf("%s: %d rows, want %d", table, len(got), len(want))
	}
	bad := 0
	for id, w := range want {
		wv, gv := w[col], got[id][col]
		if (wv == nil) != (gv == nil) || !bytes.Equal(wv, gv) {
			f.t.Errorf("row %d: %s differs from the original", id, col)
			if bad++; bad > 10 {
				f.t.FailNow()
			}
		}
	}
}

// constraint returns whether the named constraint exists on table and is validated.
func (f *fixture) constraint(table, name string) (exists, valid bool) {
	f.t.Helper()
	err := f.pool.QueryRow(f.ctx, `SELECT convalidated FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2`, table, name).Scan(&valid)
	if err == pgx.ErrNoRows {
		return false, false
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return true, valid
}

func (f *fixture) cipher(col *policy.Column) *keys.ColumnCipher {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.ciphers[col]; c != nil {
		return c
	}
	c, err := f.km.ColumnCipher(f.ctx, col.Key, col.ID, envelope.Randomized)
	if err != nil {
		f.t.Fatal(err)
	}
	if f.ciphers == nil {
		f.ciphers = map[*policy.Column]*keys.ColumnCipher{}
	}
	f.ciphers[col] = c
	return c
}

// ciphertext encrypts the text plain for col as the proxy would store it.
func (f *fixture) ciphertext(col *policy.Column, plain []byte) []byte {
	f.t.Helper()
	canonical := plain
	if col.Type != policy.TypeBytea {
		typ, _ := codec.Lookup(string(col.Type))
		var err error
		if canonical, err = codec.Canonical(typ, codec.FormatText, plain, nil); err != nil {
			f.t.Fatal(err)
		}
	}
	raw, err := f.cipher(col).Encrypt(canonical)
	if err != nil {
		f.t.Fatal(err)
	}
	if col.Storage == policy.StorageText {
		return envelope.Armor(raw)
	}
	return raw
}

// storedArg is v as a query argument for col's storage.
func storedArg(col *policy.Column, v []byte) any {
	if col.Storage == policy.StorageText {
		return string(v)
	}
	return v
}
