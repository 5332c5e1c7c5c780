package catalog

// Tests of policy.Policy.CheckAgainstCatalog live here, beside the other tests
// that need a PostgreSQL server, so that package policy's own tests stay pure
// Go.

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/fleproxy/fleproxy/policy"
)

func prob(line int, field, msg string) policy.Problem {
	return policy.Problem{Line: line, Field: field, Msg: msg}
}

func checkProblems(t *testing.T, p *policy.Policy, q policy.Querier) []policy.Problem {
	t.Helper()
	err := p.CheckAgainstCatalog(context.Background(), q)
	if err == nil {
		return nil
	}
	var ve *policy.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("CheckAgainstCatalog: %v", err)
	}
	if ve.Source != p.Source() {
		t.Errorf("Source = %q, want %q", ve.Source, p.Source())
	}
	return ve.Problems
}

func TestCheckAgainstCatalogProblems(t *testing.T) {
	t.Parallel()
	db := newDB(t, `
CREATE DOMAIN public.ct_bytea AS bytea;
CREATE DOMAIN public.ct_bytea2 AS public.ct_bytea;
CREATE DOMAIN public.ct_short AS varchar(100);
CREATE TABLE public.customer (
	customer_id int GENERATED ALWAYS AS IDENTITY,
	first_name text NOT NULL,
	email text,
	email_b bytea,
	email_d public.ct_bytea2,
	code char(10),
	nick varchar(20),
	note varchar(300),
	bio varchar,
	short public.ct_short,
	age int,
	status text DEFAULT 'new',
	lower_email text GENERATED ALWAYS AS (lower(email)) STORED
);
CREATE VIEW public.customer_view AS SELECT email FROM public.customer;
CREATE TABLE public.payment (id int, card text) PARTITION BY LIST (id);
CREATE TABLE public.payment_1 PARTITION OF public.payment FOR VALUES IN (1) PARTITION BY LIST (id);
CREATE TABLE public.payment_1a PARTITION OF public.payment_1 FOR VALUES IN (1);
CREATE TABLE public.a (email text);
CREATE TABLE public.b (email text);
CREATE TABLE public.ab () INHERITS (public.a, public.b);
DO $$ BEGIN CREATE ROLE check_us_service; EXCEPTION WHEN duplicate_object THEN NULL; END $$;`)

	p := mustPolicy(t, `version: 1
columns:
  - {column: public.customer.emial, type: text, key: pii, storage: text}
  - {column: public.custmer.email, type: text, key: pii}
  - {column: nope.customer.email, type: text, key: pii}
  - {column: public.customer_view.email, type: text, key: pii, storage: text}
  - {column: public.customer.email, type: text, key: pii}
  - {column: public.customer.email_b, type: text, key: pii}
  - {column: public.customer.email_d, type: text, key: pii}
  - {column: public.customer.code, type: bpchar, key: pii, storage: text}
  - {column: public.customer.nick, type: varchar, key: pii, storage: text}
  - {column: public.customer.note, type: varchar, key: pii, storage: text}
  - {column: public.customer.bio, type: varchar, key: pii, storage: text}
  - {column: public.customer.short, type: varchar, key: pii, storage: text}
  - {column: public.customer.age, type: int4, key: pii, storage: text}
  - {column: public.customer.status, type: text, key: pii, storage: text}
  - {column: public.customer.customer_id, type: int4, key: pii, storage: bytea}
  - {column: public.customer.lower_email, type: text, key: pii, storage: text}
  - {column: public.payment.card, type: text, key: pii, storage: text}
  - {column: public.payment_1a.card, type: text, key: pii, storage: text}
  - {column: public.a.email, type: text, key: pii, storage: text}
  - {column: public.b.email, type: text, key: pii, storage: text}
cleared:
  roles: [check_us_service, check_no_such_role]
`)
	want := []policy.Problem{
		prob(3, "columns[0].column", "column public.customer.emial does not exist (table public.customer has: customer_id, first_name, email, email_b, email_d, code, nick, note, bio, short, age, status, lower_email)"),
		prob(4, "columns[1].column", "column public.custmer.email: table public.custmer does not exist"),
		prob(5, "columns[2].column", "column nope.customer.email: schema nope does not exist"),
		prob(6, "columns[3].column", "column public.customer_view.email: public.customer_view is a view; protect the column of the table behind it (view columns are not decrypted)"),
		prob(7, "columns[4].column", "column public.customer.email has type text, but storage bytea needs a bytea column (change the column to bytea, or write storage: text)"),
		prob(10, "columns[7].column", "column public.customer.code has type character(10), which pads values with spaces: storage text needs text or varchar"),
		prob(11, "columns[8].column", "column public.customer.nick has type character varying(20), too short for armoured ciphertext: storage text needs text, varchar, or varchar(n) with n of at least 256"),
		prob(14, "columns[11].column", "column public.customer.short has type ct_short, too short for armoured ciphertext: storage text needs text, varchar, or varchar(n) with n of at least 256"),
		prob(15, "columns[12].column", "column public.customer.age has type integer, but storage text needs a text or varchar column (or write storage: bytea for a bytea column)"),
		prob(16, "columns[13].column", "column public.customer.status has a default, which the database would store unencrypted; drop it (ALTER TABLE ... ALTER COLUMN ... DROP DEFAULT)"),
		prob(17, "columns[14].column", "column public.customer.customer_id is an identity column; the database generates its values, so the proxy cannot encrypt them"),
		prob(17, "columns[14].column", "column public.customer.customer_id has type integer, but storage bytea needs a bytea column (change the column to bytea, or write storage: text)"),
		prob(18, "columns[15].column", "column public.customer.lower_email is a generated column; the database computes its values, so the proxy cannot encrypt them"),
		prob(20, "columns[17].column", "column public.payment_1a.card inherits from protected column public.payment.card (line 19); remove this entry: descendants of a protected table are protected by the ancestor's entry, and a second id would make rows read through the ancestor undecryptable"),
		prob(22, "columns[19].column", "column public.ab.email inherits from both public.a.email (line 21) and public.b.email; a value could not be decrypted under two ids, so protect one common ancestor only"),
		prob(24, "cleared.roles[1]", `role "check_no_such_role" does not exist`),
	}
	got := checkProblems(t, p, db.conn)
	if !slices.Equal(got, want) {
		t.Errorf("problems:")
		for i := range max(len(got), len(want)) {
			var g, w policy.Problem
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf(" got %s\nwant %s", g, w)
			}
		}
	}

	// The whole error reads as one report.
	err := p.CheckAgainstCatalog(context.Background(), db.conn)
	if err == nil || !errors.As(err, new(*policy.ValidationError)) {
		t.Fatalf("CheckAgainstCatalog = %v", err)
	}
	t.Logf("%v", err)
}

func TestCheckAgainstCatalogQuoting(t *testing.T) {
	t.Parallel()
	db := newDB(t, `
CREATE SCHEMA "Sales";
CREATE TABLE "Sales"."Customer" ("E-mail" text, email bytea);`)
	p := mustPolicy(t, `version: 1
columns:
  - {column: '"Sales"."Customer"."E-mail"', type: text, key: pii, storage: text}
  - {column: '"Sales"."Customer".email', type: text, key: pii}
  - {column: '"Sales"."Customer"."Email"', type: text, key: pii}
  - {column: 'sales.customer.email', type: text, key: pii}
`)
	want := []policy.Problem{
		prob(5, "columns[2].column", `column "Sales"."Customer"."Email" does not exist (table "Sales"."Customer" has: "E-mail", email)`),
		prob(6, "columns[3].column", "column sales.customer.email: schema sales does not exist"),
	}
	if got := checkProblems(t, p, db.conn); !slices.Equal(got, want) {
		t.Errorf("problems:\n got %v\nwant %v", got, want)
	}
}

func TestCheckAgainstCatalogQueryError(t *testing.T) {
	t.Parallel()
	db := newDB(t, "")
	p := mustPolicy(t, "version: 1\ncolumns:\n  - {column: public.customer.email, type: text, key: pii}\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.CheckAgainstCatalog(ctx, db.conn)
	if err == nil || errors.As(err, new(*policy.ValidationError)) || !errors.Is(err, context.Canceled) {
		t.Errorf("CheckAgainstCatalog with a cancelled context = %v; want a wrapped context.Canceled", err)
	}
}

// TestQuickstartPolicy checks examples/quickstart/policy.yaml against the
// unmodified pagila schema, and that the cache attributes its columns.
func TestQuickstartPolicy(t *testing.T) {
	t.Parallel()
	schema, err := os.ReadFile("../../examples/quickstart/pagila/pagila-schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	db := newDB(t, string(schema)+`
DO $$ BEGIN CREATE ROLE us_service; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE us_support; EXCEPTION WHEN duplicate_object THEN NULL; END $$;`)
	p, err := policy.Load("../../examples/quickstart/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckAgainstCatalog(context.Background(), db.conn); err != nil {
		t.Fatalf("CheckAgainstCatalog: %v", err)
	}
	if names := p.Identities(); len(names) == 0 || names[0].Name != "us-service" {
		t.Errorf("the quickstart's first identity is not us-service: %v", names)
	}
	c := mustCache(t, p, db)
	wantStrings(t, "address", protectedFields(t, c, db, "SELECT address_id, address, address2, district, postal_code, phone FROM public.address"),
		[]string{"", "address.address", "address.address2", "", "address.postal_code", "address.phone"})
	wantStrings(t, "customer", protectedFields(t, c, db, "SELECT customer_id, email FROM public.customer"),
		[]string{"", "customer.email"})
	wantStrings(t, "customer_list view", protectedFields(t, c, db, "SELECT address, phone, name FROM public.customer_list"),
		[]string{"address.address", "address.phone", ""})
	wantStrings(t, "staff_list view", protectedFields(t, c, db, `SELECT "zip code", id FROM public.staff_list`),
		[]string{"address.postal_code", ""})
}
