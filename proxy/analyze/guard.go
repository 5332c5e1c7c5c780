package analyze

import (
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// Statements that would move a protected column out of the proxy's sight are refused: the
// proxy's policy names columns by name and maps only the statements it parses, so code that
// runs inside the server (functions, procedures, triggers) and renames of protected tables or
// columns would let plaintext through without any statement naming the column. Database
// administrators who need them make them directly in the database, where the CHECK constraints
// still refuse plaintext, after updating the policy.

const hintOutsideProxy = "create it directly in the database, where the CHECK constraints on protected columns still apply"

// functionBody refuses CREATE FUNCTION or PROCEDURE whose body names a protected table: the
// proxy cannot map what procedural code writes, and arguments reach it as plaintext.
func (a *analyzer) functionBody(s *pg.CreateFunctionStmt) {
	what := "CREATE FUNCTION"
	if s.IsProcedure {
		what = "CREATE PROCEDURE"
	}
	if s.SqlBody != nil {
		found := false
		walkMessages(s.SqlBody.ProtoReflect(), func(rv *pg.RangeVar) {
			if !found && len(a.lookup(rv.Schemaname, rv.Relname)) > 0 {
				found = true
				a.reject(Column{Schema: rv.Schemaname, Table: rv.Relname}, rv.Location,
					what+" whose body names a protected table; the proxy cannot map what the function writes", hintOutsideProxy)
			}
		})
	}
	for _, opt := range s.Options {
		de := opt.GetDefElem()
		if de == nil || de.Defname != "as" {
			continue
		}
		var texts []string
		if l := de.Arg.GetList(); l != nil {
			for _, it := range l.Items {
				texts = append(texts, it.GetString_().GetSval())
			}
		} else {
			texts = append(texts, de.Arg.GetString_().GetSval())
		}
		for _, body := range texts {
			a.namesProtected(body, de.Location, what+" whose body names a protected table; the proxy cannot map what the function writes")
		}
	}
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

// trigger refuses CREATE TRIGGER on a protected table: a trigger function can set NEW's
// protected columns to plaintext.
func (a *analyzer) trigger(s *pg.CreateTrigStmt) {
	if s.Relation == nil {
		return
	}
	if t := a.resolveTable(s.Relation, false); len(t.prot) > 0 {
		a.reject(Column{Schema: t.schema, Table: t.name}, t.loc,
			"CREATE TRIGGER on a table with protected columns; the proxy cannot map what the trigger writes", hintOutsideProxy)
	}
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
