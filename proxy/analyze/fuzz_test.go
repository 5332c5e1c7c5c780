package analyze

import (
	"errors"
	"testing"
)

// FuzzAnalyze checks that Analyze never panics on any input and returns only
// typed errors; that Rewrite, MayTouch and Normalize do not panic either; that
// the pre-check never misses a statement the analyzer finds touching (or
// rejects for touching) a protected table; and that rewritten text parses
// again.
func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{
		"INSERT INTO customer (store_id, first_name, email) VALUES ($1, $2, $3)",
		"INSERT INTO customer VALUES (1, 1, 'Ann', 'Lee', 'ann@x', 5, true)",
		"INSERT INTO address (address, postal_code, phone) VALUES ($1::text, '12345'::varchar(10), CAST($2 AS text))",
		"INSERT INTO customer (email) SELECT 'a@x' UNION ALL SELECT $1::text",
		"UPDATE address SET (address, district, phone) = ($1::text, $2, '555') WHERE address_id = $3",
		"INSERT INTO customer (customer_id, email) VALUES ($1, $2) ON CONFLICT (customer_id) DO UPDATE SET email = EXCLUDED.email",
		"WITH c AS (SELECT email FROM customer) SELECT * FROM c WHERE c.email = $1",
		"SELECT * FROM (SELECT email AS e FROM customer) s ORDER BY 1",
		"COPY customer (email, first_name) FROM STDIN WITH CSV HEADER",
		"COPY customer FROM STDIN (FORMAT csv, FORCE_NOT_NULL *, DEFAULT 'd')",
		`INSERT INTO "People" ("SSN") VALUES (E'1\'2')`,
		"SELECT 1; INSERT INTO customer (email) VALUES (DATE '2020-01-01'); SELECT 2",
		"MERGE INTO orders o USING customer c ON c.customer_id = o.customer_id WHEN MATCHED THEN DELETE",
		"CREATE RULE r AS ON INSERT TO orders DO ALSO INSERT INTO customer (email) VALUES ('x@y')",
		"DO $$ BEGIN END $$",
		"EXPLAIN ANALYZE INSERT INTO customer (email) VALUES ('p@x')",
		"SELECT count(email) FROM customer c NATURAL JOIN orders GROUP BY ROLLUP (c.store_id)",
		"WITH RECURSIVE r(e) AS (SELECT email FROM customer UNION ALL SELECT e FROM r) SELECT * FROM r",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		_ = Normalize(sql)
		p, err := Analyze(sql, fixture)
		if err != nil {
			var re *RejectError
			var pe *ParseError
			if !errors.As(err, &re) && !errors.As(err, &pe) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if re != nil && !MayTouch(sql, fixtureNames) {
				t.Fatalf("MayTouch false negative for rejected %q", sql)
			}
			return
		}
		if p.Touches() && !MayTouch(sql, fixtureNames) {
			t.Fatalf("MayTouch false negative for %q", sql)
		}
		out, err := p.Rewrite(testEncrypt)
		if err != nil {
			return // deparse failures are refused, not forwarded
		}
		if _, err := Analyze(out, fixture); err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				t.Fatalf("rewritten text does not parse: %q -> %q: %v", sql, out, pe.Detail)
			}
		}
	})
}
