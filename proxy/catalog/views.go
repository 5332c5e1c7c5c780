package catalog

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy/analyze"
)

// view is one row of readViews: a view or materialized view that reads a
// protected table, directly or through other views.
type view struct {
	oid     uint32
	name    policy.TableName
	columns []string // in attnum order
	attnums []int16
	def     string // pg_get_viewdef
	deps    []viewDep
	// locked reports that def was not read because the view, or a relation
	// it reads, is locked by DDL in progress (see readViews).
	locked bool
}

// viewDep is a relation a view's query names.
type viewDep struct {
	oid  uint32
	name policy.TableName
	// visible reports that the relation is the one its unqualified name
	// denotes on the search_path pg_get_viewdef ran with, so def may name it
	// unqualified; every other relation def names with its schema.
	visible bool
}

// viewLockTimeout bounds the wait of pg_get_viewdef for a lock, where the
// querier can open a transaction to set it (see readViews).
const viewLockTimeout = "500ms"

// readViews reads the views and materialized views that depend, at any
// depth, on one of the relations roots: a view's _RETURN rule depends
// (pg_depend) on every relation its query names. Each comes with its
// definition and the relations that definition names.
//
// pg_get_viewdef takes an ACCESS SHARE lock on the view and on every relation
// it reads, so it waits behind DDL in progress (an ALTER TABLE in an open
// migration transaction, TRUNCATE, a REFRESH MATERIALIZED VIEW) and would hold
// up the Refresh that the proxy runs after each DDL statement. A view for
// which such a lock is held or awaited is therefore returned without its
// definition (locked), and, where q can open a transaction (*pgx.Conn,
// *pgxpool.Pool), a lock taken in between makes the read fail after
// viewLockTimeout instead of waiting.
func readViews(ctx context.Context, q policy.Querier, roots []uint32) (views []view, err error) {
	if len(roots) == 0 {
		return nil, nil
	}
	if b, ok := q.(interface {
		Begin(context.Context) (pgx.Tx, error)
	}); ok {
		tx, err := b.Begin(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading views: %w", err)
		}
		// Only read: rolling back ends the transaction.
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+viewLockTimeout+"'"); err != nil {
			return nil, fmt.Errorf("reading views: %w", err)
		}
		q = tx
	}
	// pg_get_viewdef and pg_table_is_visible run in one statement, so they
	// see the same search_path. UNION ends the recursion on a diamond. CASE
	// does not evaluate pg_get_viewdef for a locked view.
	rows, err := q.Query(ctx, `
WITH RECURSIVE dep(relid) AS (
	SELECT unnest($1::pg_catalog.oid[])
	UNION
	SELECT r.ev_class
	FROM dep
	JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
		AND d.refobjid = dep.relid AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
	JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid AND r.rulename = '_RETURN'
), locked AS (
	SELECT coalesce(array_agg(l.relation), '{}') AS rels
	FROM pg_catalog.pg_locks l
	WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
		AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
)
SELECT c.oid, n.nspname, c.relname,
	CASE WHEN c.oid = ANY (locked.rels) OR coalesce(u.oids, '{}') && locked.rels THEN NULL
		ELSE pg_catalog.pg_get_viewdef(c.oid, true) END,
	ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
	ARRAY(SELECT a.attnum FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
	coalesce(u.oids, '{}'), coalesce(u.schemas, '{}'), coalesce(u.names, '{}'), coalesce(u.visible, '{}')
FROM dep
JOIN pg_catalog.pg_class c ON c.oid = dep.relid AND c.relkind IN ('v', 'm')
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid AND r.rulename = '_RETURN'
CROSS JOIN locked
LEFT JOIN LATERAL (
	SELECT array_agg(uc.oid ORDER BY uc.oid) AS oids,
		array_agg(un.nspname::text ORDER BY uc.oid) AS schemas,
		array_agg(uc.relname::text ORDER BY uc.oid) AS names,
		array_agg(pg_catalog.pg_table_is_visible(uc.oid) ORDER BY uc.oid) AS visible
	FROM (SELECT DISTINCT d.refobjid FROM pg_catalog.pg_depend d
		WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
			AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> c.oid) ud
	JOIN pg_catalog.pg_class uc ON uc.oid = ud.refobjid
	JOIN pg_catalog.pg_namespace un ON un.oid = uc.relnamespace
) u ON true
ORDER BY c.oid`, roots)
	if err != nil {
		return nil, fmt.Errorf("reading views: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			v        view
			def      *string
			oids     []uint32
			schemas  []string
			names    []string
			visibles []bool
		)
		if err := rows.Scan(&v.oid, &v.name.Schema, &v.name.Table, &def, &v.columns, &v.attnums,
			&oids, &schemas, &names, &visibles); err != nil {
			return nil, fmt.Errorf("reading views: %w", err)
		}
		if def != nil {
			v.def = *def
		} else {
			v.locked = true
		}
		for i := range oids {
			v.deps = append(v.deps, viewDep{
				oid:     oids[i],
				name:    policy.TableName{Schema: schemas[i], Table: names[i]},
				visible: visibles[i],
			})
		}
		views = append(views, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading views: %w", err)
	}
	return views, nil
}

// keepLocked replaces each locked view by the same view as the previous
// snapshot had it, if it had it, and drops it otherwise: its columns then
// stay unattributed until a Refresh can read it.
func keepLocked(views []view, prev []view) []view {
	out := views[:0]
	for _, v := range views {
		if v.locked {
			i := slices.IndexFunc(prev, func(p view) bool { return p.oid == v.oid })
			if i < 0 {
				continue
			}
			v = prev[i]
		}
		out = append(out, v)
	}
	return out
}

// relationOIDs returns the OIDs of the relations read.
func relationOIDs(rels []relation) []uint32 {
	oids := make([]uint32, 0, len(rels))
	for _, r := range rels {
		oids = append(oids, r.oid)
	}
	slices.Sort(oids)
	return slices.Compact(oids)
}

// addViews attributes the columns of each view that are plain references to
// protected columns (analyze.ViewColumns), a view after the views it reads.
// A view with such a column becomes a protected relation like a table: Lookup
// resolves its attribute to the base policy column, and the write path sees
// its name, its columns and which of them are protected. A view column that
// passes on a column claimed by two policy columns is protected, attributed
// to neither. A view whose definition cannot be analysed, or which is in a
// cycle of views, is left out: its columns stay ciphertext.
func (b *builder) addViews(views []view) {
	if len(views) == 0 {
		return
	}
	b.viewColumns = make(map[policy.TableName][]string, len(views))
	b.conflicted = make(map[analyze.Column]bool)
	for i := range views {
		b.viewColumns[views[i].name] = views[i].columns
		b.oids[views[i].name] = views[i].oid
	}
	for _, v := range viewOrder(views) {
		b.addView(v)
	}
}

// addView attributes one view's columns.
func (b *builder) addView(v *view) {
	cols, err := analyze.ViewColumns(v.def, viewSchema{b: b, deps: v.deps})
	if err != nil || len(cols) != len(v.columns) {
		return
	}
	var t *table
	for i, c := range cols {
		if c == nil {
			continue
		}
		var col *policy.Column // nil: claimed by two policy columns
		if !b.conflicted[*c] {
			col, _ = b.pol.Column(c.Schema, c.Table, c.Name)
		}
		if t == nil {
			t = b.tableOf(v.name)
			t.exists = true
			t.columns = v.columns
		}
		name := v.columns[i]
		b.claim(t, name, col)
		if col != nil && t.protected[name] == col {
			b.s.attrs[attrKey{v.oid, v.attnums[i]}] = col
		}
	}
}

// viewOrder returns the views so that each comes after the views it reads
// (Kahn's algorithm; among views ready at once, in the order given). Views in
// a cycle, and views reading one, are left out.
func viewOrder(views []view) []*view {
	byOID := make(map[uint32]*view, len(views))
	for i := range views {
		byOID[views[i].oid] = &views[i]
	}
	waiting := make(map[uint32]int, len(views)) // views read and not yet placed
	readers := make(map[uint32][]*view)
	var ready []*view
	for i := range views {
		v := &views[i]
		for _, d := range v.deps {
			if byOID[d.oid] != nil && d.oid != v.oid {
				waiting[v.oid]++
				readers[d.oid] = append(readers[d.oid], v)
			}
		}
		if waiting[v.oid] == 0 {
			ready = append(ready, v)
		}
	}
	for i := 0; i < len(ready); i++ {
		for _, r := range readers[ready[i].oid] {
			if waiting[r.oid]--; waiting[r.oid] == 0 {
				ready = append(ready, r)
			}
		}
	}
	return ready
}

// viewSchema presents to analyze.ViewColumns the relations one view's
// definition names, as the snapshot being built knows them so far (the views
// it reads are built before it). It answers only for relations the view
// depends on (see dep), so a name never resolves to a relation the view does
// not read, whatever search_path the definition was printed with.
type viewSchema struct {
	b    *builder
	deps []viewDep
}

var _ analyze.Schema = viewSchema{}

// dep reports whether the view reads schema.table: the same relation, by
// OID, where the build has read it (a protected table or a view), else by
// name (an unprotected table, which has no protected column anyway).
func (vs viewSchema) dep(schema, table string) bool {
	name := policy.TableName{Schema: schema, Table: table}
	oid, known := vs.b.oids[name]
	return slices.ContainsFunc(vs.deps, func(d viewDep) bool {
		return d.name == name && (!known || d.oid == oid)
	})
}

// ProtectedColumns maps each protected column of a relation the view reads
// to its base policy column. A column claimed by two policy columns maps to
// a stand-in that names the relation's own column, remembered in
// b.conflicted, so that a view passing it on is protected but unattributed.
func (vs viewSchema) ProtectedColumns(schema, table string) map[string]analyze.Column {
	if !vs.dep(schema, table) {
		return nil
	}
	t := vs.b.s.tables[policy.TableName{Schema: schema, Table: table}]
	if t == nil || !t.exists || len(t.protectedNames) == 0 {
		return nil // a name the policy claims but the catalog lacks: not a table here
	}
	m := make(map[string]analyze.Column, len(t.protectedNames))
	for _, name := range t.protectedNames {
		if col := t.protected[name]; col != nil {
			m[name] = analyze.Column{Schema: col.Name.Schema, Table: col.Name.Table, Name: col.Name.Column}
		} else {
			c := analyze.Column{Schema: schema, Table: table, Name: name}
			vs.b.conflicted[c] = true
			m[name] = c
		}
	}
	return m
}

// SchemasOf returns the schema of the relation the view reads that an
// unqualified name in its definition denotes: the visible one.
func (vs viewSchema) SchemasOf(table string) []string {
	for _, d := range vs.deps {
		if d.visible && d.name.Table == table {
			return []string{d.name.Schema}
		}
	}
	return nil
}

// ColumnOrder returns the columns of a protected relation or view the view
// reads.
func (vs viewSchema) ColumnOrder(schema, table string) ([]string, bool) {
	if !vs.dep(schema, table) {
		return nil, false
	}
	name := policy.TableName{Schema: schema, Table: table}
	if t := vs.b.s.tables[name]; t != nil && t.exists {
		return t.columns, true
	}
	cols, ok := vs.b.viewColumns[name]
	return cols, ok
}
