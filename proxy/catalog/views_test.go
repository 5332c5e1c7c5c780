package catalog

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy/analyze"
)

// pagilaSetup is the part of pagila's schema its customer_list and
// staff_list views read, with those views as pagila defines them.
const pagilaSetup = `
CREATE TABLE public.country (country_id int PRIMARY KEY, country text NOT NULL);
CREATE TABLE public.city (city_id int PRIMARY KEY, city text NOT NULL, country_id int NOT NULL);
CREATE TABLE public.address (address_id int PRIMARY KEY, address text NOT NULL, address2 text, district text NOT NULL,
	city_id int NOT NULL, postal_code text, phone text NOT NULL);
CREATE TABLE public.customer (customer_id int PRIMARY KEY, store_id int NOT NULL, first_name text NOT NULL,
	last_name text NOT NULL, email text, address_id int NOT NULL, activebool boolean DEFAULT true NOT NULL, active int);
CREATE TABLE public.staff (staff_id int PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL,
	address_id int NOT NULL, email text, store_id int NOT NULL, active boolean DEFAULT true NOT NULL, username text NOT NULL);
CREATE VIEW public.customer_list AS
 SELECT cu.customer_id AS id,
    ((cu.first_name || ' '::text) || cu.last_name) AS name,
    a.address,
    a.postal_code AS "zip code",
    a.phone,
    city.city,
    country.country,
        CASE
            WHEN cu.activebool THEN 'active'::text
            ELSE ''::text
        END AS notes,
    cu.store_id AS sid
   FROM (((public.customer cu
     JOIN public.address a ON ((cu.address_id = a.address_id)))
     JOIN public.city ON ((a.city_id = city.city_id)))
     JOIN public.country ON ((city.country_id = country.country_id)));
CREATE VIEW public.staff_list AS
 SELECT s.staff_id AS id,
    ((s.first_name || ' '::text) || s.last_name) AS name,
    a.address,
    a.postal_code AS "zip code",
    a.phone,
    city.city,
    country.country,
    s.store_id AS sid
   FROM (((public.staff s
     JOIN public.address a ON ((s.address_id = a.address_id)))
     JOIN public.city ON ((a.city_id = city.city_id)))
     JOIN public.country ON ((city.country_id = country.country_id)));`

const pagilaPolicy = `version: 1
columns:
  - {column: public.customer.email, type: text, key: pii, storage: text}
  - {column: public.address.address, type: text, key: pii, storage: text}
  - {column: public.address.postal_code, type: text, key: pii, storage: text}
  - {column: public.address.phone, type: text, key: pii, storage: text}
`

const (
	cEmail   = "public.customer.email"
	cAddress = "public.address.address"
	cPostal  = "public.address.postal_code"
	cPhone   = "public.address.phone"
)

func TestViews(t *testing.T) {
	t.Parallel()
	db := newDB(t, pagilaSetup+`
-- a view over a view, renaming a column and recomputing another
CREATE VIEW public.customer_contact AS
	SELECT l.id, l.phone AS tel, l.name, upper(l.address) AS shout FROM public.customer_list l;
-- a sub-select over a CTE
CREATE VIEW public.customer_emails AS
	WITH e AS (SELECT customer_id, email FROM public.customer)
	SELECT s.customer_id, s.mail FROM (SELECT e.customer_id, e.email AS mail FROM e) s;
-- UNION ALL of the same column, and UNION: not attributed
CREATE VIEW public.all_emails AS
	SELECT email FROM public.customer UNION ALL SELECT email FROM public.customer;
CREATE VIEW public.distinct_emails AS
	SELECT email FROM public.customer UNION SELECT email FROM public.staff;
-- a materialized view
CREATE MATERIALIZED VIEW public.customer_mv AS
	SELECT customer_id, email, email || '' AS computed FROM public.customer;
-- a view in a schema that is not on search_path, and a view over it
CREATE SCHEMA report;
CREATE VIEW report.addresses AS SELECT a.address_id AS id, a.phone, a.district FROM public.address a;
CREATE VIEW public.phones AS SELECT r.phone FROM report.addresses r;
-- views that read protected tables but pass no protected column on
CREATE VIEW public.customer_names AS SELECT customer_id, first_name FROM public.customer WHERE email IS NOT NULL;
CREATE VIEW public.film AS SELECT 1 AS film_id;`)
	p := mustPolicy(t, pagilaPolicy)
	c := mustCache(t, p, db)

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"SELECT * FROM customer_list", []string{"", "", cAddress, cPostal, cPhone, "", "", "", ""}},
		{"SELECT * FROM staff_list", []string{"", "", cAddress, cPostal, cPhone, "", "", ""}},
		{"SELECT * FROM customer_contact", []string{"", cPhone, "", ""}},
		{"SELECT * FROM customer_emails", []string{"", cEmail}},
		{"SELECT * FROM all_emails", []string{""}},
		{"SELECT * FROM distinct_emails", []string{""}},
		{"SELECT * FROM customer_mv", []string{"", cEmail, ""}},
		{"SELECT * FROM report.addresses", []string{"", cPhone, ""}},
		{"SELECT * FROM phones", []string{cPhone}},
		{"SELECT * FROM customer_names", []string{"", ""}},
		// The client's own sub-selects, CTEs and aliases: PostgreSQL reports
		// the view's column, which Lookup resolves.
		{`WITH w AS (SELECT "zip code" AS z, phone FROM customer_list) SELECT x.z, x.phone || '' FROM (SELECT * FROM w) x`,
			[]string{cPostal, ""}},
	} {
		wantStrings(t, tc.query, protectedFields(t, c, db, tc.query), tc.want)
	}

	listOID := relOID(t, db, "public.customer_list")
	phone, _ := p.Column("public", "address", "phone")
	if got, ok := c.Lookup(listOID, 5); !ok || got != phone {
		t.Errorf("Lookup(customer_list, 5) = %v, %v; want the policy's own address.phone", got, ok)
	}

	// The write path sees the views that pass a protected column on.
	wantStrings(t, "ProtectedColumns(customer_list)", c.ProtectedColumns("public", "customer_list"),
		[]string{"address", "zip code", "phone"})
	wantStrings(t, "ProtectedColumns(customer_contact)", c.ProtectedColumns("public", "customer_contact"), []string{"tel"})
	wantStrings(t, "ProtectedColumns(customer_mv)", c.ProtectedColumns("public", "customer_mv"), []string{"email"})
	wantStrings(t, "ProtectedColumns(report.addresses)", c.ProtectedColumns("report", "addresses"), []string{"phone"})
	for _, table := range []string{"all_emails", "distinct_emails", "customer_names", "film"} {
		wantStrings(t, "ProtectedColumns("+table+")", c.ProtectedColumns("public", table), nil)
		if c.IsProtectedTableName(table) {
			t.Errorf("IsProtectedTableName(%s) = true", table)
		}
	}
	postal, _ := p.Column("public", "address", "postal_code")
	if got, ok := c.Column("public", "customer_list", "zip code"); !ok || got != postal {
		t.Errorf(`Column(customer_list, "zip code") = %v, %v`, got, ok)
	}
	if _, ok := c.Column("public", "customer_list", "name"); ok {
		t.Error("Column resolved a computed view column")
	}
	order, ok := c.ColumnOrder("public", "customer_list")
	if !ok {
		t.Error("ColumnOrder(customer_list) not found")
	}
	wantStrings(t, "ColumnOrder(customer_list)", order,
		[]string{"id", "name", "address", "zip code", "phone", "city", "country", "notes", "sid"})
	wantStrings(t, "SchemasOf(addresses)", c.SchemasOf("addresses"), []string{"report"})
	for _, name := range []string{"customer_list", "STAFF_LIST", "customer_mv", "phones"} {
		if !c.IsProtectedTableName(name) {
			t.Errorf("IsProtectedTableName(%s) = false", name)
		}
	}
}

// Writes through an updatable view are encrypted for the base column, and
// reads of a view are checked like reads of a table.
func TestViewWrites(t *testing.T) {
	t.Parallel()
	db := newDB(t, `
CREATE TABLE public.customer (customer_id int PRIMARY KEY, first_name text, email text);
CREATE VIEW public.customer_view AS SELECT customer_id, email AS mail, first_name FROM public.customer;`)
	c := mustCache(t, mustPolicy(t, pagilaPolicy), db)
	email := analyze.Column{Schema: "public", Table: "customer", Name: "email"}

	for _, tc := range []struct {
		sql    string
		lits   []analyze.Column
		params map[int]analyze.Column
	}{
		{sql: "INSERT INTO customer_view (customer_id, mail) VALUES (1, 'a@example.com')", lits: []analyze.Column{email}},
		{sql: "INSERT INTO public.customer_view VALUES (2, 'b@example.com', 'Bea')", lits: []analyze.Column{email}},
		{sql: "UPDATE customer_view SET mail = $1 WHERE customer_id = $2", params: map[int]analyze.Column{1: email}},
	} {
		plan, err := analyze.Analyze(tc.sql, c.Schema())
		if err != nil {
			t.Errorf("Analyze(%q): %v", tc.sql, err)
			continue
		}
		st := plan.Statements[0]
		var lits []analyze.Column
		for _, l := range st.Literals {
			lits = append(lits, l.Column)
		}
		if !st.Touches || !slices.Equal(lits, tc.lits) || len(st.Params) != len(tc.params) {
			t.Errorf("Analyze(%q): touches %v, literals %v, params %v", tc.sql, st.Touches, lits, st.Params)
		}
		for n, col := range tc.params {
			if st.Params[n] != col {
				t.Errorf("Analyze(%q): $%d → %v, want %v", tc.sql, n, st.Params[n], col)
			}
		}
	}
	_, err := analyze.Analyze("SELECT customer_id FROM customer_view WHERE mail = 'a@example.com'", c.Schema())
	if re, ok := err.(*analyze.RejectError); !ok || re.Column != email {
		t.Errorf("a comparison on a view's protected column: %v, want a rejection naming %v", err, email)
	}
	if !analyze.MayTouch("select * from Customer_View", c.IsProtectedTableName) {
		t.Error("MayTouch misses the view")
	}
}

// DDL on views takes effect at the next Refresh.
func TestViewDDL(t *testing.T) {
	t.Parallel()
	db := newDB(t, `
CREATE TABLE public.customer (customer_id int PRIMARY KEY, first_name text, email text);
CREATE VIEW public.v AS SELECT customer_id, email AS contact FROM public.customer;
CREATE VIEW public.w AS SELECT v.contact FROM public.v;`)
	c := mustCache(t, mustPolicy(t, pagilaPolicy), db)
	refresh := func() {
		t.Helper()
		if err := c.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wantStrings(t, "v", protectedFields(t, c, db, "SELECT * FROM v"), []string{"", cEmail})
	wantStrings(t, "w", protectedFields(t, c, db, "SELECT * FROM w"), []string{cEmail})

	// The view now reads another column: neither it nor the view over it is
	// attributed any more, nor protected for writes.
	exec(t, db, "CREATE OR REPLACE VIEW public.v AS SELECT customer_id, first_name AS contact FROM public.customer")
	refresh()
	wantStrings(t, "v after CREATE OR REPLACE", protectedFields(t, c, db, "SELECT * FROM v"), []string{"", ""})
	wantStrings(t, "w after CREATE OR REPLACE of v", protectedFields(t, c, db, "SELECT * FROM w"), []string{""})
	if c.IsProtectedTableName("v") || c.ProtectedColumns("public", "w") != nil {
		t.Error("views that no longer pass email on are still protected names")
	}

	// And back, with a column added at the end.
	exec(t, db, "CREATE OR REPLACE VIEW public.v AS SELECT customer_id, email AS contact, email FROM public.customer")
	refresh()
	// (New query texts: the connection caches the old result descriptions.)
	wantStrings(t, "v with a new column", protectedFields(t, c, db, "SELECT v.* FROM v"), []string{"", cEmail, cEmail})
	wantStrings(t, "w again", protectedFields(t, c, db, "SELECT w.* FROM w"), []string{cEmail})

	// A renamed column, a new view, a dropped one.
	exec(t, db, `ALTER VIEW public.v RENAME COLUMN contact TO mail;
CREATE VIEW public.x AS SELECT customer.email FROM public.customer;
DROP VIEW public.w`)
	refresh()
	wantStrings(t, "ProtectedColumns(v) after RENAME", c.ProtectedColumns("public", "v"), []string{"mail", "email"})
	wantStrings(t, "x", protectedFields(t, c, db, "SELECT * FROM x"), []string{cEmail})
	if c.IsProtectedTableName("w") {
		t.Error("a dropped view is still a protected name")
	}
}

// A view resolves names as its definition does: an unqualified name is the
// relation visible on search_path, here an unprotected table that shadows
// the protected one.
func TestViewSearchPath(t *testing.T) {
	t.Parallel()
	db := newDB(t, `
CREATE TABLE public.customer (customer_id int PRIMARY KEY, email text);
CREATE SCHEMA postgres; -- "$user" comes first on the default search_path
CREATE TABLE postgres.customer (customer_id int, email text);
CREATE VIEW public.shadowed AS SELECT customer.email FROM postgres.customer;
CREATE VIEW public.qualified AS SELECT customer.email FROM public.customer;
CREATE VIEW public.both AS SELECT a.email AS a, b.email AS b FROM public.customer a, postgres.customer b;`)
	c := mustCache(t, mustPolicy(t, pagilaPolicy), db)
	var def string
	if err := db.conn.QueryRow(context.Background(), "SELECT pg_get_viewdef('public.shadowed'::regclass, true)").Scan(&def); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(def, "postgres.") {
		t.Fatalf("pg_get_viewdef qualified the visible table, so this test tests nothing: %s", def)
	}
	wantStrings(t, "shadowed", protectedFields(t, c, db, "SELECT * FROM public.shadowed"), []string{""})
	wantStrings(t, "qualified", protectedFields(t, c, db, "SELECT * FROM public.qualified"), []string{cEmail})
	wantStrings(t, "both", protectedFields(t, c, db, "SELECT * FROM public.both"), []string{cEmail, ""})
}

// A view over partitions and over a column two policy columns claim.
func TestViewsOverPartitionsAndConflicts(t *testing.T) {
	t.Parallel()
	db := newDB(t, `
CREATE TABLE public.payment (payment_id int, card text, paid date) PARTITION BY RANGE (paid);
CREATE TABLE public.payment_2022 PARTITION OF public.payment FOR VALUES FROM ('2022-01-01') TO ('2023-01-01');
CREATE VIEW public.cards AS SELECT payment_id, card FROM public.payment;
CREATE VIEW public.cards_2022 AS SELECT p.card AS c FROM public.payment_2022 p;
CREATE TABLE public.a (email text);
CREATE TABLE public.b (email text, phone text);
CREATE TABLE public.ab () INHERITS (public.a, public.b);
CREATE VIEW public.ab_view AS SELECT email, phone FROM public.ab;
CREATE VIEW public.ab_view2 AS SELECT ab_view.email AS e FROM public.ab_view;`)
	p := mustPolicy(t, `version: 1
columns:
  - {column: public.payment.card, type: text, key: pii, storage: text}
  - {column: public.a.email, type: text, key: pii, storage: text}
  - {column: public.b.email, type: text, key: pii, storage: text}
  - {column: public.b.phone, type: text, key: pii, storage: text}
`)
	c := mustCache(t, p, db)
	wantStrings(t, "cards", protectedFields(t, c, db, "SELECT * FROM cards"), []string{"", "public.payment.card"})
	wantStrings(t, "cards_2022", protectedFields(t, c, db, "SELECT * FROM cards_2022"), []string{"public.payment.card"})

	// ab.email is claimed by a.email and b.email: through the views it stays
	// ciphertext, and a write to it is refused, as for the table.
	wantStrings(t, "ab_view", protectedFields(t, c, db, "SELECT * FROM ab_view"), []string{"", "public.b.phone"})
	wantStrings(t, "ab_view2", protectedFields(t, c, db, "SELECT * FROM ab_view2"), []string{""})
	wantStrings(t, "ProtectedColumns(ab_view)", c.ProtectedColumns("public", "ab_view"), []string{"phone", "email"})
	wantStrings(t, "ProtectedColumns(ab_view2)", c.ProtectedColumns("public", "ab_view2"), []string{"e"})
	for _, tc := range [][2]string{{"ab_view", "email"}, {"ab_view2", "e"}} {
		if col, ok := c.Column("public", tc[0], tc[1]); ok {
			t.Errorf("Column(%s, %s) = %v; want no attribution for a conflict", tc[0], tc[1], col)
		}
	}
	// proxy/rewrite refuses to encrypt for a column that is in no policy
	// entry, which is what a conflicted column maps to.
	plan, err := analyze.Analyze("INSERT INTO ab_view2 (e) VALUES ('x')", c.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if lits := plan.Statements[0].Literals; len(lits) != 1 {
		t.Errorf("a write to a conflicted view column: literals %v", lits)
	} else if col, ok := p.Column(lits[0].Column.Schema, lits[0].Column.Table, lits[0].Column.Name); ok {
		t.Errorf("a write to a conflicted view column is encrypted for %v", col.ID)
	}
}

// These index hand-made catalog rows, without a server.

func TestViewOrder(t *testing.T) {
	dep := func(oids ...uint32) []viewDep {
		var out []viewDep
		for _, o := range oids {
			out = append(out, viewDep{oid: o})
		}
		return out
	}
	views := []view{
		{oid: 5, deps: dep(4, 1)},
		{oid: 4, deps: dep(3)},
		{oid: 3, deps: dep(1, 3)}, // a view's rule depends on the view itself
		{oid: 2, deps: dep(1)},
		{oid: 7, deps: dep(8)}, // a cycle
		{oid: 8, deps: dep(7)},
		{oid: 9, deps: dep(8, 2)}, // reads the cycle
	}
	var got []uint32
	for _, v := range viewOrder(views) {
		got = append(got, v.oid)
	}
	// 3 and 2 are ready at once, in the order given; 4 waits for 3, 5 for 4.
	if want := []uint32{3, 2, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("viewOrder = %v, want %v", got, want)
	}
}

func TestBuildViews(t *testing.T) {
	p := mustPolicy(t, pagilaPolicy)
	email, _ := p.Column("public", "customer", "email")
	tn := func(table string) policy.TableName { return policy.TableName{Schema: "public", Table: table} }
	rels := []relation{{root: tn("customer"), oid: 10, name: tn("customer"),
		columns: []string{"id", "email"}, attnums: []int16{1, 2}}}
	customer := viewDep{oid: 10, name: tn("customer"), visible: true}
	views := []view{
		{oid: 20, name: tn("v"), columns: []string{"id", "e"}, attnums: []int16{1, 2}, deps: []viewDep{customer},
			def: "SELECT customer.id, customer.email AS e FROM customer"},
		// Unparsable, and a column count that does not match: left out.
		{oid: 21, name: tn("bad"), columns: []string{"e"}, attnums: []int16{1}, deps: []viewDep{customer}, def: "SELECT ("},
		{oid: 22, name: tn("short"), columns: []string{"e", "f"}, attnums: []int16{1, 2}, deps: []viewDep{customer},
			def: "SELECT customer.email FROM customer"},
		// A relation the view does not depend on is not followed.
		{oid: 23, name: tn("nodep"), columns: []string{"e"}, attnums: []int16{1}, def: "SELECT customer.email FROM customer"},
		// A dependency by the same name but another OID (dropped and created
		// again between the two catalog reads) is not followed.
		{oid: 24, name: tn("stale"), columns: []string{"e"}, attnums: []int16{1},
			deps: []viewDep{{oid: 99, name: tn("customer"), visible: true}}, def: "SELECT customer.email FROM customer"},
		// Over v, listed before it.
		{oid: 19, name: tn("w"), columns: []string{"e"}, attnums: []int16{1},
			deps: []viewDep{{oid: 20, name: tn("v"), visible: true}}, def: "SELECT v.e FROM v"},
	}
	c := &Cache{pol: p}
	c.snap.Store(build(p, rels, views))
	for _, tc := range []struct {
		oid    uint32
		attnum int16
		want   *policy.Column
	}{
		{20, 2, email}, {20, 1, nil}, {19, 1, email}, {21, 1, nil}, {22, 1, nil}, {23, 1, nil}, {24, 1, nil},
	} {
		if got, ok := c.Lookup(tc.oid, tc.attnum); got != tc.want || ok != (tc.want != nil) {
			t.Errorf("Lookup(%d, %d) = %v, %v; want %v", tc.oid, tc.attnum, got, ok, tc.want)
		}
	}
	for _, name := range []string{"bad", "short", "nodep", "stale"} {
		if c.IsProtectedTableName(name) {
			t.Errorf("IsProtectedTableName(%s) = true", name)
		}
	}
	if n := testing.AllocsPerRun(100, func() { c.Lookup(20, 2) }); n != 0 {
		t.Errorf("Lookup of a view attribute allocates %v times", n)
	}
}

// DDL in progress locks a table or a view, and pg_get_viewdef would wait for
// it: Refresh does not wait, and the views it cannot read keep their previous
// definition.
func TestViewsLockedByDDL(t *testing.T) {
	t.Parallel()
	db := newDB(t, `
CREATE TABLE public.customer (customer_id int PRIMARY KEY, email text);
CREATE VIEW public.v AS SELECT customer_id, email FROM public.customer;
CREATE MATERIALIZED VIEW public.mv AS SELECT email FROM public.customer;`)
	c := mustCache(t, mustPolicy(t, pagilaPolicy), db)
	exec(t, db, "CREATE VIEW public.later AS SELECT email FROM public.customer")
	ctx := context.Background()

	for _, ddl := range []string{
		"ALTER TABLE public.customer ADD COLUMN x int", // locks the table every view reads
		"LOCK TABLE public.v IN ACCESS EXCLUSIVE MODE; REFRESH MATERIALIZED VIEW public.mv",
	} {
		tx, err := db.connect(t).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, ddl); err != nil {
			t.Fatal(err)
		}
		refreshCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		err = c.Refresh(refreshCtx)
		cancel()
		if err != nil {
			t.Errorf("%s: Refresh: %v", ddl, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: Refresh waited %v", ddl, d)
		}
		for _, name := range []string{"public.v", "public.mv"} {
			if _, ok := c.Lookup(relOID(t, db, name), int16(map[string]int{"public.v": 2, "public.mv": 1}[name])); !ok {
				t.Errorf("%s: %s lost its attribution", ddl, name)
			}
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A view first seen while locked waits for a Refresh that can read it.
	if c.IsProtectedTableName("later") {
		t.Error("a view read while its table was locked was attributed")
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Lookup(relOID(t, db, "public.later"), 1); !ok {
		t.Error("a view read after the lock went away is not attributed")
	}
}

func TestKeepLocked(t *testing.T) {
	prev := []view{{oid: 1, def: "old 1"}, {oid: 2, def: "old 2"}}
	got := keepLocked([]view{{oid: 1, locked: true}, {oid: 2, def: "new 2"}, {oid: 3, locked: true}}, prev)
	if len(got) != 2 || got[0].def != "old 1" || got[1].def != "new 2" {
		t.Errorf("keepLocked = %+v", got)
	}
}
