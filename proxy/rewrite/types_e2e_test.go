package rewrite_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// logicalTypes are sample values (in PostgreSQL's text input syntax) of every logical type.
var logicalTypes = []struct {
	typ    string
	values []string
}{
	{"text", []string{"", "plain ✓ text"}},
	{"varchar", []string{"varchar value"}},
	{"bpchar", []string{"c"}},
	{"int2", []string{"-32768", "7"}},
	{"int4", []string{"2147483647", "-1"}},
	{"int8", []string{"-9223372036854775808", "42"}},
	{"numeric", []string{"0", "-12345678901234567890.000123", "NaN"}},
	{"float4", []string{"1.5", "-Infinity"}},
	{"float8", []string{"3.141592653589793", "1e-300"}},
	{"bool", []string{"true", "f"}},
	{"date", []string{"2024-02-29", "infinity"}},
	{"timestamp", []string{"2024-02-29 12:34:56.789012", "1999-12-31 23:59:59"}},
	{"timestamptz", []string{"2024-02-29 12:34:56.789+02", "2000-01-01 00:00:00+00"}},
	{"uuid", []string{"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}},
	{"jsonb", []string{`{"b": [1, 2.50, "x"], "a": null}`}},
	{"json", []string{`{"keep":  "its   spacing"}`}},
	{"bytea", []string{`\x00ff10`, ""}},
}

// TestEveryLogicalType writes each logical type's sample values through the proxy as literals
// (simple protocol) and as text parameters, and reads them back in text and binary formats: the
// bytes must equal what PostgreSQL itself returns for the same value cast to the type.
func TestEveryLogicalType(t *testing.T) {
	var schema, pol strings.Builder
	pol.WriteString("version: 1\ncolumns:\n")
	for _, lt := range logicalTypes {
		fmt.Fprintf(&schema, "create table t_%s (id int primary key, v bytea);\n", lt.typ)
		fmt.Fprintf(&pol, "  - {column: public.t_%s.v, type: %s, key: pii}\n", lt.typ, lt.typ)
	}
	pol.WriteString("cleared:\n  roles: [us_service]\n")
	f := newFixture(t, schema.String(), pol.String())
	us := f.us("timezone", "America/New_York")
	ctx := ctxT(t)
	if _, err := f.admin.Exec(ctx, "set timezone = 'America/New_York'"); err != nil {
		t.Fatal(err)
	}
	for _, lt := range logicalTypes {
		t.Run(lt.typ, func(t *testing.T) {
			for i, v := range lt.values {
				lit := "'" + strings.ReplaceAll(v, "'", "''") + "'"
				if _, err := us.Exec(ctx, fmt.Sprintf("insert into t_%s values (%d, %s)", lt.typ, 2*i, lit), pgx.QueryExecModeSimpleProtocol); err != nil {
					t.Fatalf("literal %s: %v", v, err)
				}
				// A text-format parameter (pgx sends a string as text when told the type is unknown).
				if _, err := us.Exec(ctx, fmt.Sprintf("insert into t_%s values ($1, $2)", lt.typ), pgx.QueryExecModeExec, 2*i+1, v); err != nil {
					t.Fatalf("parameter %s: %v", v, err)
				}
				for _, format := range []int16{0, 1} {
					direct := f.admin.PgConn().ExecParams(ctx, fmt.Sprintf("select %s::%s", lit, lt.typ), nil, nil, nil, []int16{format}).Read()
					if direct.Err != nil || len(direct.Rows) != 1 {
						t.Fatal(direct.Err)
					}
					want := direct.Rows
					for _, id := range []int{2 * i, 2*i + 1} {
						res := us.PgConn().ExecParams(ctx, fmt.Sprintf("select v from t_%s where id = %d", lt.typ, id), nil, nil, nil, []int16{format}).Read()
						if res.Err != nil || len(res.Rows) != 1 {
							t.Fatalf("read id %d format %d: %v", id, format, res.Err)
						}
						if !bytes.Equal(res.Rows[0][0], want[0][0]) {
							t.Fatalf("%s %q (id %d, format %d): proxy returned %q, PostgreSQL %q", lt.typ, v, id, format, res.Rows[0][0], want[0][0])
						}
					}
				}
			}
		})
	}
}
