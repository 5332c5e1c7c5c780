package analyze

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

type lit struct {
	col   Column
	value string
}

func literalsOf(st Statement) []lit {
	var out []lit
	for _, l := range st.Literals {
		out = append(out, lit{l.Column, l.Value})
	}
	return out
}

func TestAnalyzeAccepted(t *testing.T) {
	tests := []struct {
		name    string
		sql     string
		params  map[int]Column
		lits    []lit
		touches bool
	}{
		{name: "insert params with column list",
			sql:     "INSERT INTO customer (store_id, first_name, email) VALUES ($1, $2, $3)",
			params:  map[int]Column{3: email},
			touches: true},
		{name: "insert literal",
			sql:     "INSERT INTO customer (email, first_name) VALUES ('a@example.com', 'Ann')",
			lits:    []lit{{email, "a@example.com"}},
			touches: true},
		{name: "multi-row with DEFAULT and NULL",
			sql:     "INSERT INTO customer (first_name, email) VALUES ('A', 'a@x'), ('B', DEFAULT), ('C', NULL), ('D', $1)",
			params:  map[int]Column{1: email},
			lits:    []lit{{email, "a@x"}},
			touches: true},
		{name: "insert without column list uses column order",
			sql:     "INSERT INTO customer VALUES (1, 1, 'Ann', 'Lee', 'ann@x', 5, true)",
			lits:    []lit{{email, "ann@x"}},
			touches: true},
		{name: "insert without column list, short row",
			sql:     "INSERT INTO customer VALUES (1, 1, 'Ann', 'Lee')",
			touches: true},
		{name: "casts around params and literals",
			sql:     "INSERT INTO address (address, postal_code, phone, district) VALUES ($1::text, '12345'::varchar(10), CAST($2 AS text), $3::text)",
			params:  map[int]Column{1: addr, 2: phone},
			lits:    []lit{{postal, "12345"}},
			touches: true},
		{name: "typed literal, negative number, float, boolean, escape string, dollar quote",
			sql:     "INSERT INTO address (address, postal_code, phone, address2) VALUES (DATE '2020-01-01', -5, 1.50, E'a\\'b'), (true, $$x'y$$, 12345678901, 'z')",
			lits:    []lit{{addr, "2020-01-01"}, {postal, "-5"}, {phone, "1.50"}, {addr, "true"}, {postal, "x'y"}, {phone, "12345678901"}},
			touches: true},
		{name: "NULL with cast",
			sql:     "INSERT INTO customer (email) VALUES (NULL::text)",
			touches: true},
		{name: "insert select of params",
			sql:     "INSERT INTO customer (email, first_name) SELECT $1, $2",
			params:  map[int]Column{1: email},
			touches: true},
		{name: "insert select of literals with union all",
			sql:     "INSERT INTO customer (email) SELECT 'a@x' UNION ALL SELECT $1::text",
			params:  map[int]Column{1: email},
			lits:    []lit{{email, "a@x"}},
			touches: true},
		{name: "insert select literal with from clause on other table",
			sql:     "INSERT INTO customer (email, store_id) SELECT 'x@y', s.id FROM store s WHERE s.id = $1",
			lits:    []lit{{email, "x@y"}},
			touches: true},
		{name: "returning",
			sql:     "INSERT INTO customer (email) VALUES ($1) RETURNING customer_id, email",
			params:  map[int]Column{1: email},
			touches: true},
		{name: "returning star",
			sql:     "INSERT INTO customer (email) VALUES ($1) RETURNING *",
			params:  map[int]Column{1: email},
			touches: true},
		{name: "update set",
			sql:     "UPDATE customer SET email = $1, first_name = $2 WHERE customer_id = $3",
			params:  map[int]Column{1: email},
			touches: true},
		{name: "update set literal and default",
			sql:     "UPDATE address SET address = 'Main St 1', phone = DEFAULT, postal_code = NULL WHERE address_id = 7",
			lits:    []lit{{addr, "Main St 1"}},
			touches: true},
		{name: "update multi-assign",
			sql:     "UPDATE address SET (address, district, phone) = ($1::text, $2, '555') WHERE address_id = $3",
			params:  map[int]Column{1: addr},
			lits:    []lit{{phone, "555"}},
			touches: true},
		{name: "update multi-assign with ROW",
			sql:     "UPDATE address SET (phone, postal_code) = ROW($1, $2)",
			params:  map[int]Column{1: phone, 2: postal},
			touches: true},
		{name: "update where IS NULL on protected column",
			sql:     "UPDATE customer SET email = $1 WHERE email IS NULL AND customer_id = $2",
			params:  map[int]Column{1: email},
			touches: true},
		{name: "update with alias and from",
			sql:     "UPDATE customer c SET email = $1 FROM store s WHERE c.store_id = s.id AND s.name = $2",
			params:  map[int]Column{1: email},
			touches: true},
		{name: "on conflict do update with excluded",
			sql:     "INSERT INTO customer (customer_id, email) VALUES ($1, $2) ON CONFLICT (customer_id) DO UPDATE SET email = EXCLUDED.email, first_name = 'x'",
			params:  map[int]Column{2: email},
			touches: true},
		{name: "on conflict do update with param",
			sql:     "INSERT INTO customer (customer_id, email) VALUES ($1, $2) ON CONFLICT (customer_id) DO UPDATE SET email = $2",
			params:  map[int]Column{2: email},
			touches: true},
		{name: "on conflict on protected column (unique index inference)",
			sql:     "INSERT INTO customer (email) VALUES ($1) ON CONFLICT (email) DO NOTHING",
			params:  map[int]Column{1: email},
			touches: true},
		{name: "on conflict do update literal",
			sql:     "INSERT INTO customer AS c (customer_id, email) VALUES (1, 'a@x') ON CONFLICT (customer_id) DO UPDATE SET email = 'b@x' WHERE c.active",
			lits:    []lit{{email, "a@x"}, {email, "b@x"}},
			touches: true},
		{name: "same param twice for the same column",
			sql:     "INSERT INTO customer (email) VALUES ($1), ($1)",
			params:  map[int]Column{1: email},
			touches: true},
		{name: "select plain",
			sql:     "SELECT customer_id, email, c.email AS e FROM customer c WHERE customer_id = $1 ORDER BY customer_id",
			touches: true},
		{name: "select star with order by position of unprotected column",
			sql:     "SELECT * FROM customer ORDER BY 1",
			touches: true},
		{name: "select count and IS NOT NULL",
			sql:     "SELECT count(email), count(*) FROM customer WHERE email IS NOT NULL",
			touches: true},
		{name: "join on unprotected columns",
			sql:     "SELECT c.email, o.note FROM customer c JOIN orders o ON o.customer_id = c.customer_id WHERE o.email = $1",
			touches: true},
		{name: "unprotected email of another table in outer level",
			sql:     "SELECT * FROM orders WHERE email = 'x' AND customer_id IN (SELECT customer_id FROM customer)",
			touches: true},
		{name: "sub-select passes protected column through",
			sql:     "SELECT s.e FROM (SELECT email AS e FROM customer) s",
			touches: true},
		{name: "delete",
			sql:     "DELETE FROM customer WHERE customer_id = $1 AND email IS NULL RETURNING email",
			touches: true},
		{name: "not touching",
			sql:     "SELECT 1; UPDATE orders SET note = 'x' WHERE id = 1",
			touches: false},
		{name: "schema-qualified",
			sql:     "INSERT INTO sales.contact (email) VALUES ($1)",
			params:  map[int]Column{1: salesEmail},
			touches: true},
		{name: "quoted mixed-case identifiers",
			sql:     `INSERT INTO "People" ("SSN", "Name") VALUES ('123-45-6789', 'Bob')`,
			lits:    []lit{{ssn, "123-45-6789"}},
			touches: true},
		{name: "unquoted name folds to lower case and is not People",
			sql:     `INSERT INTO people (ssn) VALUES ('1')`,
			touches: false},
		{name: "upper-case keywords and table names fold",
			sql:     `INSERT INTO CUSTOMER (EMAIL) VALUES ($1)`,
			params:  map[int]Column{1: email},
			touches: true},
		{name: "explain analyze insert",
			sql:     "EXPLAIN ANALYZE INSERT INTO customer (email) VALUES ('a@x')",
			lits:    []lit{{email, "a@x"}},
			touches: true},
		{name: "prepare with literal",
			sql:     "PREPARE p AS INSERT INTO customer (email) VALUES ('a@x')",
			lits:    []lit{{email, "a@x"}},
			touches: true},
		{name: "with read-only CTE",
			sql:     "WITH c AS (SELECT customer_id, email FROM customer) SELECT email FROM c",
			touches: true},
		{name: "writable CTE on unprotected table",
			sql:     "WITH d AS (DELETE FROM orders WHERE id = $1 RETURNING customer_id) INSERT INTO customer (customer_id, email) SELECT customer_id, $2 FROM d",
			params:  map[int]Column{2: email},
			touches: true},
		{name: "copy out",
			sql:     "COPY (SELECT email FROM customer) TO STDOUT",
			touches: true},
		{name: "DDL on protected table is not mapped",
			sql:     "ALTER TABLE customer ADD COLUMN note text",
			touches: true},
		{name: "drop default on protected column",
			sql:     "ALTER TABLE customer ALTER COLUMN email DROP DEFAULT",
			touches: true},
		{name: "create rule writing param-free literal",
			sql:     "CREATE RULE r AS ON INSERT TO orders DO ALSO INSERT INTO customer (email) VALUES ('x@y')",
			lits:    []lit{{email, "x@y"}},
			touches: true},
		{name: "set operation union all passes through",
			sql:     "SELECT email FROM customer UNION ALL SELECT email FROM customer",
			touches: true},
		{name: "exists sub-select",
			sql:     "SELECT 1 WHERE EXISTS (SELECT email FROM customer)",
			touches: true},
		{name: "lateral with unrelated function",
			sql:     "SELECT c.email, g FROM customer c, generate_series(1, 3) g",
			touches: true},
		{name: "ambiguous table for read",
			sql:     "SELECT email FROM contact",
			touches: true},
		{name: "insert into unprotected table copying ciphertext",
			sql:     "INSERT INTO orders (customer_id, email) SELECT customer_id, email FROM customer",
			touches: true},
		{name: "inner level column shadows outer protected column",
			sql:     "SELECT * FROM customer c WHERE EXISTS (SELECT 1 FROM public.orders o WHERE email = 'x')",
			touches: true},
		{name: "join using, order by position of the merged column",
			sql:     "SELECT * FROM customer JOIN address USING (address_id) ORDER BY 1",
			touches: true},
		{name: "CTE shadows protected table name",
			sql:     "WITH customer AS (SELECT 1 AS email) SELECT * FROM customer WHERE email = 1",
			touches: false},
		{name: "whole-row IS NOT NULL",
			sql:     "SELECT * FROM customer c WHERE c IS NOT NULL",
			touches: true},
		{name: "update where current of",
			sql:     "UPDATE customer SET email = $1 WHERE CURRENT OF cur",
			params:  map[int]Column{1: email},
			touches: true},
		{name: "do block not naming protected table",
			sql:     "DO $$ BEGIN PERFORM 1; END $$",
			touches: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Analyze(tc.sql, fixture)
			if err != nil {
				t.Fatalf("Analyze(%q): %v", tc.sql, err)
			}
			var params map[int]Column
			var lits []lit
			touches := false
			for _, st := range p.Statements {
				for k, v := range st.Params {
					if params == nil {
						params = map[int]Column{}
					}
					params[k] = v
				}
				lits = append(lits, literalsOf(st)...)
				touches = touches || st.Touches
			}
			if !reflect.DeepEqual(params, tc.params) {
				t.Errorf("params = %v, want %v", params, tc.params)
			}
			if !reflect.DeepEqual(lits, tc.lits) {
				t.Errorf("literals = %v, want %v", lits, tc.lits)
			}
			if touches != tc.touches {
				t.Errorf("touches = %v, want %v", touches, tc.touches)
			}
			if touches && !MayTouch(tc.sql, fixtureNames) {
				t.Errorf("MayTouch false negative")
			}
		})
	}
}

func TestAnalyzeRejected(t *testing.T) {
	tests := []struct {
		name   string
		sql    string
		col    Column
		reason string // substring of Reason
	}{
		{"function around param", "INSERT INTO customer (email) VALUES (upper($1))", email, "function call"},
		{"concatenation", "INSERT INTO customer (email) VALUES ('a' || $1)", email, "operator expression"},
		{"cast around function", "INSERT INTO customer (email) VALUES (lower($1)::text)", email, "type cast around a function call"},
		{"sub-select value", "INSERT INTO customer (email) VALUES ((SELECT email FROM orders LIMIT 1))", email, "sub-select"},
		{"insert select from table", "INSERT INTO customer (email) SELECT email FROM orders", email, "column reference"},
		{"insert select star", "INSERT INTO customer SELECT * FROM customer_import", email, "SELECT *"},
		{"insert select distinct", "INSERT INTO customer (email) SELECT DISTINCT $1", email, "DISTINCT"},
		{"insert union", "INSERT INTO customer (email) SELECT $1 UNION SELECT $2", email, "UNION"},
		{"update column copy", "UPDATE customer SET email = first_name", email, "column reference"},
		{"update from other column of other table", "UPDATE address SET phone = o.note FROM orders o", phone, "column reference"},
		{"update coalesce", "UPDATE customer SET email = coalesce($1, 'x')", email, "COALESCE"},
		{"update case", "UPDATE customer SET email = CASE WHEN $1 THEN 'a' ELSE 'b' END", email, "CASE"},
		{"update multi-assign sub-select", "UPDATE address SET (phone, district) = (SELECT note, note FROM orders)", phone, "sub-select"},
		{"update subscript", "UPDATE address SET phone[1] = $1", phone, "field or element"},
		{"excluded other column", "INSERT INTO address (address, phone) VALUES ($1, $2) ON CONFLICT (address_id) DO UPDATE SET phone = EXCLUDED.address", phone, "EXCLUDED of a different column"},
		{"excluded unprotected column", "INSERT INTO customer (email, first_name) VALUES ($1, $2) ON CONFLICT (customer_id) DO UPDATE SET email = EXCLUDED.first_name", email, "EXCLUDED"},
		{"param for two columns", "INSERT INTO address (address, phone) VALUES ($1, $1)", phone, "both"},
		{"param also in predicate", "UPDATE customer SET email = $1 WHERE first_name = $1", email, "also used elsewhere"},
		{"param predicate first", "INSERT INTO customer (first_name, email) VALUES ($1, $1)", email, "also used elsewhere"},
		{"where equality", "SELECT * FROM customer WHERE email = 'x'", email, "WHERE"},
		{"where like", "SELECT customer_id FROM customer WHERE email LIKE '%@x'", email, "WHERE"},
		{"where in", "SELECT customer_id FROM customer WHERE email IN ('a', 'b')", email, "WHERE"},
		{"where param", "DELETE FROM customer WHERE email = $1", email, "WHERE"},
		{"update where", "UPDATE customer SET first_name = $1 WHERE email = $2", email, "WHERE"},
		{"join on", "SELECT 1 FROM orders o JOIN customer c ON c.email = o.email", email, "JOIN"},
		{"join using", "SELECT 1 FROM orders JOIN customer USING (email)", email, "JOIN USING"},
		{"natural join", "SELECT 1 FROM orders NATURAL JOIN customer", email, "NATURAL"},
		{"order by", "SELECT customer_id FROM customer ORDER BY email", email, "ORDER BY"},
		{"order by alias", "SELECT email AS e FROM customer ORDER BY e", email, "ORDER BY"},
		{"order by position", "SELECT customer_id, email FROM customer ORDER BY 2", email, "ORDER BY"},
		{"order by position over star", "SELECT * FROM customer ORDER BY 5", email, "ORDER BY"},
		{"group by", "SELECT count(*) FROM customer GROUP BY email", email, "GROUP BY"},
		{"group by position", "SELECT email, count(*) FROM customer GROUP BY 1", email, "GROUP BY"},
		{"distinct", "SELECT DISTINCT email FROM customer", email, "DISTINCT"},
		{"distinct on", "SELECT DISTINCT ON (email) customer_id FROM customer", email, "DISTINCT ON"},
		{"union", "SELECT email FROM customer UNION SELECT email FROM customer", email, "UNION"},
		{"function in select list", "SELECT upper(email) FROM customer", email, "expression"},
		{"count distinct", "SELECT count(DISTINCT email) FROM customer", email, "expression"},
		{"predicate through sub-select alias", "SELECT * FROM (SELECT email AS e FROM customer) s WHERE e = 'x'", email, "WHERE"},
		{"predicate through CTE", "WITH c AS (SELECT email FROM customer) SELECT * FROM c WHERE c.email = $1", email, "WHERE"},
		{"predicate through CTE column alias", "WITH c(m) AS (SELECT email FROM customer) SELECT * FROM c WHERE m = $1", email, "WHERE"},
		{"predicate through table column alias", "SELECT 1 FROM customer AS c(a, b, f, l, m) WHERE m = 'x'", email, "WHERE"},
		{"predicate via lateral values", "SELECT 1 FROM customer c, LATERAL (VALUES (c.email)) v(e) WHERE e = 'x'", email, "WHERE"},
		{"compared sub-select", "SELECT 1 FROM orders WHERE note = (SELECT email FROM customer LIMIT 1)", email, "sub-select"},
		{"in sub-select", "SELECT 1 FROM orders WHERE note IN (SELECT email FROM customer)", email, "sub-select"},
		{"window partition", "SELECT row_number() OVER (PARTITION BY email) FROM customer", email, ""},
		{"having", "SELECT store_id FROM customer GROUP BY store_id HAVING max(email) > 'a'", email, ""},
		{"schema-qualified column ref", "SELECT 1 FROM customer WHERE public.customer.email = 'x'", email, "WHERE"},
		{"writable CTE", "WITH i AS (INSERT INTO customer (email) VALUES ($1) RETURNING 1) SELECT * FROM i", email, "WITH"},
		{"writable CTE delete", "WITH d AS (DELETE FROM customer RETURNING 1) SELECT 1", email, "WITH"},
		{"merge", "MERGE INTO customer c USING orders o ON o.customer_id = c.customer_id WHEN MATCHED THEN UPDATE SET email = o.email", email, "MERGE"},
		{"copy from file", "COPY customer FROM '/tmp/c.csv' WITH (FORMAT csv)", email, "server file"},
		{"copy from program", "COPY address (address) FROM PROGRAM 'cat x'", addr, "server file or program"},
		{"copy unknown option", "COPY customer FROM STDIN WITH (OIDS true)", email, "OIDS"},
		{"copy where on protected", "COPY customer FROM STDIN WHERE email IS NOT NULL AND email <> ''", email, "WHERE"},
		{"ambiguous insert", "INSERT INTO contact (email) VALUES ($1)", Column{Table: "contact"}, "crm, sales"},
		{"ambiguous update", "UPDATE contact SET email = $1", Column{Table: "contact"}, "schema"},
		{"ambiguous copy", "COPY contact FROM STDIN", Column{Table: "contact"}, "schema"},
		{"insert without known column order", "INSERT INTO secret VALUES ($1)", token, "column order"},
		{"copy without known column order", "COPY secret FROM STDIN", token, "column order"},
		{"prepare with protected param", "PREPARE p(text) AS INSERT INTO customer (email) VALUES ($1)", email, "PREPARE"},
		{"do block naming protected table", "DO $$ BEGIN INSERT INTO customer(email) VALUES ('x'); END $$", Column{Schema: "public", Table: "customer"}, "DO block"},
		{"alter default", "ALTER TABLE customer ALTER COLUMN email SET DEFAULT 'nobody@x'", email, "default"},
		{"rule copying NEW column", "CREATE RULE r AS ON INSERT TO orders DO ALSO INSERT INTO customer (email) VALUES (NEW.email)", email, "column reference"},
		{"second statement rejected", "SELECT 1; INSERT INTO customer (email) VALUES (md5('x'))", email, "function call"},
		{"bit string", "INSERT INTO customer (email) VALUES (B'0101')", email, "bit-string"},
		{"collate", "INSERT INTO customer (email) VALUES ($1 COLLATE \"C\")", email, "COLLATE"},
		{"whole-row compare", "SELECT 1 FROM customer c WHERE c = c", email, "WHERE"},
		{"explain of rejected", "EXPLAIN INSERT INTO customer (email) VALUES (upper('x'))", email, "function call"},
		{"insert into composite field", "INSERT INTO address (phone.x) VALUES ($1)", phone, "field or element"},
		{"quoted case", `SELECT 1 FROM "People" WHERE "SSN" = $1`, ssn, "WHERE"},
		{"alter type using", "ALTER TABLE customer ALTER COLUMN email TYPE text USING 'x'", email, "USING"},
		{"outer protected column in correlated sub-select", "SELECT * FROM customer c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.note = email)", email, "WHERE"},
		{"order by position through join using", "SELECT * FROM customer JOIN address USING (address_id) ORDER BY 6", email, "ORDER BY"},
		{"predicate through aliased join", "SELECT a.* FROM (customer JOIN address USING (address_id)) AS a WHERE a.phone = '1'", phone, "WHERE"},
		{"order by through CTE star", "WITH x AS (SELECT * FROM customer) SELECT * FROM x ORDER BY 5", email, "ORDER BY"},
		{"predicate through sub-select column aliases", "SELECT * FROM (SELECT * FROM customer) s(a, b, c, d, e) WHERE e = 'x'", email, "WHERE"},
		{"predicate in lateral sub-select", "SELECT * FROM customer, LATERAL (SELECT email) x WHERE x.email = 'a'", email, "WHERE"},
		{"predicate inside RETURNING sub-select", "INSERT INTO customer (email) VALUES ($1) RETURNING (SELECT 1 FROM customer WHERE email = 'x')", email, "WHERE"},
		{"predicate in INSERT SELECT into other table", "INSERT INTO orders (note) SELECT email FROM customer WHERE email = 'x'", email, "WHERE"},
		{"intersect all", "SELECT email FROM customer INTERSECT ALL SELECT email FROM customer", email, "INTERSECT"},
		{"aggregate order by", "SELECT string_agg(first_name, ',' ORDER BY email) FROM customer", email, "expression"},
		{"whole-row in function", "SELECT json_agg(c) FROM customer c", email, "expression"},
		{"row comparison", "SELECT * FROM customer WHERE (email, 1) = ('x', 1)", email, "WHERE"},
		{"cast in predicate", "SELECT * FROM customer WHERE email::text = 'x'", email, "WHERE"},
		{"any array", "SELECT * FROM customer WHERE email = ANY ($1)", email, "WHERE"},
		{"grouping sets", "SELECT 1 FROM customer GROUP BY GROUPING SETS ((email), ())", email, "GROUP BY"},
		{"xmltable passing protected", "SELECT * FROM XMLTABLE('/r' PASSING (SELECT email FROM customer) COLUMNS a text)", email, "sub-select"},
		{"sql value function", "INSERT INTO customer (email) VALUES (current_user)", email, "SQL value function"},
		{"table statement as insert source", "INSERT INTO customer (email) TABLE orders", email, "SELECT *"},
		{"excluded in conflict where", "INSERT INTO customer (email) VALUES ($1) ON CONFLICT (customer_id) DO UPDATE SET email = excluded.email WHERE excluded.email = 'x'", email, "WHERE"},
		{"delete using join on protected", "DELETE FROM customer USING orders o WHERE o.email = customer.email", email, "WHERE"},
		{"create view with predicate", "CREATE VIEW v AS SELECT * FROM customer WHERE email LIKE '%@x'", email, "WHERE"},
		{"set expression", "ALTER TABLE customer ALTER COLUMN email SET EXPRESSION AS (first_name)", email, "generated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Analyze(tc.sql, fixture)
			if err == nil {
				t.Fatalf("Analyze(%q) accepted: %+v", tc.sql, p.Statements)
			}
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T) is not a *RejectError", err, err)
			}
			if re.Column != tc.col {
				t.Errorf("column = %v, want %v (%v)", re.Column, tc.col, err)
			}
			if re.SQLState != SQLStateFeatureNotSupported {
				t.Errorf("SQLState = %q", re.SQLState)
			}
			if !strings.Contains(re.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", re.Reason, tc.reason)
			}
			if re.Hint == "" {
				t.Errorf("no hint")
			}
			msg := err.Error()
			if tc.col.Name != "" && !strings.Contains(msg, tc.col.String()) {
				t.Errorf("message %q does not name %v", msg, tc.col)
			}
			if !MayTouch(tc.sql, fixtureNames) {
				t.Errorf("MayTouch false negative")
			}
		})
	}
}

// fixtureNames is the MayTouch predicate for fixture.
func fixtureNames(name string) bool {
	for k := range fixture.prot {
		if FoldName(k[strings.IndexByte(k, '.')+1:]) == name {
			return true
		}
	}
	return false
}
