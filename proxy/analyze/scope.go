package analyze

import (
	"sort"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// rel is a relation visible at one query level: a table, a CTE, a sub-select
// or function in FROM, a join with an alias, EXCLUDED, or a rule's NEW/OLD.
type rel struct {
	name   string            // qualifier: alias, table, CTE name; "" if none
	schema string            // schema for schema.table.col references; "" if not referable so
	prot   map[string]Column // protected columns visible through it, by visible name
	cols   []string          // visible column names in order, when known
	known  bool              // cols is complete and ordered
}

// scope is one query level (its FROM items) and the CTEs defined there; the
// parent chain gives outer levels, for correlated references and CTEs.
type scope struct {
	parent *scope
	rels   []*rel
	ctes   map[string]*rel
	// star is the expansion of * at this level, in FROM order.
	star []outCol
}

// newLevel makes a query level over the given relations.
func newLevel(parent *scope, rels ...*rel) *scope {
	s := &scope{parent: parent, rels: rels}
	for _, r := range rels {
		s.star = append(s.star, starOuts(r)...)
	}
	return s
}

func (s *scope) cte(name string) *rel {
	for ; s != nil; s = s.parent {
		if r, ok := s.ctes[name]; ok {
			return r
		}
	}
	return nil
}

// findRel returns the innermost relation a qualifier names.
func (s *scope) findRel(qual []string) *rel {
	for ; s != nil; s = s.parent {
		for _, r := range s.rels {
			if r.matches(qual) {
				return r
			}
		}
	}
	return nil
}

func (r *rel) matches(qual []string) bool {
	switch len(qual) {
	case 1:
		return r.name != "" && r.name == qual[0]
	case 2:
		return r.schema != "" && r.schema == qual[0] && r.name == qual[1]
	case 3: // catalog.schema.table: the catalog can only be the current database
		return r.schema != "" && r.schema == qual[1] && r.name == qual[2]
	}
	return false
}

// outCol is one output column of a query level.
type outCol struct {
	name string
	col  *Column // the protected column whose value it passes through, if any
	// unknown marks an output of unknown position: a * over a relation whose
	// columns are not known (name "" and col nil stand for "some columns").
	unknown bool
}

// tableRel makes the relation for a table in FROM (or a DML target).
func (a *analyzer) tableRel(t *table, alias *pg.Alias) *rel {
	r := &rel{name: t.name, schema: t.schema, prot: t.prot}
	if t.schema != "" {
		r.cols, r.known = a.schema.ColumnOrder(t.schema, t.name)
	}
	if alias != nil {
		r.name, r.schema = alias.Aliasname, ""
		if len(alias.Colnames) > 0 {
			r = renameRel(r, stringsOf(alias.Colnames))
		}
	}
	return r
}

// renameRel applies an alias column list, which renames columns by position.
func renameRel(r *rel, names []string) *rel {
	out := &rel{name: r.name, schema: r.schema, known: r.known, prot: map[string]Column{}}
	if r.known {
		for i, c := range r.cols {
			nm := c
			if i < len(names) {
				nm = names[i]
			}
			out.cols = append(out.cols, nm)
			if col, ok := r.prot[c]; ok {
				out.prot[nm] = col
			}
		}
		return out
	}
	// Positions unknown: keep the old names and treat every new name as
	// possibly protected.
	for k, v := range r.prot {
		out.prot[k] = v
	}
	if len(r.prot) > 0 {
		first := firstOf(r.prot, nil)
		for _, nm := range names {
			if _, ok := out.prot[nm]; !ok {
				out.prot[nm] = first
			}
		}
	}
	return out
}

// derivedRel makes the relation of a sub-select, CTE or VALUES list.
func derivedRel(name string, outs []outCol, colnames []*pg.Node) *rel {
	r := &rel{name: name, known: true, prot: map[string]Column{}}
	for _, o := range outs {
		if o.unknown {
			r.known = false
			if o.col != nil && o.name != "" {
				r.prot[o.name] = *o.col
			}
			continue
		}
		r.cols = append(r.cols, o.name)
		if o.col != nil {
			r.prot[o.name] = *o.col
		}
	}
	if !r.known {
		r.cols = nil
	}
	if len(colnames) > 0 {
		r = renameRel(r, stringsOf(colnames))
	}
	return r
}

// starOuts expands * over r.
func starOuts(r *rel) []outCol {
	var out []outCol
	if r.known {
		for _, c := range r.cols {
			o := outCol{name: c}
			if col, ok := r.prot[c]; ok {
				o.col = &col
			}
			out = append(out, o)
		}
		return out
	}
	out = append(out, outCol{unknown: true})
	names := make([]string, 0, len(r.prot))
	for k := range r.prot {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		col := r.prot[k]
		out = append(out, outCol{name: k, col: &col, unknown: true})
	}
	return out
}

// mergeOuts combines the outputs of the two arms of a set operation: names
// come from the left arm, protection from either.
func mergeOuts(l, r []outCol) []outCol {
	out := append([]outCol(nil), l...)
	positional := len(l) == len(r)
	for _, o := range append(append([]outCol(nil), l...), r...) {
		if o.unknown {
			positional = false
		}
	}
	if positional {
		for i := range out {
			if out[i].col == nil {
				out[i].col = r[i].col
			}
		}
		return out
	}
	for i, o := range r {
		if o.col == nil {
			continue
		}
		if !o.unknown && i < len(out) && !out[i].unknown && out[i].col == nil {
			out[i].col = o.col
		}
		out = append(out, outCol{name: o.name, col: o.col, unknown: true})
	}
	return out
}

// resolveRef reports whether a column reference may denote (or contain) a
// protected column, and which. Where the scope rules cannot decide, it
// answers yes: a false "no" would let a comparison on ciphertext through.
func (a *analyzer) resolveRef(cr *pg.ColumnRef, sc *scope) (Column, bool) {
	var names []string
	star := false
	for _, f := range cr.Fields {
		switch {
		case f.GetAStar() != nil:
			star = true
		case f.GetString_() != nil:
			names = append(names, f.GetString_().Sval)
		}
	}
	if star {
		if len(names) == 0 {
			if sc != nil {
				for _, r := range sc.rels {
					if len(r.prot) > 0 {
						return firstOf(r.prot, r.cols), true
					}
				}
			}
			return Column{}, false
		}
		if r := sc.findRel(names); r != nil && len(r.prot) > 0 {
			return firstOf(r.prot, r.cols), true
		}
		return Column{}, false
	}
	switch len(names) {
	case 0:
		return Column{}, false
	case 1:
		// The innermost level that has the column wins; a level whose
		// relations are all known and lack it is skipped.
		for s := sc; s != nil; s = s.parent {
			shadowed := false
			for _, r := range s.rels {
				if c, ok := r.prot[names[0]]; ok {
					return c, true
				}
				if r.known && contains(r.cols, names[0]) {
					shadowed = true
				}
			}
			if shadowed {
				return Column{}, false
			}
		}
		// A bare relation name is a whole-row reference.
		if r := sc.findRel(names); r != nil && len(r.prot) > 0 {
			return firstOf(r.prot, r.cols), true
		}
		return Column{}, false
	}
	col := names[len(names)-1]
	if r := sc.findRel(names[:len(names)-1]); r != nil {
		if c, ok := r.prot[col]; ok {
			return c, true
		}
	} else if c, ok := a.allProt[col]; ok {
		return c, true
	}
	// table.column.field: a field of a composite column.
	if len(names) >= 3 {
		if r := sc.findRel(names[len(names)-3 : len(names)-2]); r != nil {
			if c, ok := r.prot[names[len(names)-2]]; ok {
				return c, true
			}
		} else if c, ok := a.allProt[names[len(names)-2]]; ok {
			return c, true
		}
	}
	return Column{}, false
}

func isStar(cr *pg.ColumnRef) bool {
	return len(cr.Fields) > 0 && cr.Fields[len(cr.Fields)-1].GetAStar() != nil
}
