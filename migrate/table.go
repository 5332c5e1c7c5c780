package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/fleproxy/fleproxy/policy"
)

// Type OIDs (src/include/catalog/pg_type.dat).
const (
	oidBytea   = 17
	oidText    = 25
	oidVarchar = 1043
)

// table is what a job needs to know about the table of its column.
type table struct {
	name    policy.TableName
	oid     uint32
	relkind string // "r" or "p"

	column   string // the protected column
	attnum   int16  // its number
	colType  string // format_type of the column, for messages
	baseType uint32 // type OID, through one domain
	// maxChars is the length limit of a varchar(n) column, or -1.
	maxChars int

	keyDesc string      // "primary key (id)"
	keys    []keyColumn // the columns identifying a row, in index order
}

// keyColumn is one column of the key that identifies rows.
type keyColumn struct {
	name string
	typ  string // format_type without modifier, for casts from text
}

// ident returns the quoted name of the table.
func (t *table) ident() string { return pgx.Identifier{t.name.Schema, t.name.Table}.Sanitize() }

// from returns the FROM/UPDATE target: ONLY for a plain table, whose
// inheritance children (refused by inspect) would otherwise be included.
func (t *table) from() string {
	if t.relkind == "p" {
		return t.ident()
	}
	return "ONLY " + t.ident()
}

func (t *table) quotedColumn() string { return pgx.Identifier{t.column}.Sanitize() }

// Querier is what this package needs of a connection to read: a
// *pgxpool.Pool, *pgxpool.Conn, *pgx.Conn or pgx.Tx.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// inspect reads the catalog entries of col's table: its kind, the column's
// type and the key that identifies rows.
func inspect(ctx context.Context, q Querier, col *policy.Column) (*table, error) {
	t := &table{name: col.Name.TableName(), column: col.Name.Column, maxChars: -1}
	var schemaExists, hasChildren bool
	err := q.QueryRow(ctx, `
SELECT n.oid IS NOT NULL, coalesce(c.oid, 0), coalesce(c.relkind::text, ''),
       EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid)
FROM (SELECT) AS one
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = $1
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = $2`,
		t.name.Schema, t.name.Table).Scan(&schemaExists, &t.oid, &t.relkind, &hasChildren)
	if err != nil {
		return nil, fmt.Errorf("migrate: column %s: reading the catalog: %w", col.Name, err)
	}
	switch {
	case !schemaExists || t.oid == 0:
		return nil, fmt.Errorf("migrate: column %s: table %s does not exist", col.Name, t.name)
	case t.relkind == "p":
	case t.relkind != "r":
		return nil, fmt.Errorf("migrate: column %s: %s is not a table", col.Name, t.name)
	case hasChildren:
		return nil, fmt.Errorf("migrate: column %s: table %s has inheritance children, whose keys need not be unique across the hierarchy; migrate each table of the hierarchy on its own is not supported", col.Name, t.name)
	}

	var typmod int32
	err = q.QueryRow(ctx, `
SELECT a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod),
       CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE a.atttypid END,
       CASE WHEN ty.typtype = 'd' THEN ty.typtypmod ELSE a.atttypmod END
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
		t.oid, t.column).Scan(&t.attnum, &t.colType, &t.baseType, &typmod)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("migrate: column %s does not exist", col.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: column %s: reading the catalog: %w", col.Name, err)
	}
	if t.baseType == oidVarchar && typmod >= 4 {
		t.maxChars = int(typmod - 4) // VARHDRSZ
	}

	// The key: the primary key if there is one, else the narrowest unique
	// index whose key columns are all NOT NULL plain columns. Neither may
	// include the column being rewritten.
	rows, err := q.Query(ctx, `
SELECT ic.relname::text, i.indisprimary,
       array_agg(a.attname::text ORDER BY k.ord),
       array_agg(pg_catalog.format_type(a.atttypid, NULL) ORDER BY k.ord),
       bool_and(a.attnotnull), bool_or(a.attnum = $2)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indislive
  AND i.indexprs IS NULL AND i.indpred IS NULL AND k.ord <= i.indnkeyatts
GROUP BY ic.relname, i.indisprimary, i.indnkeyatts
HAVING bool_and(a.attnum IS NOT NULL)
ORDER BY i.indisprimary DESC, i.indnkeyatts, ic.relname`, t.oid, t.attnum)
	if err != nil {
		return nil, fmt.Errorf("migrate: table %s: reading its indexes: %w", t.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var index string
		var primary, notNull, hasColumn bool
		var names, types []string
		if err := rows.Scan(&index, &primary, &names, &types, &notNull, &hasColumn); err != nil {
			return nil, fmt.Errorf("migrate: table %s: reading its indexes: %w", t.name, err)
		}
		if !notNull || hasColumn || len(names) == 0 {
			continue
		}
		for i := range names {
			t.keys = append(t.keys, keyColumn{name: names[i], typ: types[i]})
		}
		quoted := make([]string, len(names))
		for i, n := range names {
			quoted[i] = pgx.Identifier{n}.Sanitize()
		}
		if primary {
			t.keyDesc = "primary key (" + strings.Join(quoted, ", ") + ")"
		} else {
			t.keyDesc = "unique index " + pgx.Identifier{index}.Sanitize() + " (" + strings.Join(quoted, ", ") + ")"
		}
		break
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: table %s: reading its indexes: %w", t.name, err)
	}
	if len(t.keys) == 0 {
		return nil, &NoKeyError{Table: t.name.String(), Column: col.Name.String()}
	}
	return t, nil
}

// estimateRows returns the planner's row estimate for the table, or a count
// when the table has never been analysed.
func estimateRows(ctx context.Context, q Querier, t *table) (int64, error) {
	var est float64
	err := q.QueryRow(ctx, `
SELECT coalesce(CASE WHEN bool_or(c.reltuples < 0) THEN -1 ELSE sum(c.reltuples) END, -1)
FROM pg_catalog.pg_class c
WHERE c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree($1) WHERE isleaf)`, t.oid).Scan(&est)
	if err != nil {
		return 0, fmt.Errorf("migrate: table %s: estimating its rows: %w", t.name, err)
	}
	if est >= 0 {
		return int64(est), nil
	}
	var n int64
	if err := q.QueryRow(ctx, "SELECT count(*) FROM "+t.from()).Scan(&n); err != nil {
		return 0, fmt.Errorf("migrate: table %s: counting its rows: %w", t.name, err)
	}
	return n, nil
}

// statements are the SQL a job runs on its table, built once per run from
// quoted identifiers.
type statements struct {
	first  string // $1 = limit
	next   string // $1 = limit, $2.. = last key as text
	lock   string // $1.. = key arrays (text[]): re-read rows FOR UPDATE
	update string // $1.. = key arrays, then old and new values: compare-and-set
}

// buildStatements returns the statements for t; valueType is "bytea" or
// "text", the type of the stored values as they are passed.
func buildStatements(t *table, valueType string) statements {
	n := len(t.keys)
	keyText := make([]string, n)  // k::text
	keyNames := make([]string, n) // k
	lastKey := make([]string, n)  // $2::text::T
	// Every column reference is qualified: in ORDER BY, a bare name would
	// mean the output column of that name, the key cast to text, whose order
	// is not the key's.
	for i, k := range t.keys {
		q := "fle_t." + pgx.Identifier{k.name}.Sanitize()
		keyNames[i] = q
		keyText[i] = q + "::text"
		lastKey[i] = "$" + strconv.Itoa(i+2) + "::text::" + k.typ
	}
	col := t.quotedColumn()
	sel := "SELECT " + strings.Join(keyText, ", ") + ", fle_t." + col + " FROM " + t.from() + " AS fle_t"
	order := " ORDER BY " + strings.Join(keyNames, ", ") + " LIMIT $1"
	var s statements
	s.first = sel + order
	s.next = sel + " WHERE (" + strings.Join(keyNames, ", ") + ") > (" + strings.Join(lastKey, ", ") + ")" + order

	// Arrays of keys, joined to the table by casting each text back to the
	// key column's type.
	arrays := make([]string, n)
	vcols := make([]string, n)
	match := make([]string, n)
	ret := make([]string, n)
	for i, k := range t.keys {
		arrays[i] = "$" + strconv.Itoa(i+1) + "::text[]"
		vcols[i] = "k" + strconv.Itoa(i)
		match[i] = keyNames[i] + " = fle_v." + vcols[i] + "::" + k.typ
		ret[i] = "fle_v." + vcols[i]
	}
	s.lock = sel + " WHERE EXISTS (SELECT FROM unnest(" + strings.Join(arrays, ", ") + ") AS fle_v(" +
		strings.Join(vcols, ", ") + ") WHERE " + strings.Join(match, " AND ") + ") FOR UPDATE"

	oldP := "$" + strconv.Itoa(n+1) + "::" + valueType + "[]"
	newP := "$" + strconv.Itoa(n+2) + "::" + valueType + "[]"
	// Text is compared byte for byte ("C" is a deterministic collation), so a
	// nondeterministic column collation cannot make a changed value look
	// unchanged.
	same := "fle_t." + col + " = fle_v.old_v"
	if valueType == "text" {
		same = "fle_t." + col + " COLLATE \"C\" = fle_v.old_v COLLATE \"C\""
	}
	s.update = "UPDATE " + t.from() + " AS fle_t SET " + col + " = fle_v.new_v FROM unnest(" +
		strings.Join(arrays, ", ") + ", " + oldP + ", " + newP + ") AS fle_v(" + strings.Join(vcols, ", ") +
		", old_v, new_v) WHERE " + strings.Join(match, " AND ") + " AND " + same +
		" RETURNING " + strings.Join(ret, ", ")
	return s
}

// describeKey renders a row's key for messages: "id=42", or "(a=1, b=x)".
func describeKey(t *table, key []string) string {
	if len(key) == 1 {
		return t.keys[0].name + "=" + key[0]
	}
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = t.keys[i].name + "=" + v
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
