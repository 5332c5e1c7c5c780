package analyze

import (
	pg "github.com/pganalyze/pg_query_go/v6"
)

// ViewError reports a view definition whose output columns ViewColumns cannot
// list: text that is not one SELECT, or a * whose columns are unknown. The
// view's columns are then attributed to nothing. It never quotes the text.
type ViewError struct {
	// Reason says what was found.
	Reason string
}

// Error returns the reason.
func (e *ViewError) Error() string { return "fleproxy: view definition: " + e.Reason }

// ViewColumns reads the defining query of a view or materialized view, as
// pg_get_viewdef returns it, and returns one entry per output column, in
// order: the protected column that output column is a plain reference to, or
// nil. The proxy uses it to attribute a view's columns, which RowDescription
// reports with the view's OID and attribute number, to the base columns whose
// ciphertext they carry (DESIGN.md §2 guarantee 2).
//
// A plain reference is a select-list item that is a column reference and
// nothing more, followed through table aliases and column alias lists, joins
// (with or without an alias), sub-selects in FROM (LATERAL included), CTEs,
// and other views (which the schema reports like tables: their protected
// columns are the ones ViewColumns attributed). It is the rule PostgreSQL
// itself applies to mark a result column's origin, extended through views.
//
// Attribution must be certain, since it leads to decryption; where the
// analyzer would have to guess, the column is left unattributed and stays
// ciphertext. So nil is returned for every computed item (casts, operators,
// functions and aggregates, CASE, COALESCE, COLLATE, sub-selects in the select
// list, whole-row references), for every column of a UNION, INTERSECT or
// EXCEPT (ALL or not, even when every branch reads the same column), of a
// recursive CTE and of VALUES, for the merged column of a JOIN USING or
// NATURAL JOIN, for a column of a sub-select or CTE whose name is duplicated
// there, for a bare column name that another relation at the same level might
// also have (a relation whose columns the schema does not list), and for a
// reference to a relation whose name resolves to several schemas.
//
// Schema answers as for [Analyze], with one difference: SchemasOf must give
// the schema an unqualified name in this text denotes, whether the relation is
// protected or not. pg_get_viewdef qualifies every relation not visible on the
// search_path it runs with, so the caller can answer with the one visible
// relation of that name the view depends on. A name for which SchemasOf
// returns several schemas, or none, is treated as a relation of unknown
// columns. ColumnOrder should answer for every relation it can, as known
// columns let bare column names resolve.
//
// It returns a *ParseError if sql does not parse, and a *ViewError if sql is
// not a single SELECT, or if the position of some output column is unknown
// (a * over a relation whose columns the schema does not list).
func ViewColumns(sql string, schema Schema) ([]*Column, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, newParseError(err)
	}
	if len(tree.Stmts) != 1 {
		return nil, &ViewError{Reason: "not a single statement"}
	}
	s := tree.Stmts[0].GetStmt().GetSelectStmt()
	if s == nil || s.IntoClause != nil {
		return nil, &ViewError{Reason: "not a SELECT"}
	}
	w := &viewWalker{schema: schema, anonymous: map[*rel]bool{}, unplaced: map[*rel]bool{}}
	outs := w.selectStmt(s, nil)
	cols := make([]*Column, len(outs))
	for i, o := range outs {
		if o.unknown {
			return nil, &ViewError{Reason: "a * over a relation whose columns are unknown"}
		}
		if o.col != nil {
			c := *o.col
			cols[i] = &c
		}
	}
	return cols, nil
}

// viewWalker follows plain column references through one query. It uses the
// analyzer's scopes and relations, but where the analyzer's checks assume a
// reference may be protected whenever they cannot tell (and reject it), the
// walker attributes a reference only when it is certain, and rejects nothing.
// Every relation it builds holds in prot only names that certainly denote
// that protected column.
type viewWalker struct {
	schema Schema
	// anonymous marks relations whose qualifier is unknown (a function or
	// table function in FROM without an alias): a qualified reference not
	// matched at their level might name them.
	anonymous map[*rel]bool
	// unplaced marks tables whose schema is unknown: a schema-qualified
	// reference with their name might name them.
	unplaced map[*rel]bool
}

// unknownOuts stands for output columns of unknown number and names.
func unknownOuts() []outCol { return []outCol{{unknown: true}} }

// query returns the output columns of a sub-query; a statement other than a
// SELECT (a data-modifying CTE, which views do not allow) gives unknown ones.
func (w *viewWalker) query(n *pg.Node, sc *scope) []outCol {
	if s := n.GetSelectStmt(); s != nil {
		return w.selectStmt(s, sc)
	}
	return unknownOuts()
}

// selectStmt returns the output columns of one query level, each with the
// protected column it plainly references, if any.
func (w *viewWalker) selectStmt(s *pg.SelectStmt, sc *scope) []outCol {
	if s == nil {
		return unknownOuts()
	}
	sc = w.with(s.WithClause, sc)
	if s.Op != pg.SetOperation_SETOP_NONE && s.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
		// A set operation's column is not a plain reference, even when every
		// branch reads the same column: PostgreSQL marks no origin for it.
		// Names and number come from the left branch.
		out := w.selectStmt(s.Larg, sc)
		for i := range out {
			out[i].col = nil
		}
		return out
	}
	if len(s.ValuesLists) > 0 {
		var out []outCol
		for i := range s.ValuesLists[0].GetList().GetItems() {
			out = append(out, outCol{name: "column" + itoa(i+1)})
		}
		return out
	}
	lvl := w.fromLevel(s.FromClause, sc)
	var out []outCol
	for _, n := range s.TargetList {
		rt := n.GetResTarget()
		if rt == nil {
			out = append(out, outCol{name: "?column?"})
			continue
		}
		cr := rt.Val.GetColumnRef()
		if cr != nil && isStar(cr) {
			out = append(out, w.expandStar(cr, lvl)...)
			continue
		}
		if ind := rt.Val.GetAIndirection(); ind != nil && len(ind.Indirection) > 0 &&
			ind.Indirection[len(ind.Indirection)-1].GetAStar() != nil {
			out = append(out, unknownOuts()...) // (composite).*: as many columns as the type has
			continue
		}
		o := outCol{name: rt.Name}
		if o.name == "" {
			o.name = outputName(rt.Val)
		}
		if cr != nil {
			o.col = w.ref(cr, lvl)
		}
		out = append(out, o)
	}
	return out
}

// with returns the scope in which the CTEs of a WITH clause are visible. In
// WITH RECURSIVE every CTE is visible from the start, to all of them, as a
// relation of unknown columns until its own definition has been read, so a
// self-reference or forward reference attributes nothing.
func (w *viewWalker) with(wc *pg.WithClause, sc *scope) *scope {
	if wc == nil {
		return sc
	}
	ns := &scope{parent: sc, ctes: map[string]*rel{}}
	if wc.Recursive {
		for _, n := range wc.Ctes {
			if cte := n.GetCommonTableExpr(); cte != nil {
				ns.ctes[cte.Ctename] = &rel{name: cte.Ctename}
			}
		}
	}
	for _, n := range wc.Ctes {
		cte := n.GetCommonTableExpr()
		if cte == nil {
			continue
		}
		outs := w.query(cte.Ctequery, ns)
		ns.ctes[cte.Ctename] = derived(cte.Ctename, outs, cte.Aliascolnames)
	}
	return ns
}

// fromLevel builds the scope of a FROM list.
func (w *viewWalker) fromLevel(items []*pg.Node, sc *scope) *scope {
	lvl := &scope{parent: sc}
	for _, it := range items {
		lvl.star = append(lvl.star, w.fromItem(it, lvl)...)
	}
	return lvl
}

// fromItem adds the relations of one FROM item to lvl and returns the
// expansion of * over the item.
func (w *viewWalker) fromItem(n *pg.Node, lvl *scope) []outCol {
	start := len(lvl.rels)
	switch x := n.GetNode().(type) {
	case *pg.Node_RangeVar:
		r := w.rangeVarRel(x.RangeVar, lvl)
		lvl.rels = append(lvl.rels, r)
		return starOuts(r)
	case *pg.Node_JoinExpr:
		j := x.JoinExpr
		ls := w.fromItem(j.Larg, lvl)
		rs := w.fromItem(j.Rarg, lvl)
		using := stringsOf(j.UsingClause)
		star := joinOuts(ls, rs, using, j.IsNatural)
		if j.Alias != nil {
			// The alias hides the relations inside the join.
			r := derived(j.Alias.Aliasname, star, j.Alias.Colnames)
			lvl.rels = append(lvl.rels[:start], r)
			return starOuts(r)
		}
		if a := j.JoinUsingAlias; a != nil {
			// JOIN … USING (…) AS alias names the merged columns only.
			lvl.rels = append(lvl.rels, &rel{name: a.Aliasname, cols: using, known: true})
		}
		return star
	case *pg.Node_RangeSubselect:
		rs := x.RangeSubselect
		// Only a LATERAL sub-select sees the FROM items before it; the others
		// look past this level (PostgreSQL skips the siblings, it does not
		// stop at them).
		outer := lvl.parent
		if rs.Lateral {
			outer = lvl
		}
		outs := w.query(rs.Subquery, outer)
		r := derived(rs.GetAlias().GetAliasname(), outs, rs.GetAlias().GetColnames())
		lvl.rels = append(lvl.rels, r)
		return starOuts(r)
	case *pg.Node_RangeFunction:
		alias := x.RangeFunction.GetAlias()
		r := &rel{name: alias.GetAliasname()}
		if alias == nil {
			w.anonymous[r] = true
		}
		lvl.rels = append(lvl.rels, r)
		return starOuts(r)
	case *pg.Node_RangeTableSample:
		return w.fromItem(x.RangeTableSample.Relation, lvl)
	default: // XMLTABLE, JSON_TABLE, …: columns unknown, name not followed
		r := &rel{}
		w.anonymous[r] = true
		lvl.rels = append(lvl.rels, r)
		return starOuts(r)
	}
}

// rangeVarRel resolves a relation name in FROM: a CTE in scope, else a table
// (or view) of the schema.
func (w *viewWalker) rangeVarRel(rv *pg.RangeVar, lvl *scope) *rel {
	if rv.Schemaname == "" {
		if c := lvl.cte(rv.Relname); c != nil {
			if rv.Alias == nil {
				return c
			}
			r := *c
			r.name = rv.Alias.Aliasname
			return rename(&r, rv.Alias.Colnames)
		}
	}
	r := &rel{name: rv.Relname, schema: rv.Schemaname}
	if r.schema == "" {
		if schemas := w.schema.SchemasOf(rv.Relname); len(schemas) == 1 {
			r.schema = schemas[0]
		}
	}
	if r.schema != "" {
		r.prot = w.schema.ProtectedColumns(r.schema, r.name)
		r.cols, r.known = w.schema.ColumnOrder(r.schema, r.name)
		if r.known {
			// A protected name the relation does not have (a column the
			// policy names but the table lacks) denotes nothing here.
			for name := range r.prot {
				if !contains(r.cols, name) {
					r.prot = knownOnly(r.prot, r.cols)
					break
				}
			}
		}
	}
	if rv.Alias != nil {
		r.name, r.schema = rv.Alias.Aliasname, ""
		return rename(r, rv.Alias.Colnames)
	}
	if r.schema == "" {
		w.unplaced[r] = true
	}
	return r
}

// knownOnly returns the entries of prot whose names are in cols, in a new map
// (the schema's map is not the walker's to change).
func knownOnly(prot map[string]Column, cols []string) map[string]Column {
	out := make(map[string]Column, len(prot))
	for name, c := range prot {
		if contains(cols, name) {
			out[name] = c
		}
	}
	return out
}

// derived makes the relation of a sub-select, CTE or join alias from its
// output columns, renamed by an alias column list if there is one.
func derived(name string, outs []outCol, colnames []*pg.Node) *rel {
	return rename(dedupe(derivedRel(name, outs, nil)), colnames)
}

// rename applies an alias column list. Where the positions of the columns
// are unknown, no name is known to denote a protected column any more.
func rename(r *rel, colnames []*pg.Node) *rel {
	if len(colnames) == 0 {
		return r
	}
	if !r.known {
		return &rel{name: r.name, schema: r.schema}
	}
	return dedupe(renameRel(r, stringsOf(colnames)))
}

// dedupe forgets the protection of a name that more than one column of r
// bears: which of them a reference or a * position means is not known by
// name.
func dedupe(r *rel) *rel {
	seen := make(map[string]bool, len(r.cols))
	for _, c := range r.cols {
		if seen[c] {
			delete(r.prot, c)
		}
		seen[c] = true
	}
	return r
}

// joinOuts expands * over a join. A merged column of USING or NATURAL is
// attributed to nothing: it is COALESCE(left, right) in a FULL join and one
// side's column otherwise.
func joinOuts(ls, rs []outCol, using []string, natural bool) []outCol {
	if natural {
		if hasUnknown(ls) || hasUnknown(rs) {
			return unknownOuts() // which names merge is unknown
		}
		for _, o := range ls {
			if findOut(rs, o.name) != nil {
				using = append(using, o.name)
			}
		}
	}
	if hasUnknown(ls) || hasUnknown(rs) {
		out := unknownOuts()
		for _, side := range [][]outCol{ls, rs} {
			for _, o := range side {
				if o.col != nil && o.name != "" && !contains(using, o.name) {
					out = append(out, outCol{name: o.name, col: o.col, unknown: true})
				}
			}
		}
		return out
	}
	var out []outCol
	for _, name := range using {
		out = append(out, outCol{name: name})
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

// expandStar expands * or q.* in a select list.
func (w *viewWalker) expandStar(cr *pg.ColumnRef, lvl *scope) []outCol {
	var names []string
	for _, f := range cr.Fields {
		if s := f.GetString_(); s != nil {
			names = append(names, s.Sval)
		}
	}
	if len(names) == 0 {
		return append([]outCol(nil), lvl.star...)
	}
	if r := w.findRel(names, lvl); r != nil {
		return starOuts(r)
	}
	return unknownOuts()
}

// ref returns the protected column a column reference certainly denotes.
func (w *viewWalker) ref(cr *pg.ColumnRef, sc *scope) *Column {
	names := make([]string, 0, len(cr.Fields))
	for _, f := range cr.Fields {
		s := f.GetString_()
		if s == nil {
			return nil
		}
		names = append(names, s.Sval)
	}
	switch len(names) {
	case 1:
		return w.bare(names[0], sc)
	case 2, 3, 4:
		// q.col, schema.table.col, catalog.schema.table.col. PostgreSQL tries
		// the qualifier as a relation first; if none matches, the reference
		// is a field of a composite column, which is not plain.
		r := w.findRel(names[:len(names)-1], sc)
		if r == nil {
			return nil
		}
		if c, ok := r.prot[names[len(names)-1]]; ok {
			return &c
		}
	}
	return nil
}

// bare resolves an unqualified column name: the innermost level that has a
// relation with that column decides. It answers only when exactly one
// relation at that level has the column and every other relation there is
// known to lack it. (Two relations having it means a merged USING column,
// since the view was valid SQL; one of unknown columns might be that.)
func (w *viewWalker) bare(name string, sc *scope) *Column {
	for s := sc; s != nil; s = s.parent {
		var found *rel
		n, unsure := 0, false
		for _, r := range s.rels {
			if _, ok := r.prot[name]; ok || r.known && contains(r.cols, name) {
				n++
				found = r
			} else if !r.known {
				unsure = true
			}
		}
		switch {
		case n > 1 || unsure:
			return nil
		case n == 1:
			if c, ok := found.prot[name]; ok {
				return &c
			}
			return nil
		}
	}
	return nil
}

// findRel returns the relation a qualifier certainly names, searching from
// the innermost level outwards; nil if none does or if it cannot tell.
func (w *viewWalker) findRel(qual []string, sc *scope) *rel {
	table := qual[len(qual)-1]
	for s := sc; s != nil; s = s.parent {
		unsure := false
		for _, r := range s.rels {
			if r.matches(qual) {
				return r
			}
			if len(qual) == 1 && w.anonymous[r] || len(qual) > 1 && w.unplaced[r] && r.name == table {
				unsure = true
			}
		}
		if unsure {
			return nil
		}
	}
	return nil
}
