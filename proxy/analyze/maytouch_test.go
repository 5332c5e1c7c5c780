package analyze

import (
	"strings"
	"testing"
)

func TestMayTouch(t *testing.T) {
	long := strings.Repeat("t", 63) // a protected name at the identifier length limit
	names := func(n string) bool {
		switch n {
		case "customer", "people", "my table", `we"ird`, "café", long:
			return true
		}
		return false
	}
	tests := []struct {
		sql  string
		want bool
	}{
		{"SELECT 1", false},
		{"SELECT * FROM orders WHERE note = 'x'", false},
		{"SELECT * FROM customers", false},
		{"SELECT * FROM customer", true},
		{"select*from CUSTOMER", true},
		{`SELECT * FROM "Customer"`, true},
		{`SELECT * FROM public."People"`, true},
		{`SELECT * FROM "my table"`, true},
		{`SELECT * FROM "we""ird"`, true},
		{`SELECT 'a"b' FROM "my table"`, true}, // a quote inside a string does not hide the identifier
		{`INSERT INTO CAFÉ VALUES (1)`, true},
		{"INSERT INTO x.customer(email) VALUES ($1)", true},
		{"DO $$BEGIN INSERT INTO customer VALUES (1); END$$", true},
		{"DO $x$INSERT INTO customer$x$", true},
		{"SELECT 1 -- customer", true},
		{"SELECT 1customer", true},
		{"SELECT * FROM " + long + "xyz", true}, // truncated to the protected name
		{"SELECT * FROM \"" + long + "xyz\"", true},
		{`SELECT * FROM U&"\0063ustomer"`, true},
		{"EXECUTE p('x')", true},
		{"execute p", true},
		{"SELECT executed FROM t", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := MayTouch(tc.sql, names); got != tc.want {
			t.Errorf("MayTouch(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

func TestMayTouchAgreesWithAnalyze(t *testing.T) {
	// Every statement in the analyzer tests that touches a protected table
	// must pass the pre-check (checked there too); this covers identifier
	// spellings.
	for _, sql := range []string{
		`insert into "customer" ("email") values ($1)`,
		`UPDATE Public.Customer SET Email = $1`,
		`COPY "People" ("SSN") FROM STDIN`,
	} {
		p, err := Analyze(sql, fixture)
		if err != nil {
			t.Fatalf("%q: %v", sql, err)
		}
		if !p.Touches() {
			t.Errorf("%q: not Touches", sql)
		}
		if !MayTouch(sql, fixtureNames) {
			t.Errorf("%q: MayTouch false negative", sql)
		}
	}
}

func BenchmarkMayTouch(b *testing.B) {
	sql := "SELECT abalance FROM pgbench_accounts WHERE aid = $1 AND bid IN (SELECT bid FROM pgbench_branches)"
	names := func(n string) bool { return n == "customer" }
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if MayTouch(sql, names) {
			b.Fatal("hit")
		}
	}
}
