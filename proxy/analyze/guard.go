package analyze

import (
	"encoding/json"
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Statements that would move a protected column out of the proxy's sight are refused: the
// proxy's policy names columns by name and maps only the statements it parses, so a function that
// writes a protected table from its arguments, and renames of protected tables or columns, would
// let plaintext through without any statement naming the column. Database administrators who need
// them make them directly in the database, where the CHECK constraints still refuse plaintext,
// after updating the policy. Functions that only read protected tables are allowed (they return
// ciphertext), and so are triggers; dynamic SQL (EXECUTE of a string) inside a function is not
// mapped either: the CHECK constraints are the backstop there.

const hintOutsideProxy = "create it directly in the database, where the CHECK constraints on protected columns still apply"

// functionBody refuses CREATE FUNCTION or PROCEDURE whose body writes (INSERT, UPDATE, MERGE,
// COPY FROM) a protected table: the proxy cannot encrypt what the function writes, and its
// arguments reach it as plaintext. SQL bodies are parsed as SQL, PL/pgSQL bodies with the
// PL/pgSQL parser; a body that cannot be parsed and names a protected table is refused.
func (a *analyzer) functionBody(s *pg.CreateFunctionStmt) {
	what := "CREATE FUNCTION"
	if s.IsProcedure {
		what = "CREATE PROCEDURE"
	}
	reason := what + " whose body writes a protected table; the proxy cannot encrypt what the function writes"
	if s.SqlBody != nil {
		a.writesIn(s.SqlBody.ProtoReflect(), reason)
		return
	}
	language := "sql"
	var bodies []string
	var loc int32
	for _, opt := range s.Options {
		de := opt.GetDefElem()
		if de == nil {
			continue
		}
		switch de.Defname {
		case "language":
			language = strings.ToLower(de.Arg.GetString_().GetSval())
		case "as":
			loc = de.Location
			if l := de.Arg.GetList(); l != nil {
				for _, it := range l.Items {
					bodies = append(bodies, it.GetString_().GetSval())
				}
			} else {
				bodies = append(bodies, de.Arg.GetString_().GetSval())
			}
		}
	}
	for _, body := range bodies {
		var queries []string
		switch language {
		case "sql":
			queries = []string{body}
		case "plpgsql":
			js, err := pg.ParsePlPgSqlToJSON(a.sql)
			if err != nil {
				a.namesProtected(body, loc, what+" whose PL/pgSQL body cannot be parsed and names a protected table")
				return
			}
			var doc any
			if err := json.Unmarshal([]byte(js), &doc); err != nil {
				a.namesProtected(body, loc, what+" whose PL/pgSQL body cannot be read and names a protected table")
				return
			}
			collectQueries(doc, &queries)
		default:
			// C, internal and other languages: their text is not SQL the proxy could read.
			continue
		}
		for _, q := range queries {
			tree, err := pg.Parse(q)
			if err != nil {
				// PL/pgSQL expressions (e.g. "x = 0") are not statements; they cannot write.
				continue
			}
			for _, st := range tree.Stmts {
				a.writesIn(st.Stmt.ProtoReflect(), reason)
			}
		}
	}
}

// collectQueries gathers every "query" string of a PL/pgSQL parse tree (its SQL statements and
// expressions).
func collectQueries(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if s, ok := c.(string); ok && k == "query" {
				*out = append(*out, s)
				continue
			}
			collectQueries(c, out)
		}
	case []any:
		for _, c := range x {
			collectQueries(c, out)
		}
	}
}

// writesIn refuses a tree that holds an INSERT, UPDATE, MERGE or COPY FROM into a protected
// table.
func (a *analyzer) writesIn(m protoreflect.Message, reason string) {
	if a.failed() {
		return
	}
	var target *pg.RangeVar
	switch x := m.Interface().(type) {
	case *pg.InsertStmt:
		target = x.Relation
	case *pg.UpdateStmt:
		target = x.Relation
	case *pg.MergeStmt:
		target = x.Relation
	case *pg.CopyStmt:
		if x.IsFrom {
			target = x.Relation
		}
	}
	if target != nil && len(a.lookup(target.Schemaname, target.Relname)) > 0 {
		a.reject(Column{Schema: target.Schemaname, Table: target.Relname}, target.Location, reason, hintOutsideProxy)
		return
	}
	eachChild(m, func(c protoreflect.Message) bool {
		a.writesIn(c, reason)
		return !a.failed()
	})
}

// namesProtected refuses text (a function body) that names a protected relation.
func (a *analyzer) namesProtected(text string, loc int32, reason string) {
	scanNames(text, func(name string) bool {
		for _, cand := range []string{strings.Clone(name), foldASCII(name)} {
			if schemas := a.schema.SchemasOf(cand); len(schemas) > 0 {
				sort.Strings(schemas)
				a.reject(Column{Schema: schemas[0], Table: cand}, loc, reason, hintOutsideProxy)
				return false
			}
		}
		return true
	})
}

// rename refuses renaming a protected table, view or column, and moving a protected table to
// another schema: the policy names them, so they would silently stop being protected.
func (a *analyzer) rename(rv *pg.RangeVar, column string, isColumn bool) {
	if rv == nil {
		return
	}
	t := a.resolveTable(rv, false)
	if len(t.prot) == 0 {
		return
	}
	if isColumn {
		col, ok := t.prot[column]
		if !ok {
			return
		}
		a.reject(col, rv.Location, "renaming a protected column; the policy names it, so it would no longer be protected",
			"change the policy first (keep the column's id so existing ciphertext still decrypts), then rename it directly in the database")
		return
	}
	a.reject(Column{Schema: t.schema, Table: t.name}, rv.Location,
		"renaming or moving a table with protected columns; the policy names it, so its columns would no longer be protected",
		"change the policy first (keep each column's id so existing ciphertext still decrypts), then rename it directly in the database")
}
