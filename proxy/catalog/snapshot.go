package catalog

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy/analyze"
)

// attrKey is a table column as RowDescription names it.
type attrKey struct {
	rel    uint32
	attnum int16
}

// snapshot is one immutable view of the catalog, replaced whole by Refresh.
type snapshot struct {
	attrs      map[attrKey]*policy.Column
	tables     map[policy.TableName]*table // protected tables, their descendants, views over them
	schemasOf  map[string][]string         // table name → sorted schemas
	lowerNames map[string]struct{}         // lower-cased table names
	views      []view                      // the views it was built from, for the next Refresh
}

// table is a protected table, a descendant of one, or a view with a column
// that passes a protected column on.
type table struct {
	exists         bool     // found in the catalog at the last Refresh
	columns        []string // non-dropped columns in attnum order
	protectedNames []string // policy file order
	// protected maps a column name to its policy column; a nil value marks a
	// column claimed by two policy columns.
	protected map[string]*policy.Column
}

// relation is one row of readRelations: a table reached from a policy table
// (itself, at depth 0, or a descendant).
type relation struct {
	root    policy.TableName // the table the policy names
	oid     uint32
	name    policy.TableName
	columns []string
	attnums []int16
}

// readRelations reads the tables the policy names and all their descendants
// (pg_inherits links partitions to their parents and inheritance children to
// theirs), each with its live columns. Tables that do not exist are left out.
func readRelations(ctx context.Context, q policy.Querier, roots []policy.TableName) ([]relation, error) {
	if len(roots) == 0 {
		return nil, nil
	}
	schemas := make([]string, len(roots))
	names := make([]string, len(roots))
	for i, r := range roots {
		schemas[i], names[i] = r.Schema, r.Table
	}
	// UNION (not UNION ALL) ends the recursion on a diamond of multiple
	// inheritance; pg_inherits itself has no cycles.
	rows, err := q.Query(ctx, `
WITH RECURSIVE tree(rootschema, roottable, relid) AS (
	SELECT w.schema, w.tbl, c.oid
	FROM unnest($1::text[], $2::text[]) AS w(schema, tbl)
	JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema
	JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.tbl AND c.relkind IN ('r', 'p')
	UNION
	SELECT tree.rootschema, tree.roottable, i.inhrelid
	FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.relid
)
SELECT tree.rootschema, tree.roottable, tree.relid, n.nspname, c.relname,
	coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '{}'),
	coalesce(array_agg(a.attnum ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '{}')
FROM tree
JOIN pg_catalog.pg_class c ON c.oid = tree.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = tree.relid AND a.attnum > 0 AND NOT a.attisdropped
GROUP BY tree.rootschema, tree.roottable, tree.relid, n.nspname, c.relname
ORDER BY tree.rootschema, tree.roottable, n.nspname, c.relname`, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("reading protected tables: %w", err)
	}
	defer rows.Close()
	var rels []relation
	for rows.Next() {
		var r relation
		if err := rows.Scan(&r.root.Schema, &r.root.Table, &r.oid, &r.name.Schema, &r.name.Table, &r.columns, &r.attnums); err != nil {
			return nil, fmt.Errorf("reading protected tables: %w", err)
		}
		rels = append(rels, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading protected tables: %w", err)
	}
	return rels, nil
}

// build indexes pol against the tables and views read from the catalog. With
// no relations it indexes the policy's names alone, so the write path knows
// the protected tables before the first Refresh succeeds.
func build(pol *policy.Policy, rels []relation, views []view) *snapshot {
	b := &builder{
		s: &snapshot{
			attrs:      make(map[attrKey]*policy.Column),
			tables:     make(map[policy.TableName]*table),
			schemasOf:  make(map[string][]string),
			lowerNames: make(map[string]struct{}),
		},
		pol:  pol,
		line: make(map[*table]map[string]int),
		oids: make(map[policy.TableName]uint32),
	}
	s := b.s

	conflicts := make(map[attrKey]bool)
	for _, r := range rels {
		t := b.tableOf(r.name)
		t.exists = true
		t.columns = r.columns
		b.oids[r.name] = r.oid
		for _, col := range pol.ColumnsOf(r.root.Schema, r.root.Table) {
			// Claim the name even if the table lacks the column, so that a
			// column added after this Refresh is still protected by name.
			b.claim(t, col.Name.Column, col)
			i := slices.Index(r.columns, col.Name.Column)
			if i < 0 {
				continue
			}
			k := attrKey{r.oid, r.attnums[i]}
			if prev, seen := s.attrs[k]; seen && prev != col {
				conflicts[k] = true
			}
			s.attrs[k] = col
		}
	}
	for k := range conflicts {
		delete(s.attrs, k)
	}

	// Tables the policy names but the catalog lacks (or before any Refresh)
	// are still protected by name.
	for _, name := range pol.Tables() {
		if _, ok := s.tables[name]; ok {
			continue
		}
		t := b.tableOf(name)
		for _, col := range pol.ColumnsOf(name.Schema, name.Table) {
			b.claim(t, col.Name.Column, col)
		}
	}

	s.views = views
	b.addViews(views)

	for name, t := range s.tables {
		slices.SortStableFunc(t.protectedNames, func(x, y string) int {
			return cmp.Compare(b.line[t][x], b.line[t][y])
		})
		s.schemasOf[name.Table] = append(s.schemasOf[name.Table], name.Schema)
		s.lowerNames[strings.ToLower(name.Table)] = struct{}{}
	}
	for _, schemas := range s.schemasOf {
		slices.Sort(schemas)
	}
	return s
}

// builder holds the state of one build.
type builder struct {
	s    *snapshot
	pol  *policy.Policy
	line map[*table]map[string]int   // policy line of the first claim of each name
	oids map[policy.TableName]uint32 // relations found in the catalog
	// viewColumns holds the columns of every view read, protected or not.
	viewColumns map[policy.TableName][]string
	// conflicted holds the stand-ins given to the view analysis for columns
	// claimed by two policy columns (see viewSchema.ProtectedColumns).
	conflicted map[analyze.Column]bool
}

// tableOf returns the entry of a relation, creating it.
func (b *builder) tableOf(name policy.TableName) *table {
	t := b.s.tables[name]
	if t == nil {
		t = &table{protected: make(map[string]*policy.Column)}
		b.s.tables[name] = t
	}
	return t
}

// claim records that col protects the column called name in t. A second,
// different claim, or a nil col, marks the name as claimed by two policy
// columns: it stays protected, attributed to neither.
func (b *builder) claim(t *table, name string, col *policy.Column) {
	line := math.MaxInt // a conflict passed on through a view: listed last
	if col != nil {
		line = col.Line
	}
	prev, seen := t.protected[name]
	switch {
	case !seen:
		t.protected[name] = col
		t.protectedNames = append(t.protectedNames, name)
		if b.line[t] == nil {
			b.line[t] = make(map[string]int)
		}
		b.line[t][name] = line
	case prev != col:
		t.protected[name] = nil
		b.line[t][name] = min(b.line[t][name], line)
	}
}
