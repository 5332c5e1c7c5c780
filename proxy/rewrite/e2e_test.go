package rewrite_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

const peopleSchema = `
create table people (
	id int primary key,
	email text,
	ssn bytea,
	born bytea,
	score bytea,
	balance bytea,
	active bytea,
	seen bytea,
	ident bytea,
	profile bytea,
	blob bytea,
	note text
);
create table other (id int primary key, email text, alt bytea);
`

const peoplePolicy = `
version: 1
columns:
  - {column: public.people.email,   type: text,        key: pii, storage: text}
  - {column: public.people.ssn,     type: text,        key: pii, storage: bytea}
  - {column: public.people.born,    type: date,        key: pii}
  - {column: public.people.score,   type: int4,        key: pii}
  - {column: public.people.balance, type: numeric,     key: pii}
  - {column: public.people.active,  type: bool,        key: pii}
  - {column: public.people.seen,    type: timestamptz, key: pii}
  - {column: public.people.ident,   type: uuid,        key: pii}
  - {column: public.people.profile, type: jsonb,       key: pii}
  - {column: public.people.blob,    type: bytea,       key: pii}
  - {column: public.other.email,    type: text,        key: pii, storage: text}
  - {column: public.other.alt,      type: text,        key: pii}
cleared:
  roles: [us_service]
`

// person is one row of people as a client sees it.
type person struct {
	ID      int32
	Email   *string
	SSN     *string
	Born    *time.Time
	Score   *int32
	Balance *string
	Active  *bool
	Seen    *time.Time
	Ident   *string
	Profile *string
	Blob    []byte
	Note    *string
}

func ptr[T any](v T) *T { return &v }

func samplePerson(id int32) person {
	return person{
		ID:      id,
		Email:   ptr(fmt.Sprintf("canary-%d@example.com", id)),
		SSN:     ptr(fmt.Sprintf("SSN-%09d", id)),
		Born:    ptr(time.Date(1980, 2, 29, 0, 0, 0, 0, time.UTC)),
		Score:   ptr(int32(-42 - id)),
		Balance: ptr("12345.6789"),
		Active:  ptr(true),
		Seen:    ptr(time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)),
		Ident:   ptr("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
		Profile: ptr(`{"city": "Zürich", "tags": ["a", "b"]}`),
		Blob:    []byte{0, 1, 2, 255, 'B', 'L', 'O', 'B'},
		Note:    ptr("not protected"),
	}
}

const selectPerson = `select id, email, ssn, born, score, balance, active, seen, ident, profile, blob, note from people where id = $1`

func scanPerson(row pgx.Row) (person, error) {
	var p person
	err := row.Scan(&p.ID, &p.Email, &p.SSN, &p.Born, &p.Score, &p.Balance, &p.Active, &p.Seen, &p.Ident, &p.Profile, &p.Blob, &p.Note)
	return p, err
}

// TestRoundTripEveryMode writes and reads every logical type through the proxy in each pgx
// query mode (binary formats in the extended ones, text in the simple protocol): the cleared
// role reads back what it wrote, the uncleared one reads ciphertext, and nothing is plaintext at
// rest or in the log.
func TestRoundTripEveryMode(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	modes := []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"}
	var canaries []string
	for i, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			id := int32(i + 1)
			want := samplePerson(id)
			canaries = append(canaries, *want.Email, *want.SSN)
			us := f.us("default_query_exec_mode", mode, "timezone", "UTC")
			ctx := ctxT(t)
			_, err := us.Exec(ctx, `insert into people (id, email, ssn, born, score, balance, active, seen, ident, profile, blob, note)
				values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
				want.ID, want.Email, want.SSN, want.Born, want.Score, want.Balance, want.Active, want.Seen, want.Ident, want.Profile, want.Blob, want.Note)
			if err != nil {
				t.Fatalf("insert: %v", err)
			}
			got, err := scanPerson(us.QueryRow(ctx, selectPerson, id))
			if err != nil {
				t.Fatalf("select as cleared role: %v", err)
			}
			if fmt.Sprintf("%+v", deref(got)) != fmt.Sprintf("%+v", deref(want)) {
				t.Fatalf("cleared role read\n got %+v\nwant %+v", deref(got), deref(want))
			}

			sg := f.sg("default_query_exec_mode", mode)
			var email string
			var ssn []byte
			if err := sg.QueryRow(ctx, "select email, ssn from people where id = $1", id).Scan(&email, &ssn); err != nil {
				t.Fatalf("select as uncleared role: %v", err)
			}
			if !strings.HasPrefix(email, "fle1:") || !bytes.HasPrefix(ssn, []byte("FLE\x01")) {
				t.Fatalf("uncleared role did not get ciphertext: %q %x", email, ssn)
			}
			// NULLs stay NULL.
			if _, err := us.Exec(ctx, "insert into people (id, email, score) values ($1, $2, $3)", id+100, nil, nil); err != nil {
				t.Fatal(err)
			}
			var nullEmail *string
			var nullScore *int32
			if err := us.QueryRow(ctx, "select email, score from people where id = $1", id+100).Scan(&nullEmail, &nullScore); err != nil || nullEmail != nil || nullScore != nil {
				t.Fatalf("NULL round trip: %v %v %v", nullEmail, nullScore, err)
			}
		})
	}
	f.assertNoPlaintextAtRest("people", canaries...)
	f.assertNotLogged(canaries...)
}

func deref(p person) string {
	s := func(v *string) string {
		if v == nil {
			return "<nil>"
		}
		return *v
	}
	return fmt.Sprintf("%d %s %s %v %v %s %v %v %s %s %x %s", p.ID, s(p.Email), s(p.SSN), p.Born, *p.Score, s(p.Balance), *p.Active, p.Seen.UTC(), s(p.Ident), s(p.Profile), p.Blob, s(p.Note))
}

// TestWriteShapes covers every supported write shape with literals and parameters.
func TestWriteShapes(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	us := f.us()
	ctx := ctxT(t)
	steps := []struct {
		sql  string
		args []any
	}{
		{`insert into people (id, email, score) values (1, 'lit-one@example.com', 7), (2, 'lit-two@example.com', DEFAULT), (3, NULL, 9)`, nil},
		{`insert into people (id, email) select $1, $2`, []any{4, "param-four@example.com"}},
		{`update people set email = 'updated-one@example.com', score = 70 where id = 1`, nil},
		{`update people set (email, score) = ($1, $2) where id = 2`, []any{"tuple-two@example.com", int32(22)}},
		{`insert into people (id, email) values (3, 'conflict-three@example.com') on conflict (id) do update set email = excluded.email`, nil},
		{`insert into people (id, email) values (5, $1::text)`, []any{"cast-five@example.com"}},
		{`insert into people values (6, 'nolist-six@example.com')`, nil},
	}
	for _, s := range steps {
		if _, err := us.Exec(ctx, s.sql, s.args...); err != nil {
			t.Fatalf("%s: %v", s.sql, err)
		}
	}
	// Several statements in one simple Query.
	if _, err := us.Exec(ctx, "insert into people (id, email) values (7, 'multi-seven@example.com'); update people set email = 'multi-four@example.com' where id = 4", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	// RETURNING shows plaintext to the cleared role.
	var returned string
	if err := us.QueryRow(ctx, "insert into people (id, email) values (8, $1) returning email", "returning-eight@example.com").Scan(&returned); err != nil || returned != "returning-eight@example.com" {
		t.Fatalf("RETURNING: %q %v", returned, err)
	}
	want := map[int32]string{1: "updated-one@example.com", 2: "tuple-two@example.com", 3: "conflict-three@example.com", 4: "multi-four@example.com", 5: "cast-five@example.com", 6: "nolist-six@example.com", 7: "multi-seven@example.com", 8: "returning-eight@example.com"}
	rows, err := us.Query(ctx, "select id, email from people order by id")
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32]string{}
	for rows.Next() {
		var id int32
		var email string
		if err := rows.Scan(&id, &email); err != nil {
			t.Fatal(err)
		}
		got[id] = email
	}
	if rows.Err() != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v (%v)\nwant %v", got, rows.Err(), want)
	}
	var score int32
	if err := us.QueryRow(ctx, "select score from people where id = 2").Scan(&score); err != nil || score != 22 {
		t.Fatalf("score %d %v", score, err)
	}
	var plaintexts []string
	for _, v := range want {
		plaintexts = append(plaintexts, v)
	}
	f.assertNoPlaintextAtRest("people", plaintexts...)
	f.assertNotLogged(plaintexts...)
}

// TestFailClosed sends writes and predicates the proxy cannot map: each is refused with 0A000
// naming the column, nothing reaches the table, and the session stays usable.
func TestFailClosed(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	us := f.us()
	ctx := ctxT(t)
	cases := []struct {
		sql  string
		args []any
	}{
		{"insert into people (id, email) values (1, upper($1))", []any{"x@example.com"}},
		{"insert into people (id, email) values (1, 'a' || $1)", []any{"x@example.com"}},
		{"insert into people (id, email) values (1, lower('X@EXAMPLE.COM'))", nil},
		{"update people set email = note where id = 1", nil},
		{"insert into people (id, email) select id, email from other", nil},
		{"select id from people where email = 'x@example.com'", nil},
		{"select id from people where email = $1", []any{"x@example.com"}},
		{"with w as (insert into people (id, email) values (1, 'cte@example.com') returning id) select * from w", nil},
		{"merge into people p using other o on p.id = o.id when not matched then insert (id, email) values (o.id, 'merge@example.com')", nil},
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		for _, c := range cases {
			_, err := us.Exec(ctx, c.sql, append([]any{mode}, c.args...)...)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "column public.people.") {
				t.Errorf("%s (%v): want 0A000 naming a column of people, got %v", c.sql, mode, err)
			}
		}
	}
	// Inside a transaction the refusal aborts it, as a server error would.
	tx, err := us.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "insert into people (id, email) values (1, upper($1))", "x")
	if err == nil {
		t.Fatal("refused statement succeeded in a transaction")
	}
	if _, err := tx.Exec(ctx, "select 1"); err == nil || !strings.Contains(err.Error(), "25P02") {
		t.Fatalf("transaction not aborted after the refusal: %v", err)
	}
	_ = tx.Rollback(ctx)
	// A refusal in the middle of a pipeline: the rest up to Sync is skipped, then all is normal.
	b := &pgx.Batch{}
	b.Queue("insert into people (id, email) values (10, $1)", "ok@example.com")
	b.Queue("insert into people (id, email) values (11, upper($1))", "no@example.com")
	b.Queue("select 1")
	err = us.SendBatch(ctx, b).Close()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("batch: want 0A000, got %v", err)
	}
	var n int
	if err := us.QueryRow(ctx, "select count(*) from people").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after refusals: %d %v", n, err)
	}
	// Code that runs in the server, and renames, would take protected columns out of sight.
	for _, sql := range []string{
		"create procedure leak(x text) language sql as $$ insert into people (id, email) values (1, x) $$",
		"create function bad() returns void language plpgsql as $$ begin update people set email = 'x'; end $$",
		"alter table people rename to persons",
		"alter table people rename column email to mail",
	} {
		_, err := us.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "people") {
			t.Errorf("%s: want 0A000 naming people, got %v", sql, err)
		}
	}
	// IS NULL on a protected column is allowed.
	if err := us.QueryRow(ctx, "select count(*) from people where email is null").Scan(&n); err != nil {
		t.Fatal(err)
	}
}

// TestCiphertextIsBoundToItsColumn copies a ciphertext to another protected column and alters
// one byte of another: both must fail to decrypt with a clear error, never return garbage.
func TestCiphertextIsBoundToItsColumn(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	us := f.us()
	ctx := ctxT(t)
	if _, err := us.Exec(ctx, "insert into people (id, email, ssn) values (1, $1, $2)", "bound@example.com", "SSN-BOUND"); err != nil {
		t.Fatal(err)
	}
	if _, err := us.Exec(ctx, "insert into other (id) values (1)"); err != nil {
		t.Fatal(err)
	}
	// Direct, as someone with database access: copy people.email's ciphertext into other.email
	// (same storage, same key) and people.ssn's into other.alt.
	if _, err := f.admin.Exec(ctx, "update other set email = (select email from people where id = 1), alt = (select ssn from people where id = 1)"); err != nil {
		t.Fatal(err)
	}
	for _, col := range []string{"email", "alt"} {
		var v string
		err := us.QueryRow(ctx, "select "+col+" from other where id = 1").Scan(&v)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "XX001" || !strings.Contains(pe.Message, "other."+col) {
			t.Fatalf("moved ciphertext in other.%s: want XX001, got %q %v", col, v, err)
		}
	}
	// Tamper with one byte of the stored ssn.
	if _, err := f.admin.Exec(ctx, "update people set ssn = set_byte(ssn, 20, get_byte(ssn, 20) # 1) where id = 1"); err != nil {
		t.Fatal(err)
	}
	var ssn string
	err := us.QueryRow(ctx, "select ssn from people where id = 1").Scan(&ssn)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "XX001" {
		t.Fatalf("tampered ciphertext: want XX001, got %q %v", ssn, err)
	}
	// The session is still usable, and the untouched column still decrypts.
	var email string
	if err := us.QueryRow(ctx, "select email from people where id = 1").Scan(&email); err != nil || email != "bound@example.com" {
		t.Fatalf("after the failure: %q %v", email, err)
	}
}

// TestParameterDescriptionShowsLogicalType prepares a write and checks the parameter types the
// client is told: the logical types, not bytea.
func TestParameterDescriptionShowsLogicalType(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	us := f.us()
	sd, err := us.Prepare(ctxT(t), "ins", "insert into people (id, score, born, email) values ($1, $2, $3, $4)")
	if err != nil {
		t.Fatal(err)
	}
	want := []uint32{pgtype.Int4OID, pgtype.Int4OID, pgtype.DateOID, pgtype.TextOID}
	if fmt.Sprint(sd.ParamOIDs) != fmt.Sprint(want) {
		t.Fatalf("ParamOIDs %v, want %v", sd.ParamOIDs, want)
	}
	sd, err = us.Prepare(ctxT(t), "sel", "select score, born from people")
	if err != nil {
		t.Fatal(err)
	}
	if sd.Fields[0].DataTypeOID != pgtype.Int4OID || sd.Fields[1].DataTypeOID != pgtype.DateOID {
		t.Fatalf("cleared role's RowDescription types: %v", sd.Fields)
	}
	sd, err = f.sg().Prepare(ctxT(t), "sel", "select score from people")
	if err != nil {
		t.Fatal(err)
	}
	if sd.Fields[0].DataTypeOID != pgtype.ByteaOID {
		t.Fatalf("uncleared role's RowDescription type: %d", sd.Fields[0].DataTypeOID)
	}
}

// TestLoopholes closes paths around the analyzer: SQL EXECUTE of a protocol-prepared statement
// whose parameters are protected, and string constants read with standard_conforming_strings off.
func TestLoopholes(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	us := f.us()
	ctx := ctxT(t)
	if _, err := us.Prepare(ctx, "ins", "insert into people (id, email) values ($1, $2)"); err != nil {
		t.Fatal(err)
	}
	_, err := us.Exec(ctx, "execute ins(1, 'execute-plaintext@example.com')", pgx.QueryExecModeSimpleProtocol)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("EXECUTE of a protected statement: want 0A000, got %v", err)
	}
	if _, err := us.Exec(ctx, "set standard_conforming_strings = off", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	_, err = us.Exec(ctx, `insert into people (id, email) values (2, 'a\', ''scs-plaintext@example.com'')')`, pgx.QueryExecModeSimpleProtocol)
	if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "standard_conforming_strings") {
		t.Fatalf("with standard_conforming_strings off: want 0A000, got %v", err)
	}
	// A query string that starts with SET does not get the rest through.
	_, err = us.Exec(ctx, `set application_name = 'a'; insert into people (id, note, email) values (4, '\', DEFAULT) -- ', 'scs-plaintext@example.com')`, pgx.QueryExecModeSimpleProtocol)
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("multi-statement string starting with SET: want 0A000, got %v", err)
	}
	if _, err := us.Exec(ctx, "set standard_conforming_strings = on", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	// Turned off inside a pipeline, before the server's report of it comes back.
	batch := &pgconn.Batch{}
	batch.ExecParams("set standard_conforming_strings = off", nil, nil, nil, nil)
	batch.ExecParams(`insert into people (id, note, email) values (5, '\', DEFAULT) -- ', 'pipeline-plaintext@example.com')`, nil, nil, nil, nil)
	_, err = us.PgConn().ExecBatch(ctx, batch).ReadAll()
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("standard_conforming_strings turned off in a pipeline: want 0A000, got %v", err)
	}
	if _, err := us.Exec(ctx, "set standard_conforming_strings = on", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	// EXPLAIN ANALYZE EXECUTE runs the statement like EXECUTE.
	_, err = us.Exec(ctx, "explain analyze execute ins(6, 'explain-plaintext@example.com')", pgx.QueryExecModeSimpleProtocol)
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("EXPLAIN ANALYZE EXECUTE: want 0A000, got %v", err)
	}
	// COPY with an ENCODING option under any of its names.
	for _, enc := range []string{"win932", "Shift_JIS", "big-5", "LATIN1"} {
		_, err := us.PgConn().CopyFrom(ctx, strings.NewReader("7|copy-plaintext@example.com\n"), "copy people (id, email) from stdin with (delimiter '|', encoding '"+enc+"')")
		if err == nil || !strings.Contains(err.Error(), "ENCODING") {
			t.Fatalf("COPY with encoding %s: %v", enc, err)
		}
	}
	if _, err := us.Exec(ctx, "insert into people (id, email) values (3, 'back-on@example.com')"); err != nil {
		t.Fatal(err)
	}
	f.assertNoPlaintextAtRest("people", "execute-plaintext@example.com", "scs-plaintext@example.com", "back-on@example.com", "pipeline-plaintext@example.com", "explain-plaintext@example.com", "copy-plaintext@example.com")
}

// TestIdentityIsTheAuthenticatedRole checks that what a client can claim does not clear it: an
// uncleared role that SETs ROLE to the cleared one, or names itself in application_name, still
// reads ciphertext.
func TestIdentityIsTheAuthenticatedRole(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	ctx := ctxT(t)
	if _, err := f.us().Exec(ctx, "insert into people (id, email) values (1, 'claimed-identity@example.com')"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.Exec(ctx, "grant us_service to sg_operator"); err != nil {
		t.Fatal(err)
	}
	defer f.admin.Exec(ctx, "revoke us_service from sg_operator")
	sg := f.sg("application_name", usRole)
	for _, stmt := range []string{"set role us_service", "set session authorization default"} {
		if _, err := sg.Exec(ctx, stmt); err != nil && stmt == "set role us_service" {
			t.Fatal(err)
		}
		var who, email string
		if err := sg.QueryRow(ctx, "select current_user, email from people where id = 1").Scan(&who, &email); err != nil {
			t.Fatal(err)
		}
		if email == "claimed-identity@example.com" || !strings.HasPrefix(email, "fle1:") {
			t.Fatalf("after %q (current_user %s) the uncleared session read %q", stmt, who, email)
		}
	}
}
