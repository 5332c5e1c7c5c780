package analyze

import (
	"errors"
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	pgparser "github.com/pganalyze/pg_query_go/v6/parser"
)

// Column identifies one protected column as the policy names it.
type Column struct{ Schema, Table, Name string }

// String returns schema.table.name (names are not quoted).
func (c Column) String() string { return c.relString() + "." + c.Name }

func (c Column) relString() string {
	if c.Schema == "" {
		return c.Table
	}
	return c.Schema + "." + c.Table
}

// Schema tells the analyzer which columns are protected. The proxy's catalog
// cache implements it; it must be safe for the calls of one Analyze.
//
// Names are compared exactly, as PostgreSQL stores them (unquoted identifiers
// in the query are folded to lower case by the parser before lookup).
//
// Every relation through which a protected column can be written or read must
// be reported as protected: partitions, inheritance children and updatable
// views included. The analyzer cannot see them otherwise.
type Schema interface {
	// ProtectedColumns returns the protected columns of relation schema.table,
	// keyed by their column name in that relation, or nil if it has none. The
	// value is the policy column whose key encrypts it: the relation's own
	// column for an ordinary table, the base column for a partition or view.
	ProtectedColumns(schema, table string) map[string]Column
	// SchemasOf returns the schemas having a protected relation with this
	// name. An unqualified name in a query matching exactly one is that
	// relation; matching several is rejected for writes (the proxy cannot see
	// search_path) and treated as any of them for reads.
	SchemasOf(table string) []string
	// ColumnOrder returns all column names of schema.table in attnum order
	// (dropped columns excluded), ok=false if unknown. It is needed for INSERT
	// and COPY without a column list, and to resolve SELECT * positions.
	ColumnOrder(schema, table string) (cols []string, ok bool)
}

// Plan is the analysis of one query string. It is safe for concurrent use
// and the proxy may cache the plan of a Parse message and share it; callers
// must not modify it (its maps and slices included).
type Plan struct {
	// Statements has one entry per statement of the query string, in order.
	Statements []Statement

	sql  string
	tree *pg.ParseResult
}

// Statement is the analysis of one statement.
type Statement struct {
	// Kind is the parse-tree node type of the statement, e.g. "InsertStmt",
	// "SelectStmt", "CopyStmt", "AlterTableStmt" (for metrics and logs).
	Kind string
	// Location and Length are the byte range of the statement in the query
	// string.
	Location, Length int
	// Touches reports that the statement reads or writes a protected table.
	// It is false for DDL, which the analyzer does not map.
	Touches bool
	// DDL reports a statement that may change table or column definitions
	// (CREATE, ALTER, DROP, RENAME, COMMENT, SELECT INTO, …): the proxy should
	// refresh its catalog cache after it succeeds.
	DDL bool
	// Params maps each 1-based $n whose value is written into a protected
	// column to that column; nil if none. Such a parameter is used only for
	// that column (the analyzer rejects any other use). The proxy encrypts the
	// value at every Bind, in the parameter's text or binary format, and must
	// not declare a type for it in the Parse it forwards (send OID 0): Rewrite
	// removes casts around it so the server infers the storage type.
	Params map[int]Column
	// Literals lists, in order of appearance, the constants written into
	// protected columns. NULL is not listed: it stays NULL.
	Literals []Literal
	// Copy describes a COPY between the client and a table with protected
	// columns (FROM STDIN or TO STDOUT); nil otherwise.
	Copy *Copy
	// Writes lists the protected columns the statement writes a value into, NULL and DEFAULT
	// included (for write permissions), in order of first appearance.
	Writes []Column
	// Execute is the name of the prepared statement an EXECUTE statement runs,
	// "" otherwise. The proxy must reject it if that prepared statement has
	// protected Params: EXECUTE passes them as plaintext literals.
	Execute string

	sites []site
}

// Literal is a constant written into a protected column.
type Literal struct {
	// Column is the protected column the constant is written into.
	Column Column
	// Value is the constant's text as PostgreSQL reads it: string escapes
	// decoded, integers in decimal, other numbers as written, true/false for
	// boolean keywords. A cast
	// around the constant (DATE '2020-01-01', '42'::int) is not applied.
	Value string
	// Location is the byte offset of the constant in the query string.
	Location int
}

// siteKind says what Rewrite does at a site.
type siteKind int

const (
	siteLiteral   siteKind = iota // encrypt the constant, drop casts around it
	siteParamCast                 // drop casts around the parameter
	siteNullCast                  // drop casts around NULL
)

// site is a value expression Rewrite replaces: a chain of casts ending in the
// A_Const or ParamRef at location loc (locations of leaves are unique in a
// statement, and copies made by the parser, as for SET (a, b) = (…), share
// them, so every copy is rewritten alike).
type site struct {
	kind  siteKind
	loc   int32
	col   Column
	value string
}

// Touches reports whether any statement reads or writes a protected table.
func (p *Plan) Touches() bool {
	for i := range p.Statements {
		if p.Statements[i].Touches {
			return true
		}
	}
	return false
}

// NeedsRewrite reports whether Rewrite would change the text: some statement
// writes a literal into a protected column or casts a protected value.
func (p *Plan) NeedsRewrite() bool {
	for i := range p.Statements {
		if len(p.Statements[i].sites) > 0 {
			return true
		}
	}
	return false
}

// Analyze parses sql (one or more statements) and maps every literal,
// parameter and COPY field that feeds a protected column. It returns a
// *ParseError if sql does not parse and a *RejectError if any statement
// touches a protected table in a way the analyzer cannot account for; in both
// cases the whole query string must be refused.
func Analyze(sql string, schema Schema) (*Plan, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, newParseError(err)
	}
	p := &Plan{sql: sql, tree: tree, Statements: make([]Statement, len(tree.Stmts))}
	for i, raw := range tree.Stmts {
		st := &p.Statements[i]
		st.Location = clamp(int(raw.StmtLocation), len(sql))
		st.Length = int(raw.StmtLen)
		if st.Length == 0 || st.Location+st.Length > len(sql) {
			st.Length = len(sql) - st.Location
		}
		a := &analyzer{schema: schema, sql: sql, st: st}
		a.statement(raw.Stmt)
		if a.err != nil {
			return nil, a.err
		}
	}
	return p, nil
}

func newParseError(err error) *ParseError {
	var pe *pgparser.Error
	if errors.As(err, &pe) {
		return &ParseError{Position: pe.Cursorpos, Detail: pe.Message}
	}
	return &ParseError{Detail: err.Error()}
}

func clamp(v, hi int) int {
	if v < 0 {
		return 0
	}
	if v > hi {
		return hi
	}
	return v
}

// analyzer holds the state of the analysis of one statement.
type analyzer struct {
	schema Schema
	sql    string
	st     *Statement
	err    error

	// allProt maps each column name to a protected column of that name among
	// all relations the statement names; references the scope rules cannot
	// resolve (unknown qualifiers) are checked against it.
	allProt map[string]Column
	// otherParam records $n used anywhere but as a protected value.
	otherParam map[int]int32
	// paramLoc is where each protected $n first appears.
	paramLoc map[int]int32
}

func (a *analyzer) failed() bool { return a.err != nil }

// reject records the first rejection of the statement.
func (a *analyzer) reject(col Column, loc int32, reason, hint string) {
	if a.err != nil {
		return
	}
	a.err = &RejectError{
		Column:   col,
		SQLState: SQLStateFeatureNotSupported,
		Reason:   reason,
		Hint:     hint,
		Position: charPosition(a.sql, loc),
	}
}

// Hints of RejectError, by kind of rejection.
const (
	hintWrite = "a protected column can only be given a literal, a $n parameter, NULL or DEFAULT, " +
		"optionally with a type cast, or EXCLUDED.<same column> in ON CONFLICT DO UPDATE"
	hintRead = "a protected column holds ciphertext: it can only be selected or returned as a plain column, " +
		"tested with IS [NOT] NULL or counted; search, comparison and ordering on it are not supported yet"
	hintQualify = "schema-qualify the table name"
)

// statement analyses one top-level statement.
func (a *analyzer) statement(n *pg.Node) {
	a.st.Kind = nodeKind(n)
	a.st.DDL = isDDL(n)
	if n == nil {
		return
	}
	if !a.prepass(n) {
		return
	}
	a.stmt(n, nil)
}

// prepass collects the protected columns of every relation the statement
// names. It returns false when there is nothing more to check: no relation is
// protected and the statement cannot write elsewhere (DO, EXECUTE).
func (a *analyzer) prepass(n *pg.Node) bool {
	a.allProt = map[string]Column{}
	walkMessages(n.ProtoReflect(), func(rv *pg.RangeVar) {
		for name, c := range a.lookup(rv.Schemaname, rv.Relname) {
			if old, ok := a.allProt[name]; !ok || c.String() < old.String() {
				a.allProt[name] = c
			}
		}
	})
	switch x := n.Node.(type) {
	case *pg.Node_DoStmt, *pg.Node_ExecuteStmt, *pg.Node_CreateFunctionStmt:
		return true
	case *pg.Node_ExplainStmt:
		// EXPLAIN ANALYZE EXECUTE runs the prepared statement like EXECUTE does.
		if _, ok := x.ExplainStmt.GetQuery().GetNode().(*pg.Node_ExecuteStmt); ok {
			return true
		}
	}
	return len(a.allProt) > 0
}

// lookup returns the protected columns of a relation name without rejecting
// ambiguity (the union over all schemas for an unqualified name).
func (a *analyzer) lookup(schema, name string) map[string]Column {
	if schema != "" {
		return a.schema.ProtectedColumns(schema, name)
	}
	schemas := a.schema.SchemasOf(name)
	if len(schemas) == 1 {
		return a.schema.ProtectedColumns(schemas[0], name)
	}
	var all map[string]Column
	for _, s := range schemas {
		for k, v := range a.schema.ProtectedColumns(s, name) {
			if all == nil {
				all = map[string]Column{}
			}
			if old, ok := all[k]; !ok || v.String() < old.String() {
				all[k] = v
			}
		}
	}
	return all
}

// table is a relation named in the statement, resolved against the Schema.
type table struct {
	schema string // "" when unqualified and not resolvable to one schema
	name   string
	prot   map[string]Column
	loc    int32
}

func (t *table) protected() bool { return len(t.prot) > 0 }

// firstProt returns a protected column of t deterministically (for messages).
func (t *table) firstProt() Column { return firstOf(t.prot, nil) }

// resolveTable resolves rv. For a write target, an unqualified name that
// matches protected relations in several schemas is rejected.
func (a *analyzer) resolveTable(rv *pg.RangeVar, write bool) *table {
	t := &table{schema: rv.Schemaname, name: rv.Relname, loc: rv.Location}
	if rv.Schemaname != "" {
		t.prot = a.schema.ProtectedColumns(rv.Schemaname, rv.Relname)
	} else {
		schemas := a.schema.SchemasOf(rv.Relname)
		switch {
		case len(schemas) == 1:
			t.schema = schemas[0]
			t.prot = a.schema.ProtectedColumns(schemas[0], rv.Relname)
		case len(schemas) > 1:
			t.prot = a.lookup("", rv.Relname)
			if write {
				s := append([]string(nil), schemas...)
				sort.Strings(s)
				a.reject(Column{Table: rv.Relname}, rv.Location,
					"unqualified table name matches protected tables in schemas "+strings.Join(s, ", ")+
						" and the proxy cannot see search_path", hintQualify)
			}
		}
	}
	if t.protected() {
		a.st.Touches = true
	}
	return t
}

// firstOf returns the protected column first in order (or, without an order,
// the one with the smallest name) so messages are deterministic.
func firstOf(prot map[string]Column, order []string) Column {
	for _, c := range order {
		if col, ok := prot[c]; ok {
			return col
		}
	}
	best := ""
	for name := range prot {
		if best == "" || name < best {
			best = name
		}
	}
	return prot[best]
}

// isDDL reports statements that may change table or column definitions.
func isDDL(n *pg.Node) bool {
	switch x := n.GetNode().(type) {
	case *pg.Node_SelectStmt:
		return x.SelectStmt.GetIntoClause() != nil
	case *pg.Node_RenameStmt, *pg.Node_DefineStmt, *pg.Node_CompositeTypeStmt, *pg.Node_ViewStmt,
		*pg.Node_IndexStmt, *pg.Node_CommentStmt, *pg.Node_ImportForeignSchemaStmt, *pg.Node_RuleStmt:
		return true
	}
	k := nodeKind(n)
	return strings.HasPrefix(k, "Create") || strings.HasPrefix(k, "Alter") || strings.HasPrefix(k, "Drop")
}
