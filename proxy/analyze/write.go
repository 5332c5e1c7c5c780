package analyze

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// stmt analyses a statement (top-level or nested) and returns its output
// columns (the select list, or RETURNING).
func (a *analyzer) stmt(n *pg.Node, sc *scope) []outCol {
	if n == nil || a.failed() {
		return nil
	}
	if sc == nil {
		sc = &scope{}
	}
	switch x := n.Node.(type) {
	case *pg.Node_SelectStmt:
		return a.selectStmt(x.SelectStmt, sc, "")
	case *pg.Node_InsertStmt:
		return a.insert(x.InsertStmt, sc)
	case *pg.Node_UpdateStmt:
		return a.update(x.UpdateStmt, sc)
	case *pg.Node_DeleteStmt:
		return a.delete(x.DeleteStmt, sc)
	case *pg.Node_MergeStmt:
		return a.merge(x.MergeStmt, sc)
	case *pg.Node_CopyStmt:
		a.copyStmt(x.CopyStmt, sc)
	case *pg.Node_ExplainStmt: // EXPLAIN ANALYZE runs the statement
		a.stmt(x.ExplainStmt.Query, sc)
	case *pg.Node_PrepareStmt:
		a.prepare(x.PrepareStmt, sc)
	case *pg.Node_ExecuteStmt:
		a.st.Execute = x.ExecuteStmt.Name
		for _, p := range x.ExecuteStmt.Params {
			a.expr(p, sc, whyExpr)
		}
	case *pg.Node_CreateTableAsStmt:
		a.stmt(x.CreateTableAsStmt.Query, sc)
	case *pg.Node_DeclareCursorStmt:
		a.stmt(x.DeclareCursorStmt.Query, sc)
	case *pg.Node_ViewStmt:
		a.stmt(x.ViewStmt.Query, sc)
	case *pg.Node_RuleStmt:
		a.rule(x.RuleStmt, sc)
	case *pg.Node_DoStmt:
		a.doStmt(x.DoStmt)
	case *pg.Node_CreateFunctionStmt:
		a.functionBody(x.CreateFunctionStmt)
	case *pg.Node_RenameStmt:
		r := x.RenameStmt
		a.rename(r.Relation, r.Subname, r.RenameType == pg.ObjectType_OBJECT_COLUMN)
	case *pg.Node_AlterObjectSchemaStmt:
		a.rename(x.AlterObjectSchemaStmt.Relation, "", false)
	case *pg.Node_AlterTableStmt:
		a.alterTable(x.AlterTableStmt)
	case *pg.Node_CallStmt:
		a.expr(&pg.Node{Node: &pg.Node_FuncCall{FuncCall: x.CallStmt.Funccall}}, sc, whyExpr)
	}
	// Other statements (DDL, utility) are not mapped.
	return nil
}

// target is one column an INSERT writes, when protected.
type target struct {
	name string // column name in the target relation
	col  Column
}

func (a *analyzer) insert(s *pg.InsertStmt, sc *scope) []outCol {
	sc = a.with(s.WithClause, sc)
	if s.Relation == nil || a.failed() {
		return nil
	}
	t := a.resolveTable(s.Relation, true)
	if a.failed() {
		return nil
	}
	if t.protected() {
		if targets, ok := a.insertTargets(s, t); ok && s.SelectStmt != nil {
			a.insertSource(s.SelectStmt.GetSelectStmt(), targets, sc)
		}
	} else if s.SelectStmt != nil {
		a.query(s.SelectStmt, sc, "")
	}
	target := a.tableRel(t, s.Relation.Alias)
	if oc := s.OnConflictClause; oc != nil {
		a.onConflict(oc, t, target, sc)
	}
	return a.targetList(s.ReturningList, newLevel(sc, target), "")
}

// insertTargets returns, for each column the INSERT writes in order, the
// protected column or nil.
func (a *analyzer) insertTargets(s *pg.InsertStmt, t *table) ([]*target, bool) {
	var names []string
	if len(s.Cols) > 0 {
		for _, n := range s.Cols {
			rt := n.GetResTarget()
			if rt == nil {
				continue
			}
			if c, ok := t.prot[rt.Name]; ok && len(rt.Indirection) > 0 {
				a.reject(c, rt.Location, "INSERT into a field or element of a protected column", hintWrite)
				return nil, false
			}
			names = append(names, rt.Name)
		}
	} else if s.SelectStmt != nil {
		cols, ok := a.schema.ColumnOrder(t.schema, t.name)
		if !ok {
			a.reject(t.firstProt(), t.loc,
				"INSERT without a column list into a table with protected columns whose column order the proxy does not know",
				"list the columns: INSERT INTO t (a, b, …)")
			return nil, false
		}
		names = cols
	}
	targets := make([]*target, len(names))
	for i, name := range names {
		if c, ok := t.prot[name]; ok {
			targets[i] = &target{name: name, col: c}
		}
	}
	return targets, true
}

func firstTarget(targets []*target) *target {
	for _, t := range targets {
		if t != nil {
			return t
		}
	}
	return nil
}

// insertSource maps the rows of INSERT … VALUES / INSERT … SELECT onto the
// target columns.
func (a *analyzer) insertSource(s *pg.SelectStmt, targets []*target, sc *scope) {
	if s == nil || a.failed() {
		return
	}
	first := firstTarget(targets)
	if first == nil {
		a.selectStmt(s, sc, "")
		return
	}
	sc = a.with(s.WithClause, sc)
	outs := make([]outCol, len(targets))
	for i, t := range targets {
		outs[i].name = "column" + itoa(i+1)
		if t != nil {
			c := t.col
			outs[i].col = &c
		}
	}
	if s.Op != pg.SetOperation_SETOP_NONE && s.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
		if !(s.Op == pg.SetOperation_SETOP_UNION && s.All) {
			a.reject(first.col, -1,
				"INSERT … SELECT with UNION (without ALL), INTERSECT or EXCEPT into a protected column, which would compare plaintext values",
				hintWrite)
			return
		}
		a.insertSource(s.Larg, targets, sc)
		a.insertSource(s.Rarg, targets, sc)
		a.ordering(sortNodes(s.SortClause), outs, &scope{parent: sc}, whyOrder, true)
		a.expr(s.LimitOffset, sc, whyExpr)
		a.expr(s.LimitCount, sc, whyExpr)
		return
	}
	if len(s.ValuesLists) > 0 {
		for _, row := range s.ValuesLists {
			for i, it := range row.GetList().GetItems() {
				if i < len(targets) && targets[i] != nil {
					a.protectedValue(it, targets[i].col, "", sc)
				} else {
					a.passValue(it, sc)
				}
			}
		}
		a.ordering(sortNodes(s.SortClause), outs, &scope{parent: sc}, whyOrder, true)
		a.expr(s.LimitOffset, sc, whyExpr)
		a.expr(s.LimitCount, sc, whyExpr)
		return
	}
	lvl := a.fromLevel(s.FromClause, sc)
	if len(s.DistinctClause) > 0 {
		a.reject(first.col, -1, "INSERT … SELECT DISTINCT into a protected column, which would compare plaintext values", hintWrite)
		return
	}
	for i, n := range s.TargetList {
		rt := n.GetResTarget()
		if rt == nil {
			continue
		}
		if cr := rt.Val.GetColumnRef(); cr != nil && isStar(cr) {
			a.reject(first.col, cr.Location, "INSERT … SELECT * into a table with protected columns", hintWrite)
			return
		}
		if rt.Name != "" && i < len(outs) {
			outs[i].name = rt.Name
		}
		if i < len(targets) && targets[i] != nil {
			a.protectedValue(rt.Val, targets[i].col, "", lvl)
		} else {
			a.passValue(rt.Val, lvl)
		}
	}
	a.expr(s.WhereClause, lvl, whyWhere)
	a.ordering(s.GroupClause, outs, lvl, whyGroup, false)
	a.expr(s.HavingClause, lvl, whyHaving)
	for _, w := range s.WindowClause {
		a.expr(w, lvl, whyWindow)
	}
	a.ordering(sortNodes(s.SortClause), outs, lvl, whyOrder, true)
	a.expr(s.LimitOffset, lvl, whyExpr)
	a.expr(s.LimitCount, lvl, whyExpr)
}

// protectedValue checks a value written into protected column col: a
// literal, a parameter, NULL or DEFAULT, each optionally under type casts,
// or (in ON CONFLICT DO UPDATE, sameName != "") EXCLUDED.sameName.
func (a *analyzer) protectedValue(n *pg.Node, col Column, sameName string, sc *scope) {
	if n == nil || a.failed() {
		return
	}
	if !slices.Contains(a.st.Writes, col) {
		a.st.Writes = append(a.st.Writes, col)
	}
	leaf, casts := castLeaf(n)
	switch x := leaf.Node.(type) {
	case *pg.Node_AConst:
		c := x.AConst
		if c.Isnull {
			if casts > 0 {
				a.addSite(site{kind: siteNullCast, loc: c.Location, col: col})
			}
			return
		}
		if c.GetBsval() != nil {
			a.reject(col, c.Location, "value is a bit-string constant", hintWrite)
			return
		}
		if c.Location < 0 {
			a.reject(col, location(n), "value is a constant the parser did not locate in the text", hintWrite)
			return
		}
		v := constText(c)
		a.st.Literals = append(a.st.Literals, Literal{Column: col, Value: v, Location: int(c.Location)})
		a.addSite(site{kind: siteLiteral, loc: c.Location, col: col, value: v})
	case *pg.Node_ParamRef:
		p := x.ParamRef
		a.protParam(int(p.Number), p.Location, col)
		if casts > 0 {
			if p.Location < 0 {
				a.reject(col, location(n), "parameter the parser did not locate in the text", hintWrite)
				return
			}
			a.addSite(site{kind: siteParamCast, loc: p.Location, col: col})
		}
	case *pg.Node_SetToDefault:
		// DEFAULT stays DEFAULT.
	case *pg.Node_ColumnRef:
		if sameName != "" && casts == 0 && isExcluded(x.ColumnRef, sameName) {
			a.resolveRef(x.ColumnRef, sc)
			return // EXCLUDED.col is the ciphertext this statement is inserting
		}
		reason := "value is a column reference; copying a column into a protected column is not supported"
		if sameName != "" && isExcludedRef(x.ColumnRef) {
			reason = "value is EXCLUDED of a different column; only EXCLUDED." + sameName + " is supported"
		}
		a.reject(col, x.ColumnRef.Location, reason, hintWrite)
	default:
		a.reject(col, location(n), "value is "+describe(n), hintWrite)
	}
}

func (a *analyzer) addSite(s site) { a.st.sites = append(a.st.sites, s) }

func isExcludedRef(cr *pg.ColumnRef) bool {
	return len(cr.Fields) == 2 && cr.Fields[0].GetString_().GetSval() == "excluded"
}

func isExcluded(cr *pg.ColumnRef, name string) bool {
	return isExcludedRef(cr) && cr.Fields[1].GetString_() != nil && cr.Fields[1].GetString_().Sval == name
}

// constText is the text of a constant as PostgreSQL reads it.
func constText(c *pg.A_Const) string {
	switch {
	case c.GetSval() != nil:
		return c.GetSval().Sval
	case c.GetIval() != nil:
		return strconv.Itoa(int(c.GetIval().Ival))
	case c.GetFval() != nil:
		return c.GetFval().Fval
	case c.GetBoolval() != nil:
		return strconv.FormatBool(c.GetBoolval().Boolval)
	}
	return ""
}

// location returns the first known byte offset in the text of n or below.
func location(n *pg.Node) int32 {
	if n == nil {
		return -1
	}
	return messageLocation(n.ProtoReflect())
}

func messageLocation(m protoreflect.Message) int32 {
	if !m.IsValid() {
		return -1
	}
	if fd := m.Descriptor().Fields().ByName("location"); fd != nil && fd.Kind() == protoreflect.Int32Kind {
		if loc := int32(m.Get(fd).Int()); loc >= 0 {
			return loc
		}
	}
	loc := int32(-1)
	eachChild(m, func(c protoreflect.Message) bool {
		loc = messageLocation(c)
		return loc < 0
	})
	return loc
}

// protParam records $n as written into col.
func (a *analyzer) protParam(n int, loc int32, col Column) {
	if prev, ok := a.st.Params[n]; ok && prev != col {
		a.reject(col, loc, fmt.Sprintf("parameter $%d is written into both %s and %s", n, prev, col),
			"use a separate parameter for each protected column")
		return
	}
	if _, ok := a.otherParam[n]; ok {
		a.reject(col, loc, fmt.Sprintf("parameter $%d is written into this protected column and also used elsewhere in the statement", n),
			"use a separate parameter for the protected value")
		return
	}
	if a.st.Params == nil {
		a.st.Params = map[int]Column{}
	}
	a.st.Params[n] = col
	if a.paramLoc == nil {
		a.paramLoc = map[int]int32{}
	}
	if _, ok := a.paramLoc[n]; !ok {
		a.paramLoc[n] = loc
	}
}

// useParam records a use of $n that does not feed a protected column.
func (a *analyzer) useParam(n int, loc int32) {
	if col, ok := a.st.Params[n]; ok {
		a.reject(col, loc, fmt.Sprintf("parameter $%d is written into this protected column and also used elsewhere in the statement", n),
			"use a separate parameter for the protected value")
		return
	}
	if a.otherParam == nil {
		a.otherParam = map[int]int32{}
	}
	a.otherParam[n] = loc
}

func (a *analyzer) onConflict(oc *pg.OnConflictClause, t *table, target *rel, sc *scope) {
	lvl := newLevel(sc, target, &rel{name: "excluded", prot: t.prot, cols: target.cols, known: target.known})
	if inf := oc.Infer; inf != nil {
		// Naming a protected column as the conflict target only selects its
		// unique index; the comparison happens on ciphertext in the server
		// whether or not it is named.
		for _, e := range inf.IndexElems {
			if ie := e.GetIndexElem(); ie != nil {
				a.expr(ie.Expr, lvl, "protected column in an ON CONFLICT index expression")
			}
		}
		a.expr(inf.WhereClause, lvl, whyWhere)
	}
	if oc.Action == pg.OnConflictAction_ONCONFLICT_UPDATE {
		a.setList(oc.TargetList, t, lvl, true)
		a.expr(oc.WhereClause, lvl, whyWhere)
	}
}

func (a *analyzer) update(s *pg.UpdateStmt, sc *scope) []outCol {
	sc = a.with(s.WithClause, sc)
	if s.Relation == nil || a.failed() {
		return nil
	}
	t := a.resolveTable(s.Relation, true)
	if a.failed() {
		return nil
	}
	lvl := newLevel(sc, a.tableRel(t, s.Relation.Alias))
	for _, f := range s.FromClause {
		a.addFrom(lvl, f)
	}
	a.setList(s.TargetList, t, lvl, false)
	a.expr(s.WhereClause, lvl, whyWhere)
	return a.targetList(s.ReturningList, lvl, "")
}

// setList checks SET assignments of UPDATE or ON CONFLICT DO UPDATE.
func (a *analyzer) setList(list []*pg.Node, t *table, lvl *scope, onConflict bool) {
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil || a.failed() {
			continue
		}
		col, prot := t.prot[rt.Name]
		if prot && len(rt.Indirection) > 0 {
			a.reject(col, rt.Location, "assignment to a field or element of a protected column", hintWrite)
			return
		}
		for _, ind := range rt.Indirection {
			a.expr(ind, lvl, whyExpr)
		}
		same := ""
		if onConflict {
			same = rt.Name
		}
		if mar := rt.Val.GetMultiAssignRef(); mar != nil {
			// SET (a, b) = (…): the parser gives each target its own copy of
			// the source and its position in it.
			if row := mar.Source.GetRowExpr(); row != nil {
				if i := int(mar.Colno) - 1; i >= 0 && i < len(row.Args) {
					if prot {
						a.protectedValue(row.Args[i], col, same, lvl)
					} else {
						a.passValue(row.Args[i], lvl)
					}
				}
				continue
			}
			if prot {
				a.reject(col, rt.Location, "value is "+describe(mar.Source)+" in a multiple-column assignment", hintWrite)
				return
			}
			if mar.Colno == 1 {
				a.passValue(mar.Source, lvl)
			}
			continue
		}
		if prot {
			a.protectedValue(rt.Val, col, same, lvl)
		} else {
			a.passValue(rt.Val, lvl)
		}
	}
}

func (a *analyzer) delete(s *pg.DeleteStmt, sc *scope) []outCol {
	sc = a.with(s.WithClause, sc)
	if s.Relation == nil || a.failed() {
		return nil
	}
	t := a.resolveTable(s.Relation, false)
	lvl := newLevel(sc, a.tableRel(t, s.Relation.Alias))
	for _, f := range s.UsingClause {
		a.addFrom(lvl, f)
	}
	a.expr(s.WhereClause, lvl, whyWhere)
	return a.targetList(s.ReturningList, lvl, "")
}

func (a *analyzer) merge(s *pg.MergeStmt, sc *scope) []outCol {
	sc = a.with(s.WithClause, sc)
	if s.Relation == nil || a.failed() {
		return nil
	}
	t := a.resolveTable(s.Relation, true)
	if t.protected() {
		a.reject(t.firstProt(), s.Relation.Location, "MERGE into a table with protected columns",
			"use INSERT … ON CONFLICT, UPDATE or DELETE")
	}
	if a.failed() {
		return nil
	}
	lvl := newLevel(sc, a.tableRel(t, s.Relation.Alias))
	a.addFrom(lvl, s.SourceRelation)
	a.expr(s.JoinCondition, lvl, whyJoin)
	for _, w := range s.MergeWhenClauses {
		mw := w.GetMergeWhenClause()
		if mw == nil {
			continue
		}
		a.expr(mw.Condition, lvl, whyWhere)
		for _, n := range mw.TargetList {
			if rt := n.GetResTarget(); rt != nil {
				a.passValue(rt.Val, lvl)
			}
		}
		for _, v := range mw.Values {
			a.passValue(v, lvl)
		}
	}
	return a.targetList(s.ReturningList, lvl, "")
}

// prepare analyses PREPARE name AS stmt. Literals in it are rewritten like
// any other; a parameter written into a protected column is rejected, since
// EXECUTE supplies it as a plaintext literal the proxy cannot map.
func (a *analyzer) prepare(s *pg.PrepareStmt, sc *scope) {
	a.stmt(s.Query, sc)
	if a.failed() || len(a.st.Params) == 0 {
		return
	}
	nums := make([]int, 0, len(a.st.Params))
	for n := range a.st.Params {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	a.reject(a.st.Params[nums[0]], a.paramLoc[nums[0]],
		fmt.Sprintf("SQL PREPARE of a statement whose parameter $%d is written into a protected column; EXECUTE would send its value as plaintext", nums[0]),
		"use the extended query protocol (Parse/Bind), which every driver offers")
}

// rule analyses CREATE RULE: its actions run on every matching write to the
// rule's table, with NEW and OLD naming that table's rows.
func (a *analyzer) rule(s *pg.RuleStmt, sc *scope) {
	if s.Relation == nil {
		return
	}
	t := a.resolveTable(s.Relation, false)
	r := a.tableRel(t, nil)
	lvl := newLevel(sc,
		&rel{name: "new", prot: t.prot, cols: r.cols, known: r.known},
		&rel{name: "old", prot: t.prot, cols: r.cols, known: r.known},
		r)
	a.expr(s.WhereClause, lvl, whyWhere)
	for _, act := range s.Actions {
		a.stmt(act, lvl)
	}
}

// doStmt rejects an anonymous code block whose text names a protected table:
// procedural code can write to it in ways the analyzer cannot map.
func (a *analyzer) doStmt(s *pg.DoStmt) {
	for _, arg := range s.Args {
		de := arg.GetDefElem()
		if de == nil || de.Defname != "as" {
			continue
		}
		body := de.Arg.GetString_().GetSval()
		scanNames(body, func(name string) bool {
			for _, cand := range []string{strings.Clone(name), foldASCII(name)} {
				if schemas := a.schema.SchemasOf(cand); len(schemas) > 0 {
					sort.Strings(schemas)
					a.reject(Column{Schema: schemas[0], Table: cand}, de.Location,
						"DO block whose text names a protected table; the proxy cannot map writes made by procedural code",
						"run the statements directly")
					return false
				}
			}
			return true
		})
	}
}

// alterTable rejects giving a protected column a default or generation
// expression, which would store plaintext without any INSERT naming it.
func (a *analyzer) alterTable(s *pg.AlterTableStmt) {
	if s.Relation == nil {
		return
	}
	t := a.resolveTable(s.Relation, false)
	for _, n := range s.Cmds {
		cmd := n.GetAlterTableCmd()
		if cmd == nil {
			continue
		}
		col, ok := t.prot[cmd.Name]
		if !ok {
			continue
		}
		switch cmd.Subtype {
		case pg.AlterTableType_AT_ColumnDefault:
			if leaf, _ := castLeaf(cmd.Def); cmd.Def != nil && !leaf.GetAConst().GetIsnull() {
				a.reject(col, location(cmd.Def), "a column default on a protected column would store plaintext",
					"protected columns can only default to NULL")
				return
			}
		case pg.AlterTableType_AT_AlterColumnType:
			if cmd.Def.GetColumnDef().GetRawDefault() != nil {
				a.reject(col, location(cmd.Def.GetColumnDef().GetRawDefault()),
					"ALTER COLUMN TYPE … USING on a protected column would rewrite its values inside the server",
					"change the type of a protected column without USING, or re-encrypt through the proxy")
				return
			}
		case pg.AlterTableType_AT_SetExpression, pg.AlterTableType_AT_AddIdentity:
			a.reject(col, s.Relation.Location, "a generated value for a protected column would store plaintext", hintWrite)
			return
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// foldASCII lower-cases ASCII letters, as PostgreSQL folds unquoted identifiers.
func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.Map(func(r rune) rune {
				if 'A' <= r && r <= 'Z' {
					return r + 'a' - 'A'
				}
				return r
			}, s)
		}
	}
	return s
}
