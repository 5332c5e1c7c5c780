package catalog

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fleproxy/fleproxy/policy"
)

func mustPolicy(t *testing.T, yaml string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(yaml), t.Name()+".yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustCache(t *testing.T, p *policy.Policy, db *testDB) *Cache {
	t.Helper()
	c, err := New(context.Background(), p, db.connect(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func exec(t *testing.T, db *testDB, sql string) {
	t.Helper()
	if _, err := db.conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// field is one RowDescription field, as the server sent it.
type field struct {
	Name   string
	OID    uint32
	Attnum int16
}

// describe runs query and returns its RowDescription fields, the input the
// proxy's read path gives Lookup.
func describe(t *testing.T, db *testDB, query string) []field {
	t.Helper()
	rows, err := db.conn.Query(context.Background(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []field
	for _, fd := range rows.FieldDescriptions() {
		out = append(out, field{fd.Name, fd.TableOID, int16(fd.TableAttributeNumber)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

func relOID(t *testing.T, db *testDB, name string) uint32 {
	t.Helper()
	var oid uint32
	if err := db.conn.QueryRow(context.Background(), "SELECT $1::regclass::oid", name).Scan(&oid); err != nil {
		t.Fatalf("oid of %s: %v", name, err)
	}
	return oid
}

// protectedFields returns, for each field of query's result, the ID of the
// policy column Lookup attributes it to, or "" when it attributes none.
func protectedFields(t *testing.T, c *Cache, db *testDB, query string) []string {
	t.Helper()
	var ids []string
	for _, f := range describe(t, db, query) {
		id := ""
		if col, ok := c.Lookup(f.OID, f.Attnum); ok {
			id = col.ID
		}
		ids = append(ids, id)
	}
	return ids
}

func wantStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func TestTable(t *testing.T) {
	t.Parallel()
	db := newDB(t, `
CREATE TABLE public.customer (customer_id int PRIMARY KEY, first_name text, email text, phone text);
CREATE VIEW public.customer_view AS SELECT customer_id, email FROM public.customer;`)
	p := mustPolicy(t, `version: 1
columns:
  - {column: public.customer.email, type: text, key: pii, storage: text}
  - {column: public.customer.phone, id: phone, type: text, key: pii, storage: text}
`)
	c := mustCache(t, p, db)

	wantStrings(t, "SELECT * attribution", protectedFields(t, c, db, "SELECT * FROM customer"),
		[]string{"", "", "public.customer.email", "phone"})
	wantStrings(t, "aliased and reordered", protectedFields(t, c, db,
		"SELECT c.phone AS p, c.customer_id, upper(c.email), c.email AS e FROM customer c"),
		[]string{"phone", "", "", "public.customer.email"})
	// A view's plain reference to a protected column is attributed to it
	// (views_test.go has the rest).
	wantStrings(t, "view", protectedFields(t, c, db, "SELECT * FROM customer_view"), []string{"", "public.customer.email"})

	oid := relOID(t, db, "public.customer")
	email, _ := p.Column("public", "customer", "email")
	if got, ok := c.Lookup(oid, 3); !ok || got != email {
		t.Errorf("Lookup(customer, 3) = %v, %v; want the policy's own *Column", got, ok)
	}
	for _, attnum := range []int16{0, 1, 2, 5, -1} {
		if _, ok := c.Lookup(oid, attnum); ok {
			t.Errorf("Lookup(customer, %d) attributed an unprotected attribute", attnum)
		}
	}
	if _, ok := c.Lookup(0, 3); ok {
		t.Error("Lookup(0, 3) attributed a computed column")
	}

	if got, ok := c.Column("public", "customer", "email"); !ok || got != email {
		t.Errorf("Column(public, customer, email) = %v, %v", got, ok)
	}
	if _, ok := c.Column("public", "customer", "first_name"); ok {
		t.Error("Column resolved an unprotected column")
	}
	wantStrings(t, "ProtectedColumns", c.ProtectedColumns("public", "customer"), []string{"email", "phone"})
	wantStrings(t, "ProtectedColumns of a view", c.ProtectedColumns("public", "customer_view"), []string{"email"})
	wantStrings(t, "SchemasOf", c.SchemasOf("customer"), []string{"public"})
	wantStrings(t, "SchemasOf(film)", c.SchemasOf("film"), nil)
	order, ok := c.ColumnOrder("public", "customer")
	if !ok {
		t.Error("ColumnOrder(public, customer) not found")
	}
	wantStrings(t, "ColumnOrder", order, []string{"customer_id", "first_name", "email", "phone"})
	if _, ok := c.ColumnOrder("public", "film"); ok {
		t.Error("ColumnOrder found an unprotected table")
	}
	for name, want := range map[string]bool{"customer": true, "CUSTOMER": true, "Customer": true, "film": false, "customer_view": true, "": false} {
		if got := c.IsProtectedTableName(name); got != want {
			t.Errorf("IsProtectedTableName(%q) = %v", name, got)
		}
	}
	if c.Policy() != p {
		t.Error("Policy() is not the policy given to New")
	}

	// Returned slices are the caller's.
	c.ProtectedColumns("public", "customer")[0] = "x"
	c.SchemasOf("customer")[0] = "x"
	order[0] = "x"
	wantStrings(t, "ProtectedColumns after a caller's write", c.ProtectedColumns("public", "customer"), []string{"email", "phone"})
	wantStrings(t, "SchemasOf after a caller's write", c.SchemasOf("customer"), []string{"public"})
	if order, _ := c.ColumnOrder("public", "customer"); order[0] != "customer_id" {
		t.Error("ColumnOrder returned shared state")
	}
}

func TestPartitions(t *testing.T) {
	t.Parallel()
	// Two levels of partitions; one partition is created on its own with a
	// dropped column and a different column order and attached afterwards, so
	// its attribute numbers differ from its parent's.
	db := newDB(t, `
CREATE TABLE public.payment (payment_id int, customer_id int, card text, paid date) PARTITION BY RANGE (paid);
CREATE TABLE public.payment_2022 PARTITION OF public.payment FOR VALUES FROM ('2022-01-01') TO ('2023-01-01')
	PARTITION BY LIST (customer_id);
CREATE TABLE public.payment_2022_a PARTITION OF public.payment_2022 FOR VALUES IN (1, 2);
CREATE TABLE public.payment_2022_b (junk int, card text, paid date, customer_id int, payment_id int);
ALTER TABLE public.payment_2022_b DROP COLUMN junk;
ALTER TABLE public.payment_2022 ATTACH PARTITION public.payment_2022_b FOR VALUES IN (3, 4);
CREATE TABLE public.payment_2023 PARTITION OF public.payment FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
INSERT INTO public.payment VALUES (1, 1, 'c1', '2022-03-01'), (2, 3, 'c2', '2022-04-01'), (3, 1, 'c3', '2023-04-01');`)
	p := mustPolicy(t, `version: 1
columns:
  - {column: public.payment.card, type: text, key: pii, storage: text}
`)
	c := mustCache(t, p, db)
	card, _ := p.Column("public", "payment", "card")

	for _, tc := range []struct {
		table  string
		attnum int16
	}{
		{"public.payment", 3},
		{"public.payment_2022", 3},
		{"public.payment_2022_a", 3},
		{"public.payment_2022_b", 2},
		{"public.payment_2023", 3},
	} {
		oid := relOID(t, db, tc.table)
		if got, ok := c.Lookup(oid, tc.attnum); !ok || got != card {
			t.Errorf("Lookup(%s, %d) = %v, %v; want payment.card", tc.table, tc.attnum, got, ok)
		}
		wantStrings(t, "SELECT * FROM "+tc.table, protectedFields(t, c, db, "SELECT card, payment_id FROM "+tc.table),
			[]string{"public.payment.card", ""})
	}
	if _, ok := c.Lookup(relOID(t, db, "public.payment_2022_b"), 3); ok {
		t.Error("Lookup(payment_2022_b, 3) attributed paid, whose attnum is card's in the parent")
	}

	for _, table := range []string{"payment", "payment_2022", "payment_2022_a", "payment_2022_b", "payment_2023"} {
		if got, ok := c.Column("public", table, "card"); !ok || got != card {
			t.Errorf("Column(public, %s, card) = %v, %v", table, got, ok)
		}
		wantStrings(t, "ProtectedColumns "+table, c.ProtectedColumns("public", table), []string{"card"})
		wantStrings(t, "SchemasOf "+table, c.SchemasOf(table), []string{"public"})
		if !c.IsProtectedTableName(table) {
			t.Errorf("IsProtectedTableName(%s) = false", table)
		}
	}
	order, _ := c.ColumnOrder("public", "payment_2022_b")
	wantStrings(t, "ColumnOrder(payment_2022_b)", order, []string{"card", "paid", "customer_id", "payment_id"})

	// A partition added later is protected from the next Refresh on.
	exec(t, db, `CREATE TABLE public.payment_2024 PARTITION OF public.payment FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`)
	oid2024 := relOID(t, db, "public.payment_2024")
	if _, ok := c.Lookup(oid2024, 3); ok {
		t.Error("a new partition was attributed before Refresh")
	}
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Lookup(oid2024, 3); !ok || got != card {
		t.Errorf("Lookup(payment_2024, 3) after Refresh = %v, %v", got, ok)
	}
	// A detached partition no longer is.
	exec(t, db, `ALTER TABLE public.payment DETACH PARTITION public.payment_2023`)
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Lookup(relOID(t, db, "public.payment_2023"), 3); ok {
		t.Error("a detached partition is still attributed")
	}
	if c.IsProtectedTableName("payment_2023") {
		t.Error("a detached partition is still a protected name")
	}
}

func TestInheritance(t *testing.T) {
	t.Parallel()
	db := newDB(t, `
CREATE SCHEMA archive;
CREATE TABLE public.person (id int, email text);
CREATE TABLE public.employee (badge int) INHERITS (public.person);
CREATE TABLE archive.old_employee (note text) INHERITS (public.employee);
CREATE TABLE public.contact (email text, phone text);
CREATE TABLE public.both (extra int) INHERITS (public.person, public.contact);`)
	p := mustPolicy(t, `version: 1
columns:
  - {column: public.person.email, type: text, key: pii, storage: text}
  - {column: public.contact.email, type: text, key: pii, storage: text}
  - {column: public.contact.phone, type: text, key: pii, storage: text}
`)
	c := mustCache(t, p, db)
	personEmail, _ := p.Column("public", "person", "email")
	contactPhone, _ := p.Column("public", "contact", "phone")

	for _, table := range []string{"public.person", "public.employee", "archive.old_employee"} {
		wantStrings(t, table, protectedFields(t, c, db, "SELECT id, email FROM "+table), []string{"", "public.person.email"})
	}
	if got, ok := c.Column("archive", "old_employee", "email"); !ok || got != personEmail {
		t.Errorf("Column(archive, old_employee, email) = %v, %v", got, ok)
	}
	wantStrings(t, "SchemasOf(old_employee)", c.SchemasOf("old_employee"), []string{"archive"})

	// public.both inherits email from two protected columns: attributed to
	// neither, but still a protected name for the write path.
	wantStrings(t, "both", protectedFields(t, c, db, "SELECT id, email, phone FROM public.both"),
		[]string{"", "", "public.contact.phone"})
	if got, ok := c.Column("public", "both", "email"); ok {
		t.Errorf("Column(public, both, email) = %v; want no attribution for a conflict", got)
	}
	if got, ok := c.Column("public", "both", "phone"); !ok || got != contactPhone {
		t.Errorf("Column(public, both, phone) = %v, %v", got, ok)
	}
	wantStrings(t, "ProtectedColumns(both)", c.ProtectedColumns("public", "both"), []string{"email", "phone"})
}

func TestDroppedAndReaddedColumn(t *testing.T) {
	t.Parallel()
	db := newDB(t, `CREATE TABLE public.customer (id int, email text, name text)`)
	p := mustPolicy(t, "version: 1\ncolumns:\n  - {column: public.customer.email, type: text, key: pii, storage: text}\n")
	c := mustCache(t, p, db)
	oid := relOID(t, db, "public.customer")
	if _, ok := c.Lookup(oid, 2); !ok {
		t.Fatal("email not attributed at attnum 2")
	}

	exec(t, db, `ALTER TABLE public.customer DROP COLUMN email; ALTER TABLE public.customer ADD COLUMN email text`)
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Lookup(oid, 2); ok {
		t.Error("the dropped attnum 2 is still attributed")
	}
	if col, ok := c.Lookup(oid, 4); !ok || col.Name.Column != "email" {
		t.Errorf("Lookup(customer, 4) = %v, %v; want email", col, ok)
	}
	wantStrings(t, "SELECT *", protectedFields(t, c, db, "SELECT * FROM customer"), []string{"", "", "public.customer.email"})
	order, _ := c.ColumnOrder("public", "customer")
	wantStrings(t, "ColumnOrder", order, []string{"id", "name", "email"})

	// Dropped entirely: nothing to attribute, but still protected by name.
	exec(t, db, `ALTER TABLE public.customer DROP COLUMN email`)
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Lookup(oid, 4); ok {
		t.Error("a dropped column is still attributed")
	}
	wantStrings(t, "ProtectedColumns", c.ProtectedColumns("public", "customer"), []string{"email"})
}

func TestQuotingAndCase(t *testing.T) {
	t.Parallel()
	db := newDB(t, `
CREATE SCHEMA "Sales Data";
CREATE TABLE public."Customer" ("Email" text, email text);
CREATE TABLE public.customer ("Email" text, email text);
CREATE TABLE "Sales Data"."Customer" (id int, "Card ""No""" text);`)
	p := mustPolicy(t, `version: 1
columns:
  - {column: 'public."Customer"."Email"', type: text, key: pii, storage: text}
  - {column: 'PUBLIC.CUSTOMER.EMAIL', type: text, key: pii, storage: text}
  - {column: '"Sales Data"."Customer"."Card ""No"""', type: text, key: pii, storage: text}
`)
	c := mustCache(t, p, db)
	wantStrings(t, `public."Customer"`, protectedFields(t, c, db, `SELECT * FROM public."Customer"`),
		[]string{`public."Customer"."Email"`, ""})
	wantStrings(t, "public.customer", protectedFields(t, c, db, `SELECT * FROM public.customer`),
		[]string{"", "public.customer.email"})
	wantStrings(t, `"Sales Data"."Customer"`, protectedFields(t, c, db, `SELECT * FROM "Sales Data"."Customer"`),
		[]string{"", `"Sales Data"."Customer"."Card ""No"""`})

	wantStrings(t, "ProtectedColumns(public, Customer)", c.ProtectedColumns("public", "Customer"), []string{"Email"})
	wantStrings(t, "ProtectedColumns(public, customer)", c.ProtectedColumns("public", "customer"), []string{"email"})
	wantStrings(t, "ProtectedColumns(PUBLIC, customer)", c.ProtectedColumns("PUBLIC", "customer"), nil)
	wantStrings(t, "SchemasOf(Customer)", c.SchemasOf("Customer"), []string{"Sales Data", "public"})
	wantStrings(t, "SchemasOf(customer)", c.SchemasOf("customer"), []string{"public"})
	wantStrings(t, "SchemasOf(CUSTOMER)", c.SchemasOf("CUSTOMER"), nil)
	if _, ok := c.Column("public", "Customer", "email"); ok {
		t.Error(`Column(public, Customer, email) resolved the unprotected lower-case column`)
	}
	if !c.IsProtectedTableName("CUSTOMER") || !c.IsProtectedTableName("customer") {
		t.Error("IsProtectedTableName is case-sensitive")
	}
}

func TestMissingTableThenCreated(t *testing.T) {
	t.Parallel()
	db := newDB(t, "")
	p := mustPolicy(t, "version: 1\ncolumns:\n  - {column: public.customer.email, type: text, key: pii, storage: text}\n")
	c := mustCache(t, p, db)

	// Protected by name before the table exists, so a write racing the
	// Refresh after CREATE TABLE is still encrypted.
	wantStrings(t, "ProtectedColumns", c.ProtectedColumns("public", "customer"), []string{"email"})
	if col, ok := c.Column("public", "customer", "email"); !ok || col.ID != "public.customer.email" {
		t.Errorf("Column before the table exists = %v, %v", col, ok)
	}
	if !c.IsProtectedTableName("customer") {
		t.Error("IsProtectedTableName before the table exists = false")
	}
	if _, ok := c.ColumnOrder("public", "customer"); ok {
		t.Error("ColumnOrder of a table that does not exist")
	}

	exec(t, db, `CREATE TABLE public.customer (id int, email text)`)
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantStrings(t, "after CREATE TABLE", protectedFields(t, c, db, "SELECT * FROM customer"), []string{"", "public.customer.email"})
	if order, ok := c.ColumnOrder("public", "customer"); !ok || !slices.Equal(order, []string{"id", "email"}) {
		t.Errorf("ColumnOrder = %q, %v", order, ok)
	}
}

func TestRefreshFailureKeepsSnapshot(t *testing.T) {
	t.Parallel()
	db := newDB(t, `CREATE TABLE public.customer (id int, email text)`)
	p := mustPolicy(t, "version: 1\ncolumns:\n  - {column: public.customer.email, type: text, key: pii, storage: text}\n")
	c := mustCache(t, p, db)
	oid := relOID(t, db, "public.customer")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Refresh(ctx); err == nil {
		t.Fatal("Refresh with a cancelled context succeeded")
	}
	if _, ok := c.Lookup(oid, 2); !ok {
		t.Error("a failed Refresh dropped the previous snapshot")
	}
	if _, err := New(ctx, p, db.connect(t)); err == nil {
		t.Error("New with a cancelled context succeeded")
	}
}

func TestConcurrentRefreshAndLookup(t *testing.T) {
	t.Parallel()
	db := newDB(t, `CREATE TABLE public.customer (id int, email text)`)
	p := mustPolicy(t, "version: 1\ncolumns:\n  - {column: public.customer.email, type: text, key: pii, storage: text}\n")
	c := mustCache(t, p, db)
	oid := relOID(t, db, "public.customer")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, ok := c.Lookup(oid, 2); !ok {
					t.Error("Lookup missed during a Refresh")
					return
				}
				c.IsProtectedTableName("customer")
				c.ProtectedColumns("public", "customer")
			}
		}()
	}
	errs := make(chan error, 1)
	go func() {
		errs <- c.RefreshEvery(ctx, time.Millisecond, func(err error) { t.Errorf("RefreshEvery: %v", err) })
	}()
	for range 10 {
		if err := c.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	wg.Wait()
	if err := <-errs; err != context.Canceled {
		t.Errorf("RefreshEvery returned %v", err)
	}
}
