package migrate

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/fleproxy/fleproxy/internal/pgtest"
	"github.com/fleproxy/fleproxy/policy"
)

// viewState is what recreating a view must keep.
type viewState struct {
	oid       uint32
	def       string
	options   []string
	comment   string
	owner     string
	acl       []string
	columns   []string // name:comment:column ACL
	byteaBody bool     // column body is bytea
}

func (f *fixture) viewState(name string) viewState {
	f.t.Helper()
	var v viewState
	err := f.pool.QueryRow(f.ctx, `
SELECT c.oid, pg_get_viewdef(c.oid, true), coalesce(c.reloptions, '{}')::text[],
       coalesce(obj_description(c.oid, 'pg_class'), ''), pg_get_userbyid(c.relowner)::text,
       (SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM (
          SELECT a.grantee::regrole::text || ':' || a.privilege_type || ':' || a.is_grantable || ':' || a.grantor::regrole::text
          FROM aclexplode(c.relacl) a) s(x)),
       (SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM (
          SELECT att.attname || ':' || coalesce(col_description(c.oid, att.attnum), '') || ':' || coalesce(att.attacl::text, '')
          FROM pg_attribute att WHERE att.attrelid = c.oid AND att.attnum > 0) s(x)),
       EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = c.oid AND att.attname = 'body' AND att.atttypid = 'bytea'::regtype)
FROM pg_class c WHERE c.oid = $1::regclass`, name).Scan(&v.oid, &v.def, &v.options, &v.comment, &v.owner, &v.acl, &v.columns, &v.byteaBody)
	if err != nil {
		f.t.Fatalf("view %s: %v", name, err)
	}
	return v
}

func (f *fixture) columnType(table, column string) string {
	f.t.Helper()
	var typ string
	if err := f.pool.QueryRow(f.ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2`, table, column).Scan(&typ); err != nil {
		f.t.Fatal(err)
	}
	return typ
}

// TestAlterType: with Options.AlterType, encrypting a varchar column for storage bytea changes it
// to bytea in one transaction, recreating the views over it (and over those) as they were; without
// it, or when something else depends on the column, the job refuses and changes nothing.
func TestAlterType(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "altertype", 0)
	f.exec(`CREATE TABLE public.docs (id int PRIMARY KEY, title text, body varchar(200))`)
	f.exec(`INSERT INTO public.docs SELECT i, 't' || i,
	  CASE WHEN i % 10 = 0 THEN NULL WHEN i % 7 = 0 THEN '' ELSE 'body ' || i || E' Ünïcødé 日本語 it''s \\ "q"' END
	  FROM generate_series(1, 300) i`)
	f.exec(`CREATE VIEW public.docs_v WITH (security_barrier) AS SELECT id, body, title FROM public.docs WHERE id > 0`)
	f.exec(`CREATE VIEW public.docs_vv WITH (check_option = local) AS SELECT v.id, v.body FROM public.docs_v v WHERE v.id < 1000`)
	f.exec(`CREATE VIEW public.docs_titles AS SELECT id, title FROM public.docs`) // does not use body
	f.exec(`COMMENT ON VIEW public.docs_v IS 'the docs: it''s \ here'`)
	f.exec(`COMMENT ON COLUMN public.docs_vv.body IS 'the body'`)
	f.exec(`GRANT SELECT ON public.docs_v TO ` + pgtest.TrustUser)
	f.exec(`GRANT SELECT (id) ON public.docs_vv TO ` + pgtest.MD5User)
	before := f.snapshot("public.docs", "body")
	views := []string{"public.docs_v", "public.docs_vv"}
	states := map[string]viewState{}
	for _, v := range views {
		states[v] = f.viewState(v)
	}
	if st := states["public.docs_v"]; len(st.acl) < 2 || !slices.Contains(st.options, "security_barrier=true") || st.comment == "" {
		t.Fatalf("fixture: %+v", st)
	}
	if st := states["public.docs_vv"]; !slices.Contains(st.options, "check_option=local") || !strings.Contains(strings.Join(st.columns, " "), pgtest.MD5User+"=r/") {
		t.Fatalf("fixture: %+v", st)
	}
	titles := f.viewState("public.docs_titles")
	col := f.column("public.docs.body")

	// Without AlterType: refused, naming the flag.
	_, err := f.runner.Run(f.ctx, f.job(KindEncrypt, "public.docs.body"), Options{})
	var na *NeedsAlterError
	if !errors.As(err, &na) || !strings.Contains(err.Error(), "--alter-type") {
		t.Fatalf("without AlterType: %v", err)
	}

	// A dry run checks and counts, and changes nothing.
	rep := f.run(KindEncrypt, "public.docs.body", Options{AlterType: true, DryRun: true})
	if rep.TypeChange == nil || !slices.Equal(rep.TypeChange.Views, []string{`"public"."docs_v"`, `"public"."docs_vv"`}) ||
		rep.Changed != 270 || rep.Failed != 0 {
		t.Errorf("dry run: %+v, %+v", rep, rep.TypeChange)
	}
	if typ := f.columnType("public.docs", "body"); typ != "character varying(200)" {
		t.Errorf("dry run changed the column to %s", typ)
	}

	rep = f.run(KindEncrypt, "public.docs.body", Options{AlterType: true, BatchSize: 64})
	if rep.TypeChange == nil || rep.TypeChange.From != "character varying(200)" ||
		!slices.Equal(rep.TypeChange.Views, []string{`"public"."docs_v"`, `"public"."docs_vv"`}) {
		t.Errorf("type change: %+v", rep.TypeChange)
	}
	if rep.State != StateDone || rep.Changed != 270 || rep.Null != 30 || rep.Failed != 0 || rep.ConstraintStatus != ConstraintAdded {
		t.Errorf("encrypt: %+v", rep)
	}
	if typ := f.columnType("public.docs", "body"); typ != "bytea" {
		t.Errorf("column type after: %s", typ)
	}
	f.checkEncrypted("public.docs", col, before)
	for _, v := range views {
		got, want := f.viewState(v), states[v]
		if got.oid == want.oid {
			t.Errorf("%s was not recreated", v)
		}
		if !got.byteaBody || want.byteaBody {
			t.Errorf("%s: body bytea %v after, %v before", v, got.byteaBody, want.byteaBody)
		}
		got.oid, got.byteaBody, want.oid, want.byteaBody = 0, false, 0, false
		if !slices.Equal(got.options, want.options) || got.def != want.def || got.comment != want.comment ||
			got.owner != want.owner || !slices.Equal(got.acl, want.acl) || !slices.Equal(got.columns, want.columns) {
			t.Errorf("%s recreated as\n%+v\nwant\n%+v", v, got, want)
		}
	}
	if got := f.viewState("public.docs_titles"); got.oid != titles.oid {
		t.Error("a view that does not use the column was recreated")
	}
	// The recreated views read the (now bytea) column.
	var n int
	if err := f.pool.QueryRow(f.ctx, `SELECT count(*) FROM public.docs_vv WHERE body IS NOT NULL`).Scan(&n); err != nil || n != 270 {
		t.Errorf("reading the recreated view: %d, %v", n, err)
	}

	// Again: the column is bytea already, nothing to change.
	afterEncrypt := f.snapshot("public.docs", "body")
	rep = f.run(KindEncrypt, "public.docs.body", Options{AlterType: true})
	if rep.TypeChange != nil || rep.Changed != 0 || rep.ConstraintStatus != ConstraintPresent {
		t.Errorf("second run: %+v, %+v", rep, rep.TypeChange)
	}
	if !sameSnapshot(afterEncrypt, f.snapshot("public.docs", "body")) {
		t.Error("the second run changed values")
	}
	if got := f.viewState("public.docs_v"); got.oid == states["public.docs_v"].oid || !got.byteaBody {
		t.Error("view changed by the second run")
	}

	// For a logical bytea, the statement decodes the text form, which the job then reads as the
	// bytes themselves.
	tb := &table{name: policy.TableName{Schema: "public", Table: "t"}, column: "c"}
	stmt := alterStatement(&policy.Column{Type: policy.TypeBytea}, tb)
	if stmt != `ALTER TABLE "public"."t" ALTER COLUMN "c" TYPE bytea USING "c"::text::bytea;` {
		t.Errorf("statement for a logical bytea: %s", stmt)
	}
	var same bool
	if err := f.pool.QueryRow(f.ctx, `SELECT $1::text::bytea = '\x00ff41'::bytea`, `\x00ff41`).Scan(&same); err != nil || !same {
		t.Errorf("text::bytea: %v, %v", same, err)
	}

	// Refusals change nothing.
	f.exec(`CREATE TABLE public.blocked (id int PRIMARY KEY, secret text)`)
	f.exec(`INSERT INTO public.blocked VALUES (1, 'a'), (2, NULL)`)
	f.exec(`CREATE VIEW public.blocked_v AS SELECT id, secret FROM public.blocked`)
	f.exec(`CREATE INDEX blocked_secret_idx ON public.blocked (secret)`)
	refused := func(what string, want ...string) {
		t.Helper()
		v := f.viewState("public.blocked_v")
		_, err := f.runner.Run(f.ctx, f.job(KindEncrypt, "public.blocked.secret"), Options{AlterType: true})
		if err == nil {
			t.Fatalf("%s: not refused", what)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to mention %q", what, err, w)
			}
		}
		if typ := f.columnType("public.blocked", "secret"); typ != "text" {
			t.Errorf("%s: column changed to %s", what, typ)
		}
		if got := f.viewState("public.blocked_v"); got.oid != v.oid {
			t.Errorf("%s: view recreated", what)
		}
	}
	refused("index", "index public.blocked_secret_idx", "nothing was changed")
	var de *DependentsError
	if _, err := f.runner.Run(f.ctx, f.job(KindEncrypt, "public.blocked.secret"), Options{AlterType: true, DryRun: true}); !errors.As(err, &de) || len(de.Objects) != 1 {
		t.Errorf("dry run with an index: %v", err)
	}
	f.exec(`DROP INDEX public.blocked_secret_idx`)
	f.exec(`CREATE MATERIALIZED VIEW public.blocked_m AS SELECT id, secret FROM public.blocked_v`)
	refused("materialized view", "materialized view", "blocked_m")
	f.exec(`DROP MATERIALIZED VIEW public.blocked_m`)
	// A view that cannot be recreated over a bytea column: the transaction rolls back.
	f.exec(`CREATE VIEW public.blocked_upper AS SELECT id, upper(secret) AS s FROM public.blocked_v`)
	refused("view over text", "blocked_upper", "nothing was changed")
	f.exec(`DROP VIEW public.blocked_upper`)
	rep = f.run(KindEncrypt, "public.blocked.secret", Options{AlterType: true})
	if rep.TypeChange == nil || len(rep.TypeChange.Views) != 1 || rep.Changed != 1 {
		t.Errorf("blocked after the fixes: %+v, %+v", rep, rep.TypeChange)
	}
}
