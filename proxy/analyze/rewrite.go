package analyze

import (
	"errors"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// EncryptFunc returns the SQL constant that replaces a plaintext value
// written into col, such as '\x464c45…'::bytea or 'fle1:…'. It must return
// exactly one constant, optionally with type casts. Rewrite never passes a nil
// plaintext: NULL is not encrypted and stays NULL.
type EncryptFunc func(col Column, plaintext *string) (string, error)

// Rewrite returns the query text with every Literal replaced by the constant
// encrypt returns for it, and with the type casts around protected literals,
// parameters and NULLs removed (`$1::text` written into a bytea column
// becomes `$1`), so the server receives only ciphertext and infers the
// storage type. Statements that need no change keep their original text;
// the others are regenerated from the parse tree with pg_query's deparser, so
// their formatting and comments are not preserved. Rewrite does not modify
// the Plan and may be called concurrently. Its errors are *RewriteError.
func (p *Plan) Rewrite(encrypt EncryptFunc) (string, error) {
	if !p.NeedsRewrite() {
		return p.sql, nil
	}
	var b strings.Builder
	last := 0
	for i := range p.Statements {
		st := &p.Statements[i]
		if len(st.sites) == 0 {
			continue
		}
		text, err := p.rewriteStatement(i, encrypt)
		if err != nil {
			return "", err
		}
		b.WriteString(p.sql[last:st.Location])
		if st.Location > 0 {
			b.WriteByte(' ') // the statement's leading white space and comments are regenerated away
		}
		b.WriteString(text)
		last = st.Location + st.Length
	}
	b.WriteString(p.sql[last:])
	return b.String(), nil
}

// leafKey identifies the leaf of a rewrite site.
type leafKey struct {
	param bool // ParamRef rather than A_Const
	loc   int32
}

func (p *Plan) rewriteStatement(i int, encrypt EncryptFunc) (string, error) {
	st := &p.Statements[i]
	repl := map[leafKey]*pg.Node{} // nil: keep the leaf, drop the casts
	for _, s := range st.sites {
		switch s.kind {
		case siteLiteral:
			v := s.value
			lit, err := encrypt(s.col, &v)
			if err != nil {
				return "", &RewriteError{Column: s.col, Err: err}
			}
			node, err := constNode(lit)
			if err != nil {
				return "", &RewriteError{Column: s.col, Err: err}
			}
			repl[leafKey{loc: s.loc}] = node
		case siteParamCast:
			repl[leafKey{param: true, loc: s.loc}] = nil
		case siteNullCast:
			repl[leafKey{loc: s.loc}] = nil
		}
	}
	raw, ok := proto.Clone(p.tree.Stmts[i]).(*pg.RawStmt)
	if !ok {
		return "", &RewriteError{Err: errors.New("cannot copy the parse tree")}
	}
	raw.StmtLocation, raw.StmtLen = 0, 0
	if hasParamZero(raw.ProtoReflect()) {
		// The deparser prints $0 as "?"; the server would reject $0 anyway.
		return "", &RewriteError{Err: errors.New("statement uses parameter $0")}
	}
	found := map[leafKey]bool{}
	replaceSites(raw.ProtoReflect(), repl, found)
	if len(found) != len(repl) {
		return "", &RewriteError{Err: errors.New("a protected value was not found in the parse tree")}
	}
	out, err := pg.Deparse(&pg.ParseResult{Version: p.tree.Version, Stmts: []*pg.RawStmt{raw}})
	if err != nil {
		return "", &RewriteError{Err: errors.New("cannot regenerate the statement text")}
	}
	return out, nil
}

func hasParamZero(m protoreflect.Message) bool {
	if p, ok := m.Interface().(*pg.ParamRef); ok && p.Number <= 0 {
		return true
	}
	found := false
	eachChild(m, func(c protoreflect.Message) bool {
		found = hasParamZero(c)
		return !found
	})
	return found
}

// replaceSites replaces, below m, every value whose cast chain ends in a
// leaf listed in repl. Edits are applied after each Range, which must not
// see the message change under it.
func replaceSites(m protoreflect.Message, repl map[leafKey]*pg.Node, found map[leafKey]bool) {
	var edits []func()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				child := l.Get(i).Message()
				if nn := matchSite(child, repl, found); nn != nil {
					edits = append(edits, func() { m.Mutable(fd).List().Set(i, protoreflect.ValueOfMessage(nn.ProtoReflect())) })
					continue
				}
				replaceSites(child, repl, found)
			}
			return true
		}
		child := v.Message()
		if nn := matchSite(child, repl, found); nn != nil {
			edits = append(edits, func() { m.Set(fd, protoreflect.ValueOfMessage(nn.ProtoReflect())) })
			return true
		}
		replaceSites(child, repl, found)
		return true
	})
	for _, e := range edits {
		e()
	}
}

// matchSite returns the replacement for a Node that is a rewrite site.
func matchSite(m protoreflect.Message, repl map[leafKey]*pg.Node, found map[leafKey]bool) *pg.Node {
	n, ok := m.Interface().(*pg.Node)
	if !ok || n == nil {
		return nil
	}
	leaf, _ := castLeaf(n)
	var key leafKey
	switch x := leaf.Node.(type) {
	case *pg.Node_AConst:
		key = leafKey{loc: x.AConst.Location}
	case *pg.Node_ParamRef:
		key = leafKey{param: true, loc: x.ParamRef.Location}
	default:
		return nil
	}
	r, ok := repl[key]
	if !ok {
		return nil
	}
	found[key] = true
	if r == nil {
		return leaf
	}
	return proto.Clone(r).(*pg.Node)
}

// constNode parses the constant returned by an EncryptFunc, refusing
// anything that is not one constant under optional casts.
func constNode(lit string) (*pg.Node, error) {
	bad := errors.New("encrypt did not return a single SQL constant")
	tree, err := pg.Parse("SELECT " + lit)
	if err != nil || len(tree.Stmts) != 1 {
		return nil, bad
	}
	sel := tree.Stmts[0].GetStmt().GetSelectStmt()
	if sel == nil || len(sel.TargetList) != 1 {
		return nil, bad
	}
	rt := sel.TargetList[0].GetResTarget()
	if rt == nil || rt.Name != "" || len(rt.Indirection) > 0 {
		return nil, bad
	}
	bare := &pg.SelectStmt{TargetList: sel.TargetList, LimitOption: sel.LimitOption, Op: sel.Op}
	if !proto.Equal(sel, bare) {
		return nil, bad
	}
	leaf, _ := castLeaf(rt.Val)
	if c := leaf.GetAConst(); c == nil || c.Isnull {
		return nil, bad
	}
	return rt.Val, nil
}
