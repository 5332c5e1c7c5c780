package analyze

import (
	"errors"
	"slices"
	"testing"
)

// viewSchema is a Schema as the catalog presents one view's dependencies:
// SchemasOf resolves every unqualified name the text uses (protected or
// not), and a view's protected columns map to base columns.
type viewSchema struct {
	prot    map[string]map[string]Column // "schema.table" → column → base column
	order   map[string][]string
	schemas map[string][]string
}

func (s viewSchema) ProtectedColumns(schema, table string) map[string]Column {
	return s.prot[schema+"."+table]
}

func (s viewSchema) SchemasOf(table string) []string { return s.schemas[table] }

func (s viewSchema) ColumnOrder(schema, table string) ([]string, bool) {
	cols, ok := s.order[schema+"."+table]
	return cols, ok
}

func newViewSchema() viewSchema {
	s := viewSchema{prot: map[string]map[string]Column{}, order: map[string][]string{}, schemas: map[string][]string{}}
	for rel, names := range fixture.prot {
		m := map[string]Column{}
		for _, n := range names {
			m[n] = Column{Schema: rel[:indexByte(rel, '.')], Table: rel[indexByte(rel, '.')+1:], Name: n}
		}
		s.prot[rel] = m
	}
	for rel, cols := range fixture.order {
		s.order[rel] = cols
	}
	s.order["public.staff"] = []string{"staff_id", "first_name", "last_name", "address_id", "email", "store_id"}
	s.order["public.city"] = []string{"city_id", "city", "country_id"}
	// A view over customer, as the catalog reports it once attributed.
	s.prot["public.customer_view"] = map[string]Column{"mail": email}
	s.order["public.customer_view"] = []string{"id", "mail", "name"}
	for _, rel := range []string{"public.customer", "public.address", "public.orders", "public.staff",
		"public.customer_view", "public.People", "public.secret"} {
		i := indexByte(rel, '.')
		s.schemas[rel[i+1:]] = []string{rel[:i]}
	}
	s.prot["public.lacking"] = map[string]Column{"email": email}
	s.order["public.lacking"] = []string{"id"}
	s.schemas["lacking"] = []string{"public"}
	// country and store have no entry: unknown relations, columns unknown.
	s.schemas["city"] = []string{"public"}
	s.schemas["contact"] = []string{"crm", "sales"}
	return s
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}

// viewIDs returns ViewColumns' answer as strings, "" for an unattributed
// column.
func viewIDs(t *testing.T, sql string, schema Schema) []string {
	t.Helper()
	cols, err := ViewColumns(sql, schema)
	if err != nil {
		t.Fatalf("ViewColumns(%q): %v", sql, err)
	}
	ids := make([]string, len(cols))
	for i, c := range cols {
		if c != nil {
			ids[i] = c.String()
		}
	}
	return ids
}

func TestViewColumns(t *testing.T) {
	const (
		E  = "public.customer.email"
		A  = "public.address.address"
		P  = "public.address.phone"
		Z  = "public.address.postal_code"
		SE = "sales.contact.email"
	)
	schema := newViewSchema()
	tests := []struct {
		name string
		sql  string
		want []string
	}{
		{"pg_get_viewdef of a one-table view",
			"SELECT customer.customer_id, customer.email FROM customer",
			[]string{"", E}},
		{"pagila customer_list: joins, aliases, a concatenation, CASE",
			`SELECT cu.customer_id AS id,
			    (cu.first_name || ' '::text) || cu.last_name AS name,
			    a.address, a.postal_code AS "zip code", a.phone, city.city, country.country,
			    CASE WHEN cu.active THEN 'active'::text ELSE ''::text END AS notes,
			    cu.store_id AS sid
			   FROM customer cu
			     JOIN address a ON cu.address_id = a.address_id
			     JOIN city ON a.city_id = city.city_id
			     JOIN country ON city.country_id = country.country_id`,
			[]string{"", "", A, Z, P, "", "", "", ""}},
		{"pagila staff_list: the staff table is not protected",
			`SELECT s.staff_id AS id, (s.first_name || ' ') || s.last_name AS name, s.email,
			    a.address, a.postal_code AS "zip code", a.phone
			   FROM staff s JOIN address a ON s.address_id = a.address_id`,
			[]string{"", "", "", A, Z, P}},
		{"schema-qualified relation and column",
			"SELECT public.customer.email, c2.email FROM public.customer, sales.contact c2",
			[]string{E, SE}},
		{"computed items are not attributed",
			`SELECT email::text, upper(email), email || '', COALESCE(email, ''), email COLLATE "C",
			    (SELECT c2.email FROM customer c2 LIMIT 1), ARRAY[email], min(email), customer, (customer).email,
			    CASE WHEN true THEN email END, email IS NULL
			   FROM customer GROUP BY customer.customer_id`,
			[]string{"", "", "", "", "", "", "", "", "", "", "", ""}},
		{"grouping and DISTINCT keep a plain reference",
			"SELECT DISTINCT customer.email, count(*) AS n FROM customer GROUP BY customer.email",
			[]string{E, ""}},
		{"bare names over one table",
			"SELECT email, first_name AS email2 FROM customer",
			[]string{E, ""}},
		{"bare name, other relation known to lack it",
			"SELECT email FROM customer JOIN address USING (address_id)",
			[]string{E}},
		{"bare name, other relation of unknown columns",
			"SELECT email, cu.email FROM customer cu, store",
			[]string{"", E}},
		{"merged USING column is not attributed",
			"SELECT address_id, j.phone FROM (customer JOIN address USING (address_id)) j",
			[]string{"", P}},
		{"join alias with column list",
			"SELECT j.x, j.e FROM (customer c JOIN address a ON c.address_id = a.address_id) AS j(x, s, f, l, e)",
			[]string{"", E}},
		{"sub-select with alias column list",
			"SELECT s.e, s.i, s.customer_id FROM (SELECT c.email, c.customer_id FROM customer c) AS s(e, i)",
			[]string{E, "", ""}},
		{"nested sub-selects",
			"SELECT t.m FROM (SELECT s.mail AS m FROM (SELECT customer.email AS mail FROM customer) s) t",
			[]string{E}},
		{"CTE, and a sub-select in the select list",
			"WITH x AS (SELECT customer.email AS e FROM customer) SELECT x.e, (SELECT 1) AS one FROM x",
			[]string{E, ""}},
		{"CTE with column list and alias",
			"WITH x(id, e) AS (SELECT customer_id, email FROM customer) SELECT y.e, e FROM x AS y",
			[]string{E, E}},
		{"CTE shadows a protected table",
			"WITH customer AS (SELECT 'x' AS email) SELECT customer.email FROM customer",
			[]string{""}},
		{"a CTE sees earlier CTEs, a table outside",
			"WITH a AS (SELECT email FROM customer), b AS (SELECT a.email FROM a) SELECT b.email FROM b",
			[]string{E}},
		{"recursive CTE",
			"WITH RECURSIVE r(e) AS (SELECT email FROM customer UNION ALL SELECT e FROM r) SELECT r.e FROM r",
			[]string{""}},
		{"forward reference in WITH RECURSIVE",
			"WITH RECURSIVE a AS (SELECT b.email FROM b), b AS (SELECT email FROM customer) SELECT a.email, b.email FROM a, b",
			[]string{"", E}},
		{"UNION ALL of the same column",
			"SELECT customer.email FROM customer UNION ALL SELECT customer.email FROM customer",
			[]string{""}},
		{"UNION, INTERSECT, EXCEPT",
			"SELECT email FROM customer UNION SELECT email FROM customer INTERSECT SELECT email FROM customer EXCEPT SELECT 'x'",
			[]string{""}},
		{"a UNION in a sub-select",
			"SELECT u.email, u.customer_id FROM (SELECT email, customer_id FROM customer UNION ALL SELECT email, customer_id FROM customer) u",
			[]string{"", ""}},
		{"VALUES",
			"VALUES ('a', 1), ('b', 2)",
			[]string{"", ""}},
		{"star over known relations",
			"SELECT *, a.* FROM customer c JOIN address a ON c.address_id = a.address_id",
			[]string{"", "", "", "", E, "", "", "", A, "", "", "", Z, P, "", A, "", "", "", Z, P}},
		{"star over a join USING",
			"SELECT * FROM customer JOIN address USING (address_id)",
			[]string{"", "", "", "", "", E, "", A, "", "", "", Z, P}},
		{"duplicate names in a sub-select are not followed",
			"SELECT * FROM (SELECT c.email, o.email FROM customer c, orders o) s",
			[]string{"", ""}},
		{"lateral sub-select sees the items before it",
			"SELECT s.e FROM customer c, LATERAL (SELECT c.email AS e) s",
			[]string{E}},
		{"non-lateral sub-select does not",
			"SELECT s.e FROM customer c, (SELECT email AS e FROM (VALUES (1)) v(a)) s",
			[]string{""}},
		{"correlated reference from a sub-select in FROM",
			"SELECT (SELECT s.e FROM (SELECT c.email AS e) s) FROM customer c",
			[]string{""}},
		{"a view over a view",
			"SELECT customer_view.mail, customer_view.name FROM customer_view",
			[]string{E, ""}},
		{"a view's unprotected column is not its protected one",
			"SELECT v.id, v.* FROM customer_view v",
			[]string{"", "", E, ""}},
		{"unqualified name in several schemas",
			"SELECT contact.email FROM contact",
			[]string{""}},
		{"schema-qualified reference to a table of unknown schema",
			"SELECT sales.contact.email FROM contact, sales.contact c2",
			[]string{""}},
		{"function in FROM without alias",
			"SELECT customer.email, generate_series FROM generate_series(1, 2), customer",
			[]string{E, ""}},
		{"alias column list on a table",
			"SELECT c.e FROM customer AS c(i, s, f, l, e)",
			[]string{E}},
		{"a protected name the table lacks is not a column of it",
			"SELECT s.e FROM orders o, LATERAL (SELECT email AS e FROM lacking) s",
			[]string{""}},
		{"quoted names",
			`SELECT "People"."SSN", p."Name" FROM "People", "People" p`,
			[]string{"public.People.SSN", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := viewIDs(t, tc.sql, schema); !slices.Equal(got, tc.want) {
				t.Errorf("ViewColumns(%q)\n got %q\nwant %q", tc.sql, got, tc.want)
			}
		})
	}
}

func TestViewColumnsErrors(t *testing.T) {
	schema := newViewSchema()
	for _, sql := range []string{
		"SELECT * FROM store",
		"SELECT c.*, s.* FROM customer c, store s",
		"SELECT (c).* FROM customer c",
		"INSERT INTO customer (email) VALUES ('x')",
		"SELECT 1; SELECT 2",
		"SELECT 1 INTO t",
		"",
	} {
		_, err := ViewColumns(sql, schema)
		var ve *ViewError
		if !errors.As(err, &ve) {
			t.Errorf("ViewColumns(%q) = %v, want a *ViewError", sql, err)
		}
	}
	_, err := ViewColumns("SELECT FROM WHERE (", schema)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Errorf("ViewColumns of bad text = %v, want a *ParseError", err)
	}
	if got := (&ViewError{Reason: "x"}).Error(); got != "fleproxy: view definition: x" {
		t.Errorf("ViewError text = %q", got)
	}
}

// The returned columns are the caller's: they alias nothing in the schema.
func TestViewColumnsCopies(t *testing.T) {
	schema := newViewSchema()
	cols, err := ViewColumns("SELECT customer.email, customer.email AS e FROM customer", schema)
	if err != nil {
		t.Fatal(err)
	}
	cols[0].Name = "changed"
	if cols[1].Name != "email" || schema.prot["public.customer"]["email"].Name != "email" {
		t.Error("ViewColumns returned shared columns")
	}
}

// FuzzViewColumns checks that ViewColumns never panics and returns only typed
// errors.
func FuzzViewColumns(f *testing.F) {
	for _, s := range []string{
		"SELECT customer.customer_id, customer.email FROM customer",
		"SELECT j.x FROM (customer c JOIN address a USING (address_id)) AS j(x)",
		"WITH RECURSIVE r(e) AS (SELECT email FROM customer UNION ALL SELECT e FROM r) SELECT r.e FROM r",
		"SELECT s.e FROM customer c, LATERAL (SELECT c.email AS e) s",
		"SELECT * FROM customer NATURAL JOIN store",
	} {
		f.Add(s)
	}
	schema := newViewSchema()
	f.Fuzz(func(t *testing.T, sql string) {
		_, err := ViewColumns(sql, schema)
		var ve *ViewError
		var pe *ParseError
		if err != nil && !errors.As(err, &ve) && !errors.As(err, &pe) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
	})
}
