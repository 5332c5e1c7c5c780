package analyze

import (
	"sort"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Reasons for rejecting a use of a protected column (RejectError.Reason).
const (
	whyExpr     = "protected column used inside an expression"
	whyWhere    = "protected column in a WHERE condition"
	whyJoin     = "protected column in a JOIN condition"
	whyHaving   = "protected column in a HAVING condition"
	whyOrder    = "ORDER BY on a protected column"
	whyGroup    = "GROUP BY on a protected column"
	whyDistinct = "SELECT DISTINCT over a protected column"
	whyDistOn   = "DISTINCT ON a protected column"
	whyWindow   = "protected column in a window definition"
	whySetOp    = "protected column in UNION (without ALL), INTERSECT or EXCEPT, which compare values"
	whySubExpr  = "protected column returned by a sub-select that is compared or used in an expression"
	whyFunc     = "protected column passed to a function in FROM"
)

// expr checks an expression in which a protected column may appear only as
// the argument of IS [NOT] NULL or of count(); any other occurrence is
// rejected with reason why.
func (a *analyzer) expr(n *pg.Node, sc *scope, why string) {
	if n == nil || a.failed() {
		return
	}
	switch x := n.Node.(type) {
	case nil:
	case *pg.Node_ColumnRef:
		if c, ok := a.resolveRef(x.ColumnRef, sc); ok {
			a.reject(c, x.ColumnRef.Location, why, hintRead)
		}
	case *pg.Node_ParamRef:
		a.useParam(int(x.ParamRef.Number), x.ParamRef.Location)
	case *pg.Node_NullTest:
		if cr := x.NullTest.Arg.GetColumnRef(); cr != nil {
			a.resolveRef(cr, sc) // nullness of ciphertext is nullness of plaintext
			return
		}
		a.expr(x.NullTest.Arg, sc, why)
	case *pg.Node_FuncCall:
		fc := x.FuncCall
		if isCountOfColumn(fc) {
			a.expr(fc.AggFilter, sc, why)
			a.visit(fc.Over.ProtoReflect(), sc, whyWindow)
			return
		}
		a.children(n, sc, why)
	case *pg.Node_SubLink:
		sl := x.SubLink
		a.expr(sl.Testexpr, sc, why)
		if sl.SubLinkType == pg.SubLinkType_EXISTS_SUBLINK {
			a.query(sl.Subselect, sc, "")
		} else {
			a.query(sl.Subselect, sc, whySubExpr)
		}
	case *pg.Node_SelectStmt:
		a.selectStmt(x.SelectStmt, sc, why)
	case *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt, *pg.Node_MergeStmt:
		a.stmt(n, sc)
	default:
		a.children(n, sc, why)
	}
}

// children checks every child of n as an expression.
func (a *analyzer) children(n *pg.Node, sc *scope, why string) {
	eachChild(n.ProtoReflect(), func(m protoreflect.Message) bool {
		return a.visit(m, sc, why)
	})
}

// visit dispatches a message found by reflection.
func (a *analyzer) visit(m protoreflect.Message, sc *scope, why string) bool {
	if !m.IsValid() {
		return !a.failed()
	}
	switch x := m.Interface().(type) {
	case *pg.Node:
		a.expr(x, sc, why)
	case *pg.SelectStmt:
		a.selectStmt(x, sc, why)
	case *pg.RangeVar, *pg.TypeName, *pg.Alias:
		// names only
	default:
		eachChild(m, func(c protoreflect.Message) bool { return a.visit(c, sc, why) })
	}
	return !a.failed()
}

func isCountOfColumn(fc *pg.FuncCall) bool {
	names := stringsOf(fc.Funcname)
	if len(names) == 2 && names[0] == "pg_catalog" {
		names = names[1:]
	}
	if len(names) != 1 || names[0] != "count" || len(fc.Args) != 1 || fc.AggDistinct ||
		len(fc.AggOrder) > 0 || fc.AggWithinGroup || fc.FuncVariadic {
		return false
	}
	cr := fc.Args[0].GetColumnRef()
	return cr != nil && !isStar(cr)
}

// passValue checks a value in a position where a protected column may pass
// through unchanged (a select-list or RETURNING item, a value assigned to an
// unprotected column) and returns the protected column it passes, if any.
func (a *analyzer) passValue(n *pg.Node, sc *scope) *Column {
	if n == nil || a.failed() {
		return nil
	}
	if cr := n.GetColumnRef(); cr != nil && !isStar(cr) {
		if c, ok := a.resolveRef(cr, sc); ok {
			return &c
		}
		return nil
	}
	if sl := n.GetSubLink(); sl != nil {
		switch sl.SubLinkType {
		case pg.SubLinkType_EXPR_SUBLINK, pg.SubLinkType_ARRAY_SUBLINK, pg.SubLinkType_MULTIEXPR_SUBLINK:
			a.expr(sl.Testexpr, sc, whyExpr)
			outs := a.query(sl.Subselect, sc, "")
			for _, o := range outs {
				if o.col != nil {
					return o.col
				}
			}
			return nil
		}
	}
	a.expr(n, sc, whyExpr)
	return nil
}

// query analyses a sub-query (normally a SelectStmt node).
func (a *analyzer) query(n *pg.Node, sc *scope, why string) []outCol {
	if s := n.GetSelectStmt(); s != nil {
		return a.selectStmt(s, sc, why)
	}
	return a.stmt(n, sc)
}

// selectStmt analyses one query level and returns its output columns. With
// why == "" protected columns may pass through its select list; otherwise
// they are rejected there with reason why.
func (a *analyzer) selectStmt(s *pg.SelectStmt, sc *scope, why string) []outCol {
	if s == nil || a.failed() {
		return nil
	}
	sc = a.with(s.WithClause, sc)
	if s.Op != pg.SetOperation_SETOP_NONE && s.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
		armWhy := why
		if armWhy == "" && !(s.Op == pg.SetOperation_SETOP_UNION && s.All) {
			armWhy = whySetOp
		}
		out := mergeOuts(a.selectStmt(s.Larg, sc, armWhy), a.selectStmt(s.Rarg, sc, armWhy))
		lvl := newLevel(sc, derivedRel("", out, nil))
		a.ordering(sortNodes(s.SortClause), out, lvl, whyOrder, true)
		a.expr(s.LimitOffset, sc, whyExpr)
		a.expr(s.LimitCount, sc, whyExpr)
		return out
	}
	if len(s.ValuesLists) > 0 {
		var out []outCol
		for ri, row := range s.ValuesLists {
			for i, it := range row.GetList().GetItems() {
				var c *Column
				if why == "" {
					c = a.passValue(it, sc)
				} else {
					a.expr(it, sc, why)
				}
				if ri == 0 {
					out = append(out, outCol{name: "column" + itoa(i+1)})
				}
				if c != nil && i < len(out) && out[i].col == nil {
					out[i].col = c
				}
			}
		}
		lvl := newLevel(sc, derivedRel("", out, nil))
		a.ordering(sortNodes(s.SortClause), out, lvl, whyOrder, true)
		a.expr(s.LimitOffset, sc, whyExpr)
		a.expr(s.LimitCount, sc, whyExpr)
		return out
	}
	lvl := a.fromLevel(s.FromClause, sc)
	plainDistinct := len(s.DistinctClause) == 1 && s.DistinctClause[0].GetNode() == nil
	twhy := why
	if twhy == "" && plainDistinct {
		twhy = whyDistinct
	}
	out := a.targetList(s.TargetList, lvl, twhy)
	if !plainDistinct {
		a.ordering(s.DistinctClause, out, lvl, whyDistOn, true)
	}
	a.expr(s.WhereClause, lvl, whyWhere)
	a.ordering(s.GroupClause, out, lvl, whyGroup, false)
	a.expr(s.HavingClause, lvl, whyHaving)
	for _, w := range s.WindowClause {
		a.expr(w, lvl, whyWindow)
	}
	a.ordering(sortNodes(s.SortClause), out, lvl, whyOrder, true)
	a.expr(s.LimitOffset, lvl, whyExpr)
	a.expr(s.LimitCount, lvl, whyExpr)
	return out
}

func sortNodes(sorts []*pg.Node) []*pg.Node {
	out := make([]*pg.Node, 0, len(sorts))
	for _, n := range sorts {
		if sb := n.GetSortBy(); sb != nil {
			out = append(out, sb.Node)
		} else {
			out = append(out, n)
		}
	}
	return out
}

// ordering checks ORDER BY, GROUP BY and DISTINCT ON items, which may name
// an output column by position or by name as well as by expression.
// outputFirst says a bare name means an output column before an input one
// (ORDER BY); for GROUP BY both readings are checked.
func (a *analyzer) ordering(items []*pg.Node, out []outCol, lvl *scope, why string, outputFirst bool) {
	for _, n := range items {
		if n == nil || a.failed() {
			continue
		}
		if gs := n.GetGroupingSet(); gs != nil {
			a.ordering(gs.Content, out, lvl, why, outputFirst)
			continue
		}
		if c := n.GetAConst(); c != nil && c.GetIval() != nil {
			a.checkOrdinal(int(c.GetIval().Ival), out, c.Location, why)
			continue
		}
		if cr := n.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && cr.Fields[0].GetString_() != nil {
			name := cr.Fields[0].GetString_().Sval
			matched := false
			for _, o := range out {
				if o.name == name {
					matched = true
					if o.col != nil {
						a.reject(*o.col, cr.Location, why, hintRead)
						return
					}
				}
			}
			if matched && outputFirst {
				continue
			}
		}
		a.expr(n, lvl, why)
	}
}

// checkOrdinal checks ORDER BY k / GROUP BY k against output column k.
func (a *analyzer) checkOrdinal(k int, out []outCol, loc int32, why string) {
	pos := 0
	for i, o := range out {
		if o.unknown {
			// Positions from here on are unknown: refuse if any may be protected.
			for _, o2 := range out[i:] {
				if o2.col != nil {
					a.reject(*o2.col, loc, why+" (by position, after a * whose columns the proxy does not know)", hintRead)
					return
				}
			}
			return
		}
		pos++
		if pos == k {
			if o.col != nil {
				a.reject(*o.col, loc, why, hintRead)
			}
			return
		}
	}
}

// targetList checks a select list or RETURNING list and returns its outputs.
func (a *analyzer) targetList(list []*pg.Node, lvl *scope, why string) []outCol {
	var out []outCol
	for _, n := range list {
		if a.failed() {
			return out
		}
		rt := n.GetResTarget()
		if rt == nil {
			a.expr(n, lvl, whyExpr)
			continue
		}
		if cr := rt.Val.GetColumnRef(); cr != nil && isStar(cr) {
			outs := a.expandStar(cr, lvl)
			if why != "" {
				for _, o := range outs {
					if o.col != nil {
						a.reject(*o.col, cr.Location, why, hintRead)
						return out
					}
				}
			}
			out = append(out, outs...)
			continue
		}
		name := rt.Name
		if name == "" {
			name = outputName(rt.Val)
		}
		var c *Column
		if why == "" {
			c = a.passValue(rt.Val, lvl)
		} else {
			a.expr(rt.Val, lvl, why)
		}
		out = append(out, outCol{name: name, col: c})
	}
	return out
}

// expandStar expands * or q.* at the current level.
func (a *analyzer) expandStar(cr *pg.ColumnRef, lvl *scope) []outCol {
	var names []string
	for _, f := range cr.Fields {
		if s := f.GetString_(); s != nil {
			names = append(names, s.Sval)
		}
	}
	if len(names) > 0 {
		if r := lvl.findRel(names); r != nil {
			return starOuts(r)
		}
		return []outCol{{unknown: true}}
	}
	return append([]outCol(nil), lvl.star...)
}

// outputName is the column name PostgreSQL gives an unnamed select-list item
// (FigureColname), as far as name resolution here needs it.
func outputName(n *pg.Node) string {
	switch x := n.GetNode().(type) {
	case *pg.Node_ColumnRef:
		f := x.ColumnRef.Fields
		if len(f) > 0 {
			if s := f[len(f)-1].GetString_(); s != nil {
				return s.Sval
			}
		}
	case *pg.Node_TypeCast:
		if name := outputName(x.TypeCast.Arg); name != "?column?" {
			return name
		}
		if names := stringsOf(x.TypeCast.GetTypeName().GetNames()); len(names) > 0 {
			return names[len(names)-1]
		}
	case *pg.Node_FuncCall:
		if names := stringsOf(x.FuncCall.Funcname); len(names) > 0 {
			return names[len(names)-1]
		}
	}
	return "?column?"
}

// fromLevel builds the scope of a FROM list.
func (a *analyzer) fromLevel(items []*pg.Node, sc *scope) *scope {
	lvl := &scope{parent: sc}
	for _, it := range items {
		a.addFrom(lvl, it)
	}
	return lvl
}

// addFrom adds one FROM item to lvl.
func (a *analyzer) addFrom(lvl *scope, n *pg.Node) {
	_, star := a.fromItem(n, lvl)
	lvl.star = append(lvl.star, star...)
}

// fromItem adds the relations of one FROM item to lvl and returns them with
// the expansion of * over the item.
func (a *analyzer) fromItem(n *pg.Node, lvl *scope) ([]*rel, []outCol) {
	if n == nil || a.failed() {
		return nil, nil
	}
	start := len(lvl.rels)
	var star []outCol
	switch x := n.Node.(type) {
	case *pg.Node_RangeVar:
		r := a.rangeVarRel(x.RangeVar, lvl)
		lvl.rels = append(lvl.rels, r)
		star = starOuts(r)
	case *pg.Node_JoinExpr:
		j := x.JoinExpr
		left, ls := a.fromItem(j.Larg, lvl)
		right, rs := a.fromItem(j.Rarg, lvl)
		using := stringsOf(j.UsingClause)
		for _, name := range using {
			for _, r := range append(append([]*rel(nil), left...), right...) {
				if c, ok := r.prot[name]; ok {
					a.reject(c, location(j.Rarg), "JOIN USING a protected column", hintRead)
					return nil, nil
				}
			}
		}
		unknown := false
		if j.IsNatural {
			a.checkNatural(left, right, location(j.Rarg))
			a.checkNatural(right, left, location(j.Rarg))
			if hasUnknown(ls) || hasUnknown(rs) {
				unknown = true
			} else {
				for _, o := range ls {
					if findOut(rs, o.name) != nil {
						using = append(using, o.name)
					}
				}
			}
		}
		star = joinStar(ls, rs, using, unknown)
		a.expr(j.Quals, lvl, whyJoin)
		if j.Alias != nil {
			r := derivedRel(j.Alias.Aliasname, star, j.Alias.Colnames)
			lvl.rels = append(lvl.rels[:start], r)
			star = starOuts(r)
		}
	case *pg.Node_RangeSubselect:
		rs := x.RangeSubselect
		outs := a.query(rs.Subquery, lvl, "")
		r := derivedRel(rs.GetAlias().GetAliasname(), outs, rs.GetAlias().GetColnames())
		lvl.rels = append(lvl.rels, r)
		star = starOuts(r)
	case *pg.Node_RangeFunction:
		rf := x.RangeFunction
		for _, f := range rf.Functions {
			a.expr(f, lvl, whyFunc)
		}
		r := &rel{name: rf.GetAlias().GetAliasname()}
		lvl.rels = append(lvl.rels, r)
		star = starOuts(r)
	case *pg.Node_RangeTableSample:
		rts := x.RangeTableSample
		_, star = a.fromItem(rts.Relation, lvl)
		for _, arg := range rts.Args {
			a.expr(arg, lvl, whyExpr)
		}
		a.expr(rts.Repeatable, lvl, whyExpr)
	default: // XMLTABLE, JSON_TABLE, …: opaque relations
		a.expr(n, lvl, whyFunc)
		r := &rel{}
		lvl.rels = append(lvl.rels, r)
		star = starOuts(r)
	}
	return append([]*rel(nil), lvl.rels[start:]...), star
}

// joinStar expands * over a join: the USING (or NATURAL) columns first, then
// the other columns of the left and of the right side.
func joinStar(ls, rs []outCol, using []string, unknown bool) []outCol {
	if len(using) == 0 && !unknown {
		return append(append([]outCol(nil), ls...), rs...)
	}
	if unknown || hasUnknown(ls) || hasUnknown(rs) {
		out := []outCol{{unknown: true}}
		for _, o := range append(append([]outCol(nil), ls...), rs...) {
			if o.col != nil {
				out = append(out, outCol{name: o.name, col: o.col, unknown: true})
			}
		}
		return out
	}
	var out []outCol
	for _, name := range using {
		o := outCol{name: name}
		if l := findOut(ls, name); l != nil && l.col != nil {
			o.col = l.col
		} else if r := findOut(rs, name); r != nil {
			o.col = r.col
		}
		out = append(out, o)
	}
	for _, side := range [][]outCol{ls, rs} {
		for _, o := range side {
			if !contains(using, o.name) {
				out = append(out, o)
			}
		}
	}
	return out
}

func hasUnknown(outs []outCol) bool {
	for _, o := range outs {
		if o.unknown {
			return true
		}
	}
	return false
}

func findOut(outs []outCol, name string) *outCol {
	for i := range outs {
		if outs[i].name == name && !outs[i].unknown {
			return &outs[i]
		}
	}
	return nil
}

// checkNatural rejects a NATURAL join that may join on a protected column.
func (a *analyzer) checkNatural(side, other []*rel, loc int32) {
	for _, r := range side {
		names := make([]string, 0, len(r.prot))
		for k := range r.prot {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, name := range names {
			for _, o := range other {
				if _, ok := o.prot[name]; ok || !o.known || contains(o.cols, name) {
					a.reject(r.prot[name], loc, "NATURAL JOIN that may join on a protected column", hintRead)
					return
				}
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// rangeVarRel resolves a relation name in FROM: a CTE in scope, else a table.
func (a *analyzer) rangeVarRel(rv *pg.RangeVar, lvl *scope) *rel {
	if rv.Schemaname == "" {
		if c := lvl.cte(rv.Relname); c != nil {
			r := *c
			if rv.Alias != nil {
				r.name = rv.Alias.Aliasname
				if len(rv.Alias.Colnames) > 0 {
					return renameRel(&r, stringsOf(rv.Alias.Colnames))
				}
			}
			return &r
		}
	}
	return a.tableRel(a.resolveTable(rv, false), rv.Alias)
}

// with analyses a WITH clause and returns the scope its CTEs are visible in.
// A data-modifying CTE on a table with protected columns is rejected.
func (a *analyzer) with(w *pg.WithClause, sc *scope) *scope {
	if w == nil || a.failed() {
		return sc
	}
	ns := &scope{parent: sc, ctes: map[string]*rel{}}
	passes := 1
	if w.Recursive {
		passes = 2 // the second pass sees each CTE's own output columns
	}
	for p := 0; p < passes; p++ {
		for _, n := range w.Ctes {
			cte := n.GetCommonTableExpr()
			if cte == nil || a.failed() {
				continue
			}
			if rv := dmlTarget(cte.Ctequery); rv != nil {
				if t := a.resolveTable(rv, true); t.protected() {
					a.reject(t.firstProt(), rv.Location,
						"data-modifying statement in WITH on a table with protected columns",
						"run it as a separate statement")
					return ns
				}
			}
			outs := a.query(cte.Ctequery, ns, "")
			ns.ctes[cte.Ctename] = derivedRel(cte.Ctename, outs, cte.Aliascolnames)
		}
	}
	return ns
}

// dmlTarget returns the target of an INSERT, UPDATE, DELETE or MERGE.
func dmlTarget(n *pg.Node) *pg.RangeVar {
	switch x := n.GetNode().(type) {
	case *pg.Node_InsertStmt:
		return x.InsertStmt.Relation
	case *pg.Node_UpdateStmt:
		return x.UpdateStmt.Relation
	case *pg.Node_DeleteStmt:
		return x.DeleteStmt.Relation
	case *pg.Node_MergeStmt:
		return x.MergeStmt.Relation
	}
	return nil
}
