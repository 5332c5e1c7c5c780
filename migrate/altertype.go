package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// TypeChange describes the change of a column to bytea that an encrypt job
// made first (Options.AlterType), or for a dry run, would make.
type TypeChange struct {
	// From is the column's type before, e.g. "text" or "character varying(200)".
	From string `json:"from"`
	// Statement is the ALTER TABLE that changed it.
	Statement string `json:"statement"`
	// Views lists the views that use the column, directly or through other
	// views, which were dropped and recreated around the ALTER TABLE, in the
	// order they were recreated.
	Views []string `json:"views"`
}

// DependentsError is returned by an encrypt job with Options.AlterType when
// the column cannot be changed to bytea by dropping and recreating views:
// other objects (indexes, constraints, defaults, rules, triggers, policies,
// functions with SQL bodies, …) or materialized views depend on it. Nothing
// was changed.
type DependentsError struct {
	Column string
	// Objects names the objects in the way, as PostgreSQL describes them.
	Objects []string
	// Materialized names the materialized views in the way.
	Materialized []string
	// Statement is the ALTER TABLE to run by hand once they are dealt with.
	Statement string
}

func (e *DependentsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "migrate: column %s: cannot change its type to bytea by dropping and recreating the views that use it", e.Column)
	if len(e.Objects) > 0 {
		fmt.Fprintf(&b, "; these objects depend on it and are not views: %s", strings.Join(e.Objects, "; "))
	}
	if len(e.Materialized) > 0 {
		fmt.Fprintf(&b, "; these materialized views depend on it, whose data recreating would lose until refreshed: %s", strings.Join(e.Materialized, "; "))
	}
	fmt.Fprintf(&b, "; nothing was changed: drop them (and recreate them afterwards), or change the column by hand with\n  %s\nthen run the job again", e.Statement)
	return b.String()
}

// viewDef is what it takes to recreate a view exactly: its definition, kind,
// owner, options, comments and privileges.
type viewDef struct {
	oid     uint32
	reltype uint32
	schema  string
	name    string
	kind    string // "v" (or "m", refused)
	owner   string
	options []string // reloptions, "name=value"
	def     string   // pg_get_viewdef(oid, true)
	comment *string
	hasACL  bool // relacl is not NULL
	acl     []aclItem
	// column comments, by column name
	colComments [][2]string
	depth       int // 1 for views that use the column itself
}

// aclItem is one privilege of one grantee (aclexplode), on the view or one
// of its columns.
type aclItem struct {
	column    string // "" for the view itself
	grantor   string
	grantee   string // "" for PUBLIC
	privilege string
	grantable bool
}

func (v *viewDef) ident() string { return pgx.Identifier{v.schema, v.name}.Sanitize() }

// dependent is one row of pg_depend naming an object that depends on a
// relation (or a column of it, or its row type).
type dependent struct {
	class    string // the catalog of the object, e.g. "pg_rewrite"
	objid    uint32
	deptype  string
	desc     string // pg_describe_object
	evClass  uint32 // for a rule: its relation
	ruleName string
	relkind  string // for a rule: its relation's kind
}

// dependents lists what depends on relation rel (on its column attnum if
// attnum > 0, else on any of it or on its row type reltype).
func dependents(ctx context.Context, q Querier, rel uint32, attnum int16, reltype uint32) ([]dependent, error) {
	rows, err := q.Query(ctx, `
SELECT d.classid::pg_catalog.regclass::text, d.objid, d.deptype::text,
       coalesce(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), d.classid::pg_catalog.regclass::text || ' ' || d.objid),
       coalesce(r.ev_class, 0), coalesce(r.rulename::text, ''), coalesce(c.relkind::text, '')
FROM pg_catalog.pg_depend d
LEFT JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid = d.objid
LEFT JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
WHERE (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1 AND ($2 <= 0 OR d.refobjsubid = $2))
   OR (d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.refobjid = $3 AND $3 <> 0)
ORDER BY 1, 2`, rel, attnum, reltype)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (dependent, error) {
		var d dependent
		err := r.Scan(&d.class, &d.objid, &d.deptype, &d.desc, &d.evClass, &d.ruleName, &d.relkind)
		return d, err
	})
}

// findViews finds the views that use column attnum of table t, directly or
// through other views, in dependency order (a view after the views it
// uses), with what it takes to recreate them. It returns a
// *DependentsError if anything but plain views depends on the column or on
// those views.
func findViews(ctx context.Context, q Querier, t *table, statement, column string) ([]*viewDef, error) {
	derr := &DependentsError{Column: column, Statement: statement}
	views := map[uint32]*viewDef{}
	blocked := map[string]bool{}
	block := func(desc string) {
		if !blocked[desc] {
			blocked[desc] = true
			derr.Objects = append(derr.Objects, desc)
		}
	}

	// visit records that view oid depends on something at depth-1, and
	// explores what depends on it if it is new or got deeper.
	var visit func(oid uint32, depth int) error
	visit = func(oid uint32, depth int) error {
		v := views[oid]
		if v != nil && v.depth >= depth {
			return nil
		}
		if v == nil {
			var err error
			if v, err = readView(ctx, q, oid); err != nil {
				return err
			}
			views[oid] = v
			if v.kind == "m" {
				derr.Materialized = append(derr.Materialized, "materialized view "+v.ident())
			}
		}
		v.depth = depth
		deps, err := dependents(ctx, q, oid, 0, v.reltype)
		if err != nil {
			return err
		}
		for _, d := range deps {
			switch {
			case d.class == "pg_rewrite" && d.evClass == oid:
				// The view's own _RETURN rule.
			case d.class == "pg_type" && d.deptype == "i":
				// The view's row type, and its array type.
			case d.class == "pg_rewrite" && d.ruleName == "_RETURN" && (d.relkind == "v" || d.relkind == "m"):
				if err := visit(d.evClass, depth+1); err != nil {
					return err
				}
			default:
				block(d.desc)
			}
		}
		return nil
	}

	deps, err := dependents(ctx, q, t.oid, t.attnum, 0)
	if err != nil {
		return nil, err
	}
	for _, d := range deps {
		if d.class == "pg_rewrite" && d.ruleName == "_RETURN" && (d.relkind == "v" || d.relkind == "m") && d.evClass != t.oid {
			if err := visit(d.evClass, 1); err != nil {
				return nil, err
			}
			continue
		}
		block(d.desc)
	}
	if len(derr.Objects) > 0 || len(derr.Materialized) > 0 {
		return nil, derr
	}
	out := make([]*viewDef, 0, len(views))
	for _, v := range views {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *viewDef) int {
		if a.depth != b.depth {
			return a.depth - b.depth
		}
		return int(a.oid) - int(b.oid)
	})
	return out, nil
}

// readView reads what it takes to recreate view oid.
func readView(ctx context.Context, q Querier, oid uint32) (*viewDef, error) {
	v := &viewDef{oid: oid}
	err := q.QueryRow(ctx, `
SELECT n.nspname::text, c.relname::text, c.relkind::text, c.reltype, pg_catalog.pg_get_userbyid(c.relowner)::text,
       coalesce(c.reloptions, '{}')::text[], pg_catalog.pg_get_viewdef(c.oid, true),
       pg_catalog.obj_description(c.oid, 'pg_class'), c.relacl IS NOT NULL
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1`, oid).Scan(&v.schema, &v.name, &v.kind, &v.reltype, &v.owner, &v.options, &v.def, &v.comment, &v.hasACL)
	if err != nil {
		return nil, fmt.Errorf("reading view %d: %w", oid, err)
	}
	rows, err := q.Query(ctx, `
SELECT '', pg_catalog.pg_get_userbyid(a.grantor)::text,
       CASE WHEN a.grantee = 0 THEN '' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END,
       a.privilege_type, a.is_grantable
FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
WHERE c.oid = $1
UNION ALL
SELECT att.attname::text, pg_catalog.pg_get_userbyid(a.grantor)::text,
       CASE WHEN a.grantee = 0 THEN '' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END,
       a.privilege_type, a.is_grantable
FROM pg_catalog.pg_attribute att, pg_catalog.aclexplode(att.attacl) a
WHERE att.attrelid = $1 AND att.attnum > 0 AND NOT att.attisdropped`, oid)
	if err != nil {
		return nil, fmt.Errorf("reading the privileges of view %s: %w", v.ident(), err)
	}
	v.acl, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (aclItem, error) {
		var a aclItem
		err := r.Scan(&a.column, &a.grantor, &a.grantee, &a.privilege, &a.grantable)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the privileges of view %s: %w", v.ident(), err)
	}
	rows, err = q.Query(ctx, `
SELECT a.attname::text, pg_catalog.col_description(a.attrelid, a.attnum)
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND pg_catalog.col_description(a.attrelid, a.attnum) IS NOT NULL
ORDER BY a.attnum`, oid)
	if err != nil {
		return nil, fmt.Errorf("reading the column comments of view %s: %w", v.ident(), err)
	}
	v.colComments, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var c [2]string
		err := r.Scan(&c[0], &c[1])
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the column comments of view %s: %w", v.ident(), err)
	}
	return v, nil
}

// quoteLiteral quotes s as an SQL string literal, whatever
// standard_conforming_strings says.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return `E'` + strings.ReplaceAll(s, `\`, `\\`) + `'`
	}
	return "'" + s + "'"
}

// recreate returns the statements that recreate v as it was.
func (v *viewDef) recreate() []string {
	id := v.ident()
	var with string
	if len(v.options) > 0 {
		opts := make([]string, len(v.options))
		for i, o := range v.options {
			name, value, _ := strings.Cut(o, "=")
			opts[i] = pgx.Identifier{name}.Sanitize() + " = " + quoteLiteral(value)
		}
		with = " WITH (" + strings.Join(opts, ", ") + ")"
	}
	def := strings.TrimSuffix(strings.TrimSpace(v.def), ";")
	stmts := []string{
		"CREATE VIEW " + id + with + " AS " + def,
		"ALTER VIEW " + id + " OWNER TO " + pgx.Identifier{v.owner}.Sanitize(),
	}
	if v.comment != nil {
		stmts = append(stmts, "COMMENT ON VIEW "+id+" IS "+quoteLiteral(*v.comment))
	}
	for _, c := range v.colComments {
		stmts = append(stmts, "COMMENT ON COLUMN "+id+"."+pgx.Identifier{c[0]}.Sanitize()+" IS "+quoteLiteral(c[1]))
	}
	if v.hasACL {
		// A new view has the default privileges (all to its owner): start from
		// none, as pg_dump does, then grant what there was.
		stmts = append(stmts, "REVOKE ALL ON "+id+" FROM "+pgx.Identifier{v.owner}.Sanitize())
	}
	// Grants made by the owner first: others may rest on a grant option.
	acl := slices.Clone(v.acl)
	slices.SortStableFunc(acl, func(a, b aclItem) int {
		ao, bo := a.grantor == v.owner, b.grantor == v.owner
		switch {
		case ao == bo:
			return 0
		case ao:
			return -1
		}
		return 1
	})
	for _, a := range acl {
		if a.column == "" && !v.hasACL {
			continue
		}
		priv := a.privilege
		if a.column != "" {
			priv += " (" + pgx.Identifier{a.column}.Sanitize() + ")"
		}
		grantee := "PUBLIC"
		if a.grantee != "" {
			grantee = pgx.Identifier{a.grantee}.Sanitize()
		}
		g := "GRANT " + priv + " ON " + id + " TO " + grantee
		if a.grantable {
			g += " WITH GRANT OPTION"
		}
		if a.grantor != v.owner {
			// Recorded under its grantor, who holds the grant option.
			stmts = append(stmts, "SET LOCAL ROLE "+pgx.Identifier{a.grantor}.Sanitize(), g, "RESET ROLE")
			continue
		}
		stmts = append(stmts, g)
	}
	return stmts
}

// planAlter checks, without changing anything, that the column can be
// changed to bytea with its views recreated, and returns what it would do.
func (x *execution) planAlter(ctx context.Context) (*TypeChange, error) {
	tx, err := x.conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("migrate: job %s: %w", x.id, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	views, err := findViews(ctx, tx, x.t, x.alter.Statement, x.alter.Column)
	if err != nil {
		return nil, x.alterError(err)
	}
	return x.typeChange(views), nil
}

func (x *execution) typeChange(views []*viewDef) *TypeChange {
	tc := &TypeChange{From: x.alter.Type, Statement: x.alter.Statement, Views: []string{}}
	for _, v := range views {
		tc.Views = append(tc.Views, v.ident())
	}
	return tc
}

func (x *execution) alterError(err error) error {
	var de *DependentsError
	if errors.As(err, &de) {
		return err
	}
	return fmt.Errorf("migrate: job %s: changing column %s to bytea (nothing was changed): %w", x.id, x.job.Column.Name, err)
}

// alterToBytea changes the column to bytea, keeping each value's text as
// UTF-8 bytes, in one transaction: it drops the views that use the column
// (and the views over those), alters the column, and recreates the views
// with their owners, options, comments and privileges. It returns nil if the
// column turned out to be bytea already.
func (x *execution) alterToBytea(ctx context.Context) (*TypeChange, error) {
	tx, err := x.conn.Begin(ctx)
	if err != nil {
		return nil, x.alterError(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Names in view definitions come out schema-qualified, and are read back
	// the same, whatever the role's search_path.
	for _, s := range []string{
		"SET LOCAL lock_timeout = '" + ddlLockTimeout + "'",
		"SET LOCAL search_path = pg_catalog, pg_temp",
		"LOCK TABLE " + x.t.from() + " IN ACCESS EXCLUSIVE MODE",
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return nil, x.alterError(err)
		}
	}
	// Under the lock, look again: another run may have changed it.
	t, err := inspect(ctx, tx, x.job.Column)
	if err != nil {
		return nil, err
	}
	if t.baseType == oidBytea {
		return nil, nil
	}
	views, err := findViews(ctx, tx, t, x.alter.Statement, x.alter.Column)
	if err != nil {
		return nil, x.alterError(err)
	}
	step := func(what, stmt string) error {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return x.alterError(fmt.Errorf("%s: %w", what, err))
		}
		return nil
	}
	for i := len(views) - 1; i >= 0; i-- {
		if err := step("dropping view "+views[i].ident(), "DROP VIEW "+views[i].ident()); err != nil {
			return nil, err
		}
	}
	if err := step("altering the column", strings.TrimSuffix(x.alter.Statement, ";")); err != nil {
		return nil, err
	}
	for _, v := range views {
		for _, s := range v.recreate() {
			if err := step("recreating view "+v.ident()+" over the bytea column", s); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, x.alterError(err)
	}
	// Statements this connection prepared before read the column as text.
	if err := x.conn.Conn().DeallocateAll(ctx); err != nil {
		return nil, fmt.Errorf("migrate: job %s: %w", x.id, err)
	}
	return x.typeChange(views), nil
}
