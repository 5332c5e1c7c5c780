package analyze

import (
	"errors"
	"strings"
	"testing"
)

// TestGuards refuses the statements that would take a protected column out of the proxy's
// sight, and lets their harmless neighbours through.
func TestGuards(t *testing.T) {
	refused := []string{
		"CREATE FUNCTION f(x text) RETURNS void LANGUAGE sql AS $$ INSERT INTO customer (email) VALUES (x) $$",
		"CREATE PROCEDURE p(x text) LANGUAGE sql AS 'UPDATE public.customer SET email = x'",
		"CREATE FUNCTION g(x text) RETURNS void LANGUAGE sql BEGIN ATOMIC INSERT INTO customer (email) VALUES (x); END",
		"CREATE OR REPLACE FUNCTION h(x text) RETURNS void LANGUAGE plpgsql AS $b$ BEGIN IF x <> '' THEN UPDATE customer SET email = x; END IF; END $b$",
		"CREATE FUNCTION k(x text) RETURNS void LANGUAGE sql AS $$ WITH w AS (SELECT 1) INSERT INTO public.customer (email) SELECT x $$",
		"ALTER TABLE customer RENAME TO client",
		"ALTER TABLE customer RENAME COLUMN email TO mail",
		"ALTER TABLE public.customer SET SCHEMA archive",
	}
	for _, sql := range refused {
		_, err := Analyze(sql, fixture)
		var re *RejectError
		if !errors.As(err, &re) || !strings.Contains(re.Error(), "customer") {
			t.Errorf("%q: want a RejectError naming customer, got %v", sql, err)
		}
	}
	allowed := []string{
		"CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 1'",
		"CREATE FUNCTION r() RETURNS SETOF customer LANGUAGE sql AS 'SELECT * FROM customer'",
		"CREATE FUNCTION p(n int) RETURNS SETOF customer LANGUAGE plpgsql AS $$ DECLARE r record; BEGIN CREATE TEMPORARY TABLE t (id int); INSERT INTO t SELECT id FROM customer; FOR r IN SELECT c.* FROM customer c LOOP RETURN NEXT r; END LOOP; END $$",
		"CREATE TRIGGER tr BEFORE INSERT ON customer FOR EACH ROW EXECUTE FUNCTION h()",
		"ALTER TABLE customer RENAME COLUMN name TO full_name",
		"ALTER TABLE orders RENAME TO purchases",
	}
	for _, sql := range allowed {
		if _, err := Analyze(sql, fixture); err != nil {
			t.Errorf("%q: %v", sql, err)
		}
	}
}
