package rewrite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPartitionsAndDDL protects a column of a partitioned table: rows written through the parent
// land encrypted in the partitions and decrypt when read through either. DDL through the proxy
// that moves the column's attribute number is followed by a catalog refresh.
func TestPartitionsAndDDL(t *testing.T) {
	f := newFixture(t, `
create table events (id int, region text, secret bytea) partition by list (region);
create table events_us partition of events for values in ('us') partition by range (id);
create table events_us_low partition of events_us for values from (0) to (100);
create table events_sg partition of events for values in ('sg');
`, `
version: 1
columns:
  - {column: public.events.secret, type: text, key: pii}
cleared:
  roles: [us_service]
`)
	us := f.us()
	ctx := ctxT(t)
	for i, region := range []string{"us", "sg"} {
		if _, err := us.Exec(ctx, "insert into events values ($1, $2, $3)", i, region, "partition-secret-"+region); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"events", "events_us", "events_us_low", "events_sg"} {
		rows, err := us.Query(ctx, "select secret from "+table+" order by id")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			if !strings.HasPrefix(s, "partition-secret-") {
				t.Fatalf("%s: read %q", table, s)
			}
		}
	}
	// Writing into a partition directly is protected too.
	if _, err := us.Exec(ctx, "insert into events_sg values (5, 'sg', 'direct-partition-secret')"); err != nil {
		t.Fatal(err)
	}
	f.assertNoPlaintextAtRest("events", "partition-secret-us", "partition-secret-sg", "direct-partition-secret")

	// A new column before the protected one shifts nothing in PostgreSQL, but dropping and
	// re-adding it does: the proxy must notice after the DDL.
	owner := f.owner()
	if _, err := owner.Exec(ctx, "alter table events drop column secret"); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, "alter table events add column note text, add column secret bytea"); err != nil {
		t.Fatal(err)
	}
	if _, err := us.Exec(ctx, "insert into events (id, region, note, secret) values (7, 'sg', 'n', 'after-ddl-secret')"); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := us.QueryRow(ctx, "select secret from events where id = 7").Scan(&s); err != nil || s != "after-ddl-secret" {
		t.Fatalf("after DDL: %q %v", s, err)
	}
	f.assertNoPlaintextAtRest("events", "after-ddl-secret")
}

// TestEdgeValues round-trips empty strings, large values and unicode.
func TestEdgeValues(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	us := f.us()
	ctx := ctxT(t)
	large := strings.Repeat("large-value-ä-", 100_000) // 1.5 MB
	values := []string{"", " ", "ünïcödé ✓ 𝄞", large, "quote ' and backslash \\ and NUL-free"}
	for i, v := range values {
		for _, col := range []string{"email", "ssn"} {
			id := i*10 + len(col)
			if _, err := us.Exec(ctx, fmt.Sprintf("insert into people (id, %s) values ($1, $2)", col), id, v); err != nil {
				t.Fatalf("insert %s: %v", col, err)
			}
			var got string
			if err := us.QueryRow(ctx, fmt.Sprintf("select %s from people where id = $1", col), id).Scan(&got); err != nil || got != v {
				t.Fatalf("%s round trip of a %d-byte value: %v (got %d bytes)", col, len(v), err, len(got))
			}
		}
	}
	// The same values as literals in the simple protocol.
	if _, err := us.Exec(ctx, "insert into people (id, email) values (1000, ''), (1001, 'ünïcödé literal ✓'), (1002, 'it''s')"); err != nil {
		t.Fatal(err)
	}
	// A protected column inside a sub-select is attributed to no table by PostgreSQL, so it would
	// stay ciphertext; read each value on its own.
	var a, b, c string
	for id, dst := range map[int]*string{1000: &a, 1001: &b, 1002: &c} {
		if err := us.QueryRow(ctx, "select email from people where id = $1", id).Scan(dst); err != nil {
			t.Fatal(err)
		}
	}
	if a != "" || b != "ünïcödé literal ✓" || c != "it's" {
		t.Fatalf("literals: %q %q %q", a, b, c)
	}
	f.assertNoPlaintextAtRest("people", "large-value", "ünïcödé", "it's")
}

// TestPortalRowLimits executes a portal a few rows at a time (Execute with a row limit, then
// PortalSuspended), as JDBC's fetch size does, without describing the portal.
func TestPortalRowLimits(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	us := f.us()
	ctx := ctxT(t)
	for i := range 5 {
		if _, err := us.Exec(ctx, "insert into people (id, email) values ($1, $2)", i, fmt.Sprintf("portal-%d@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	us.Close(ctx)
	conn := f.us()
	pc := conn.PgConn()
	if _, err := pc.Exec(ctx, "begin").ReadAll(); err != nil {
		t.Fatal(err)
	}
	hj, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	fe := hj.Frontend
	fe.Send(&pgproto3.Parse{Query: "select email from people order by id"})
	fe.Send(&pgproto3.Bind{ResultFormatCodes: []int16{0}})
	for range 3 {
		fe.Send(&pgproto3.Execute{MaxRows: 2})
	}
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	suspended := 0
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			got = append(got, string(m.Values[0]))
		case *pgproto3.PortalSuspended:
			suspended++
		case *pgproto3.ErrorResponse:
			t.Fatalf("error: %s", m.Message)
		case *pgproto3.RowDescription:
			t.Fatal("the proxy's own Describe leaked to the client")
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	_ = hj.Conn.Close()
	if suspended != 2 || strings.Join(got, ",") != "portal-0@example.com,portal-1@example.com,portal-2@example.com,portal-3@example.com,portal-4@example.com" {
		t.Fatalf("suspended %d times, rows %v", suspended, got)
	}
	_ = context.Background
}
