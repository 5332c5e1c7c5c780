package analyze

import (
	"errors"
	"strings"
	"testing"
)

func TestStatements(t *testing.T) {
	sql := "BEGIN; INSERT INTO customer (email) VALUES ('a@x'); ALTER TABLE customer ADD COLUMN x int; " +
		"EXECUTE ins('b@x'); CREATE INDEX ON orders (note); SELECT note FROM orders; COMMIT"
	p, err := Analyze(sql, fixture)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		kind    string
		touches bool
		ddl     bool
		execute string
		text    string
	}
	wants := []want{
		{"TransactionStmt", false, false, "", "BEGIN"},
		{"InsertStmt", true, false, "", "INSERT INTO customer (email) VALUES ('a@x')"},
		{"AlterTableStmt", true, true, "", "ALTER TABLE customer ADD COLUMN x int"},
		{"ExecuteStmt", false, false, "ins", "EXECUTE ins('b@x')"},
		{"IndexStmt", false, true, "", "CREATE INDEX ON orders (note)"},
		{"SelectStmt", false, false, "", "SELECT note FROM orders"},
		{"TransactionStmt", false, false, "", "COMMIT"},
	}
	if len(p.Statements) != len(wants) {
		t.Fatalf("%d statements", len(p.Statements))
	}
	for i, w := range wants {
		st := p.Statements[i]
		text := strings.TrimSpace(sql[st.Location : st.Location+st.Length])
		if st.Kind != w.kind || st.Touches != w.touches || st.DDL != w.ddl || st.Execute != w.execute || text != w.text {
			t.Errorf("statement %d = {%s %v %v %q %q}, want %+v", i, st.Kind, st.Touches, st.DDL, st.Execute, text, w)
		}
	}
	if l := p.Statements[1].Literals[0]; !strings.HasPrefix(sql[l.Location:], "'a@x'") {
		t.Errorf("literal location %d points at %q", l.Location, sql[l.Location:])
	}
	if !p.Touches() || !p.NeedsRewrite() {
		t.Errorf("Touches %v NeedsRewrite %v", p.Touches(), p.NeedsRewrite())
	}
}

func TestDDLKinds(t *testing.T) {
	for sql, ddl := range map[string]bool{
		"CREATE TABLE t (a int)":                      true,
		"DROP TABLE customer":                         true,
		"ALTER TABLE orders RENAME TO purchases":      true,
		"ALTER TABLE customer RENAME name TO n":       true,
		"SELECT * INTO t2 FROM orders":                true,
		"CREATE VIEW v AS SELECT email FROM customer": true,
		"COMMENT ON TABLE customer IS 'x'":            true,
		"TRUNCATE customer":                           false,
		"SET search_path = app":                       false,
		"VACUUM customer":                             false,
	} {
		p, err := Analyze(sql, fixture)
		if err != nil {
			t.Fatalf("%q: %v", sql, err)
		}
		if p.Statements[0].DDL != ddl {
			t.Errorf("%q: DDL = %v, want %v", sql, p.Statements[0].DDL, ddl)
		}
	}
}

func TestParseError(t *testing.T) {
	_, err := Analyze("INSERT INTO customer (email) VALUES ('secret@x'", fixture)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T)", err, err)
	}
	if pe.SQLState() != SQLStateSyntaxError || pe.Position == 0 || pe.Detail == "" {
		t.Errorf("ParseError %+v", pe)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("Error() quotes the input: %v", err)
	}
}

func TestRejectPosition(t *testing.T) {
	sql := "SELECT 'é', 1 FROM customer WHERE email = $1"
	_, err := Analyze(sql, fixture)
	var re *RejectError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v", err)
	}
	// 1-based character position of "email" in the WHERE clause.
	if want := strings.Index(sql, "email = ") - 1 + 1; re.Position != want {
		t.Errorf("Position = %d, want %d", re.Position, want)
	}
}

func TestEmpty(t *testing.T) {
	p, err := Analyze("", fixture)
	if err != nil || len(p.Statements) != 0 {
		t.Errorf("Analyze(\"\") = %+v, %v", p, err)
	}
	p, err = Analyze(" ; ", fixture)
	if err != nil || len(p.Statements) != 0 {
		t.Errorf("Analyze(\" ; \") = %+v, %v", p, err)
	}
}
