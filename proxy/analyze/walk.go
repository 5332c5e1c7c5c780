package analyze

import (
	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The parse tree has some 250 node types. The analyzer handles the ones that
// carry meaning for it explicitly and visits every other one generically,
// through protobuf reflection, so that no child expression is ever skipped
// because its parent type was not foreseen.

// nodeKind returns the type name of the node inside n ("InsertStmt", …).
func nodeKind(n *pg.Node) string {
	if n == nil || n.Node == nil {
		return ""
	}
	m := n.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("node"))
	if fd == nil {
		return ""
	}
	if md := fd.Message(); md != nil {
		return string(md.Name())
	}
	return string(fd.Name())
}

// eachChild calls fn for every message directly held by m (singular fields
// and list elements), stopping when fn returns false.
func eachChild(m protoreflect.Message, fn func(protoreflect.Message) bool) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		if fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if !fn(l.Get(i).Message()) {
					return false
				}
			}
			return true
		}
		return fn(v.Message())
	})
}

// walkMessages calls fn for every RangeVar anywhere below m.
func walkMessages(m protoreflect.Message, fn func(*pg.RangeVar)) {
	if rv, ok := m.Interface().(*pg.RangeVar); ok {
		fn(rv)
	}
	eachChild(m, func(c protoreflect.Message) bool {
		walkMessages(c, fn)
		return true
	})
}

// stringsOf returns the String values of a list of nodes (names, column lists).
func stringsOf(nodes []*pg.Node) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.GetString_().GetSval())
	}
	return out
}

// castLeaf strips a chain of type casts and returns the innermost node and
// the number of casts removed.
func castLeaf(n *pg.Node) (*pg.Node, int) {
	casts := 0
	for {
		tc := n.GetTypeCast()
		if tc == nil || tc.Arg == nil {
			return n, casts
		}
		n = tc.Arg
		casts++
	}
}

// describe names the kind of an expression for messages, never its content.
func describe(n *pg.Node) string {
	switch x := n.GetNode().(type) {
	case *pg.Node_FuncCall:
		return "a function call"
	case *pg.Node_AExpr:
		return "an operator expression"
	case *pg.Node_BoolExpr:
		return "a boolean expression"
	case *pg.Node_SubLink:
		return "a sub-select"
	case *pg.Node_ColumnRef:
		return "a column reference"
	case *pg.Node_CaseExpr:
		return "a CASE expression"
	case *pg.Node_CoalesceExpr:
		return "COALESCE"
	case *pg.Node_RowExpr:
		return "a ROW constructor"
	case *pg.Node_AArrayExpr:
		return "an ARRAY constructor"
	case *pg.Node_CollateClause:
		return "a COLLATE clause"
	case *pg.Node_AIndirection:
		return "a subscript or field selection"
	case *pg.Node_SqlvalueFunction:
		return "a SQL value function"
	case *pg.Node_TypeCast:
		leaf, _ := castLeaf(n)
		return "a type cast around " + describe(leaf)
	case *pg.Node_AConst:
		if x.AConst.GetBsval() != nil {
			return "a bit-string constant"
		}
		return "a constant"
	case nil:
		return "nothing"
	}
	return "a " + nodeKind(n) + " expression"
}
