package analyze

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// testEncrypt stands in for the proxy's encryption: the "ciphertext" is the
// hex of column name and plaintext, so tests can check the binding.
func testEncrypt(col Column, v *string) (string, error) {
	return `'\x` + hex.EncodeToString([]byte("ct:"+col.String()+":"+*v)) + `'::bytea`, nil
}

func decodeTestCiphertext(t *testing.T, s string) string {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(s, `\x`))
	if err != nil || !strings.HasPrefix(s, `\x`) {
		t.Fatalf("literal %q is not test ciphertext", s)
	}
	return string(b)
}

// constants returns every string constant in the parse tree of sql.
func constants(t *testing.T, sql string) []string {
	t.Helper()
	tree, err := pg.Parse(sql)
	if err != nil {
		t.Fatalf("rewritten text does not parse: %v\n%s", err, sql)
	}
	var out []string
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if c, ok := m.Interface().(*pg.A_Const); ok && !c.Isnull {
			out = append(out, constText(c))
		}
		eachChild(m, func(c protoreflect.Message) bool { walk(c); return true })
	}
	walk(tree.ProtoReflect())
	return out
}

func TestRewrite(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want string // exact output, "" to skip
	}{
		{name: "values with literal, cast param and cast NULL",
			sql:  "INSERT INTO customer (email, first_name) VALUES ('a@x', 'Ann'), ($1::text, 'B'), (NULL::text, 'c')",
			want: `INSERT INTO customer (email, first_name) VALUES (E'\\x63743a7075626c69632e637573746f6d65722e656d61696c3a614078'::bytea, 'Ann'), ($1, 'B'), (NULL, 'c')`},
		{name: "ORM cast only",
			sql:  "UPDATE customer SET email = $1::varchar WHERE customer_id = $2::int",
			want: "UPDATE customer SET email = $1 WHERE customer_id = $2::int"},
		{name: "multi-assign",
			sql: "UPDATE address SET (address, district, phone) = ($1::text, $2, '555-1234') WHERE address_id = $3"},
		{name: "typed literal",
			sql: "INSERT INTO customer (email) VALUES (DATE '2020-01-01'), (CAST('x@y' AS character varying(30)))"},
		{name: "insert select union all",
			sql: "INSERT INTO customer (email) SELECT 'a@x' UNION ALL SELECT $1::text"},
		{name: "on conflict",
			sql: "INSERT INTO customer (customer_id, email) VALUES (1, 'secret@x') ON CONFLICT (customer_id) DO UPDATE SET email = 'other@x'"},
		{name: "escape strings",
			sql: `INSERT INTO address (address, phone) VALUES (E'O\'Brien\\Street', $q$it's$q$)`},
		{name: "several statements, only one rewritten",
			sql: "SELECT 1;  INSERT INTO customer (email) VALUES ('p@x') ; SELECT 'keep me'"},
		{name: "explain analyze",
			sql: "EXPLAIN ANALYZE INSERT INTO customer (email) VALUES ('p@x')"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Analyze(tc.sql, fixture)
			if err != nil {
				t.Fatal(err)
			}
			out, err := p.Rewrite(testEncrypt)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && out != tc.want {
				t.Errorf("Rewrite =\n%s\nwant\n%s", out, tc.want)
			}
			// No plaintext literal survives.
			consts := constants(t, out)
			for _, st := range p.Statements {
				for _, l := range st.Literals {
					for _, c := range consts {
						if c == l.Value {
							t.Errorf("plaintext %q still in %s", l.Value, out)
						}
					}
				}
			}
			// Re-analysing the output: the same params, no casts left around
			// them, and every protected literal is ciphertext bound to its column.
			p2, err := Analyze(out, fixture)
			if err != nil {
				t.Fatalf("rewritten text rejected: %v\n%s", err, out)
			}
			if len(p2.Statements) != len(p.Statements) {
				t.Fatalf("statement count %d, want %d", len(p2.Statements), len(p.Statements))
			}
			for i, st := range p2.Statements {
				old := p.Statements[i]
				if len(st.Params) != len(old.Params) {
					t.Errorf("params %v, want %v", st.Params, old.Params)
				}
				for _, s := range st.sites {
					if s.kind == siteParamCast || s.kind == siteNullCast {
						t.Errorf("cast around protected value left in %s", out)
					}
				}
				if len(st.Literals) != len(old.Literals) {
					t.Fatalf("literals %v, want %d", st.Literals, len(old.Literals))
				}
				for j, l := range st.Literals {
					want := "ct:" + old.Literals[j].Column.String() + ":" + old.Literals[j].Value
					if got := decodeTestCiphertext(t, l.Value); got != want || l.Column != old.Literals[j].Column {
						t.Errorf("literal %d = %q in %v, want %q", j, got, l.Column, want)
					}
				}
			}
			if strings.Contains(tc.sql, "keep me") && !strings.HasPrefix(out, "SELECT 1;") || strings.Contains(tc.sql, "keep me") && !strings.HasSuffix(out, " SELECT 'keep me'") {
				t.Errorf("untouched statements changed: %s", out)
			}
		})
	}
}

func TestRewriteUnchanged(t *testing.T) {
	for _, sql := range []string{
		"SELECT email FROM customer WHERE customer_id = $1 -- comment kept",
		"INSERT INTO customer (email) VALUES ($1)",
		"SELECT 1",
	} {
		p, err := Analyze(sql, fixture)
		if err != nil {
			t.Fatal(err)
		}
		if p.NeedsRewrite() {
			t.Errorf("%q: NeedsRewrite", sql)
		}
		out, err := p.Rewrite(func(Column, *string) (string, error) {
			t.Fatal("encrypt called")
			return "", nil
		})
		if err != nil || out != sql {
			t.Errorf("Rewrite(%q) = %q, %v", sql, out, err)
		}
	}
}

func TestRewriteErrors(t *testing.T) {
	p, err := Analyze("INSERT INTO customer (email) VALUES ('x@y')", fixture)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("vault down")
	_, err = p.Rewrite(func(Column, *string) (string, error) { return "", boom })
	var re *RewriteError
	if !errors.As(err, &re) || !errors.Is(err, boom) || re.Column != email {
		t.Errorf("encrypt failure: %v", err)
	}
	for _, bad := range []string{"'a' || 'b'", "'a'; DROP TABLE customer", "NULL", "1 FROM pg_class", "(SELECT 'a')", "'a' AS b", ""} {
		_, err = p.Rewrite(func(Column, *string) (string, error) { return bad, nil })
		if !errors.As(err, &re) {
			t.Errorf("encrypt returning %q: err = %v", bad, err)
		}
	}
}

func TestRewriteConcurrent(t *testing.T) {
	p, err := Analyze("INSERT INTO customer (email) VALUES ('x@y'), ($1::text)", fixture)
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.Rewrite(testEncrypt)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	for i := 0; i < 8; i++ {
		go func() {
			out, _ := p.Rewrite(testEncrypt)
			done <- out
		}()
	}
	for i := 0; i < 8; i++ {
		if out := <-done; out != want {
			t.Errorf("concurrent Rewrite = %q, want %q", out, want)
		}
	}
}
