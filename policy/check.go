package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Querier runs catalog queries. *pgx.Conn, *pgxpool.Pool and pgx.Tx satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// minArmouredLen is the shortest varchar(n) limit accepted for text storage.
// Armouring adds the "fle1:" prefix, the envelope header, the Tink key prefix,
// a nonce and a tag, and base64 expands the whole by a third, so a shorter
// limit would refuse all but the shortest values.
// Values whose ciphertext exceeds a longer limit are refused by the database
// at write time; nothing is stored in the clear.
const minArmouredLen = 256

// PostgreSQL type OIDs (pg_type.dat) of the types that can hold a storage.
const (
	oidBytea   = 17
	oidText    = 25
	oidBpchar  = 1042
	oidVarchar = 1043
)

// maxListedColumns bounds the column list in a "does not exist" message.
const maxListedColumns = 30

// CheckAgainstCatalog checks the policy against the database q is connected
// to and returns a [*ValidationError] listing every problem:
//
//   - a protected column, its table or its schema does not exist, or the
//     relation is not a table (a view, a foreign table, …);
//   - the column's type, after resolving domains, cannot hold the storage:
//     bytea storage needs bytea; text storage needs text or varchar (a
//     varchar limit must be at least 256; char pads values and is refused);
//   - the database fills the column itself (a default, an identity or a
//     generated column), which would store a value the proxy never encrypted;
//   - one table column is reached by two policy entries through inheritance
//     or partitioning (e.g. a partition listed beside its parent): every
//     descendant of a protected table is protected by the ancestor's entry;
//   - a role named under cleared.roles or in an identity's match.roles does
//     not exist.
//
// Query failures are returned wrapped, not as problems.
func (p *Policy) CheckAgainstCatalog(ctx context.Context, q Querier) error {
	return p.CheckAgainstCatalogWith(ctx, q, CheckOptions{})
}

// CheckOptions relax CheckAgainstCatalogWith.
type CheckOptions struct {
	// AllowMissingTables tolerates tables (and schemas) that do not exist yet, for a fresh
	// database whose schema will be created through the proxy; their columns are protected by
	// name from the start. A missing column of an existing table is still a problem.
	AllowMissingTables bool
}

// CheckAgainstCatalogWith is CheckAgainstCatalog with options.
func (p *Policy) CheckAgainstCatalogWith(ctx context.Context, q Querier, opts CheckOptions) error {
	var problems []Problem
	index := make(map[*Column]int, len(p.columns))
	for i, c := range p.columns {
		index[c] = i
	}
	field := func(c *Column) string { return fmt.Sprintf("columns[%d].column", index[c]) }

	tables, err := loadTables(ctx, q, p.tables)
	if err != nil {
		return fmt.Errorf("policy: checking %s against the catalog: %w", p.source, err)
	}
	for _, c := range p.columns {
		t := tables[c.Name.TableName()]
		if t.oid == 0 && opts.AllowMissingTables {
			continue
		}
		for _, msg := range t.problems(c) {
			problems = append(problems, Problem{Line: c.Line, Field: field(c), Msg: msg})
		}
	}

	claims, err := p.inheritanceClaims(ctx, q, tables)
	if err != nil {
		return fmt.Errorf("policy: checking %s against the catalog: %w", p.source, err)
	}
	for _, cl := range claims {
		problems = append(problems, Problem{Line: cl.later.Line, Field: field(cl.later), Msg: cl.message()})
	}

	refs := p.roleRefs()
	names := make([]string, 0, len(refs))
	for _, ref := range refs {
		if !slices.Contains(names, ref.role) {
			names = append(names, ref.role)
		}
	}
	missing, err := missingRoles(ctx, q, names)
	if err != nil {
		return fmt.Errorf("policy: checking %s against the catalog: %w", p.source, err)
	}
	for _, ref := range refs {
		if slices.Contains(missing, ref.role) {
			problems = append(problems, Problem{Line: ref.line, Field: ref.field, Msg: fmt.Sprintf("role %q does not exist", ref.role)})
		}
	}

	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(a, b Problem) int { return a.Line - b.Line })
	return &ValidationError{Source: p.source, Problems: problems}
}

// catalogTable is what the catalog says about one table named in the policy.
type catalogTable struct {
	name         TableName
	schemaExists bool
	oid          uint32 // 0 if the relation does not exist
	relkind      string
	columns      []catalogColumn // attnum order
}

type catalogColumn struct {
	name       string
	typeName   string // format_type of the declared type
	baseType   uint32 // after resolving domains
	baseTypmod int32
	hasDefault bool
	identity   string // pg_attribute.attidentity
	generated  string // pg_attribute.attgenerated
}

// loadTables reads the tables and their columns. Tables that do not exist
// are returned with oid 0.
func loadTables(ctx context.Context, q Querier, names []TableName) (map[TableName]*catalogTable, error) {
	schemas := make([]string, len(names))
	tables := make([]string, len(names))
	out := make(map[TableName]*catalogTable, len(names))
	for i, n := range names {
		schemas[i], tables[i] = n.Schema, n.Table
		out[n] = &catalogTable{name: n}
	}
	// The lateral recursive query walks a domain down to its base type; a
	// domain's own typmod is in pg_type.typtypmod (e.g. a domain over
	// varchar(10)).
	rows, err := q.Query(ctx, `
SELECT w.schema, w.tbl, n.oid IS NOT NULL, coalesce(c.oid, 0), coalesce(c.relkind::text, ''),
       a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), b.typid, b.typmod,
       a.atthasdef, a.attidentity::text, a.attgenerated::text
FROM unnest($1::text[], $2::text[]) AS w(schema, tbl)
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.tbl
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN LATERAL (
	WITH RECURSIVE d(typid, typmod, depth) AS (
		SELECT a.atttypid, a.atttypmod, 0
		UNION ALL
		SELECT t.typbasetype, t.typtypmod, d.depth + 1
		FROM d JOIN pg_catalog.pg_type t ON t.oid = d.typid
		WHERE t.typtype = 'd'
	)
	SELECT typid, typmod FROM d ORDER BY depth DESC LIMIT 1
) b ON a.attname IS NOT NULL
ORDER BY w.schema, w.tbl, a.attnum`, schemas, tables)
	if err != nil {
		return nil, fmt.Errorf("reading tables: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			schema, table, relkind string
			schemaExists           bool
			oid                    uint32
			attname, typeName      *string
			baseType               *uint32
			baseTypmod             *int32
			hasDefault             *bool
			identity, generated    *string
		)
		if err := rows.Scan(&schema, &table, &schemaExists, &oid, &relkind,
			&attname, &typeName, &baseType, &baseTypmod, &hasDefault, &identity, &generated); err != nil {
			return nil, fmt.Errorf("reading tables: %w", err)
		}
		t := out[TableName{Schema: schema, Table: table}]
		t.schemaExists, t.oid, t.relkind = schemaExists, oid, relkind
		if attname != nil {
			t.columns = append(t.columns, catalogColumn{
				name: *attname, typeName: *typeName, baseType: *baseType, baseTypmod: *baseTypmod,
				hasDefault: *hasDefault, identity: *identity, generated: *generated,
			})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading tables: %w", err)
	}
	return out, nil
}

// problems returns what is wrong with protecting c in t.
func (t *catalogTable) problems(c *Column) []string {
	switch {
	case !t.schemaExists:
		return []string{fmt.Sprintf("column %s: schema %s does not exist", c.Name, quoteIdent(t.name.Schema))}
	case t.oid == 0:
		return []string{fmt.Sprintf("column %s: table %s does not exist", c.Name, t.name)}
	}
	switch t.relkind {
	case "r", "p":
	case "v", "m":
		return []string{fmt.Sprintf("column %s: %s is a view; protect the column of the table behind it (view columns are not decrypted)", c.Name, t.name)}
	case "f":
		return []string{fmt.Sprintf("column %s: %s is a foreign table, which fleproxy cannot protect", c.Name, t.name)}
	default:
		return []string{fmt.Sprintf("column %s: %s is not a table", c.Name, t.name)}
	}
	i := slices.IndexFunc(t.columns, func(cc catalogColumn) bool { return cc.name == c.Name.Column })
	if i < 0 {
		names := make([]string, 0, min(len(t.columns), maxListedColumns))
		for _, cc := range t.columns[:min(len(t.columns), maxListedColumns)] {
			names = append(names, quoteIdent(cc.name))
		}
		list := strings.Join(names, ", ")
		switch {
		case len(t.columns) == 0:
			list = "no columns"
		case len(t.columns) > maxListedColumns:
			list += fmt.Sprintf(", ... (%d more)", len(t.columns)-maxListedColumns)
		}
		return []string{fmt.Sprintf("column %s does not exist (table %s has: %s)", c.Name, t.name, list)}
	}
	cc := t.columns[i]
	var msgs []string
	switch {
	case cc.generated != "":
		msgs = append(msgs, fmt.Sprintf("column %s is a generated column; the database computes its values, so the proxy cannot encrypt them", c.Name))
	case cc.identity != "":
		msgs = append(msgs, fmt.Sprintf("column %s is an identity column; the database generates its values, so the proxy cannot encrypt them", c.Name))
	case cc.hasDefault:
		msgs = append(msgs, fmt.Sprintf("column %s has a default, which the database would store unencrypted; drop it (ALTER TABLE ... ALTER COLUMN ... DROP DEFAULT)", c.Name))
	}
	switch c.Storage {
	case StorageBytea:
		if cc.baseType != oidBytea {
			msgs = append(msgs, fmt.Sprintf("column %s has type %s, but storage bytea needs a bytea column (change the column to bytea, or write storage: text)", c.Name, cc.typeName))
		}
	case StorageText:
		switch cc.baseType {
		case oidText:
		case oidVarchar:
			// A varchar typmod is the length limit plus VARHDRSZ (4); -1 is no limit.
			if cc.baseTypmod >= 0 && cc.baseTypmod-4 < minArmouredLen {
				msgs = append(msgs, fmt.Sprintf("column %s has type %s, too short for armoured ciphertext: storage text needs text, varchar, or varchar(n) with n of at least %d", c.Name, cc.typeName, minArmouredLen))
			}
		case oidBpchar:
			msgs = append(msgs, fmt.Sprintf("column %s has type %s, which pads values with spaces: storage text needs text or varchar", c.Name, cc.typeName))
		default:
			msgs = append(msgs, fmt.Sprintf("column %s has type %s, but storage text needs a text or varchar column (or write storage: bytea for a bytea column)", c.Name, cc.typeName))
		}
	}
	return msgs
}

// claim is two policy entries that reach one table column through
// inheritance.
type claim struct {
	target         ColumnName
	earlier, later *Column
}

func (cl claim) message() string {
	switch {
	case cl.target == cl.later.Name:
		return fmt.Sprintf("column %s inherits from protected column %s (line %d); remove this entry: descendants of a protected table are protected by the ancestor's entry, and a second id would make rows read through the ancestor undecryptable", cl.later.Name, cl.earlier.Name, cl.earlier.Line)
	case cl.target == cl.earlier.Name:
		return fmt.Sprintf("column %s inherits from protected column %s (line %d); remove the entry at line %d: descendants of a protected table are protected by the ancestor's entry", cl.earlier.Name, cl.later.Name, cl.later.Line, cl.earlier.Line)
	}
	return fmt.Sprintf("column %s inherits from both %s (line %d) and %s; a value could not be decrypted under two ids, so protect one common ancestor only", cl.target, cl.earlier.Name, cl.earlier.Line, cl.later.Name)
}

// inheritanceClaims finds table columns reached by more than one policy entry,
// directly or through pg_inherits (partitions and inheritance children at any
// depth).
func (p *Policy) inheritanceClaims(ctx context.Context, q Querier, tables map[TableName]*catalogTable) ([]claim, error) {
	var roots []uint32
	byOID := make(map[uint32]TableName)
	for _, name := range p.tables {
		if t := tables[name]; t.oid != 0 && (t.relkind == "r" || t.relkind == "p") {
			roots = append(roots, t.oid)
			byOID[t.oid] = name
		}
	}
	if len(roots) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `
WITH RECURSIVE tree(root, relid) AS (
	SELECT r, r FROM unnest($1::oid[]) AS r
	UNION
	SELECT tree.root, i.inhrelid FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.relid
)
SELECT tree.root, n.nspname, c.relname
FROM tree
JOIN pg_catalog.pg_class c ON c.oid = tree.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
ORDER BY tree.root, n.nspname, c.relname`, roots)
	if err != nil {
		return nil, fmt.Errorf("reading descendants: %w", err)
	}
	defer rows.Close()
	reach := make(map[ColumnName][]*Column)
	var order []ColumnName
	for rows.Next() {
		var root uint32
		var rel TableName
		if err := rows.Scan(&root, &rel.Schema, &rel.Table); err != nil {
			return nil, fmt.Errorf("reading descendants: %w", err)
		}
		for _, c := range p.byTable[byOID[root]] {
			target := ColumnName{Schema: rel.Schema, Table: rel.Table, Column: c.Name.Column}
			if !slices.Contains(reach[target], c) {
				if reach[target] == nil {
					order = append(order, target)
				}
				reach[target] = append(reach[target], c)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading descendants: %w", err)
	}
	// Report each pair of entries once, at the table column that one of them
	// names if there is one, else at the first descendant that both reach.
	type pair struct{ earlier, later *Column }
	var pairs []pair
	where := make(map[pair]ColumnName)
	for _, target := range order {
		cs := reach[target]
		slices.SortFunc(cs, func(a, b *Column) int { return a.Line - b.Line })
		for _, a := range cs {
			for _, b := range cs {
				if a.Line >= b.Line {
					continue
				}
				pr := pair{a, b}
				prev, seen := where[pr]
				switch {
				case !seen:
					pairs = append(pairs, pr)
					where[pr] = target
				case prev != a.Name && prev != b.Name && (target == a.Name || target == b.Name):
					where[pr] = target
				}
			}
		}
	}
	claims := make([]claim, len(pairs))
	for i, pr := range pairs {
		claims[i] = claim{target: where[pr], earlier: pr.earlier, later: pr.later}
	}
	return claims, nil
}

// roleRef is one mention of a database role in the policy.
type roleRef struct {
	role  string
	line  int
	field string
}

// roleRefs returns every role the policy names, in identities and under
// cleared.roles, in file order.
func (p *Policy) roleRefs() []roleRef {
	var refs []roleRef
	for i, r := range p.rules {
		for j, role := range r.roles {
			refs = append(refs, roleRef{role, r.roleAt[j], fmt.Sprintf("identities[%d].match.roles[%d]", i, j)})
		}
	}
	for i, role := range p.roles {
		refs = append(refs, roleRef{role, p.roleAt[i], fmt.Sprintf("cleared.roles[%d]", i)})
	}
	slices.SortStableFunc(refs, func(a, b roleRef) int { return a.line - b.line })
	return refs
}

// missingRoles returns the roles that pg_roles does not list.
func missingRoles(ctx context.Context, q Querier, roles []string) ([]string, error) {
	if len(roles) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `
SELECT r FROM unnest($1::text[]) AS r
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r)`, roles)
	if err != nil {
		return nil, fmt.Errorf("reading roles: %w", err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading roles: %w", err)
	}
	return missing, nil
}
