package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Limits on names that end up in ciphertexts, key stores and logs.
const (
	maxIDLen      = 255
	maxKeyNameLen = 64
)

// Parse validates a policy file's contents. source names the file in
// messages. Every problem is collected into one [*ValidationError]: YAML
// syntax, an unknown or repeated field, a wrong version, a malformed column
// name, a duplicate column or id, an unknown type, mode or storage, a missing
// or malformed key, a malformed mask or one on a column that is not text, a
// malformed role, and an empty file; and in identities, a missing, malformed
// or repeated name, an empty or malformed condition (role, certificate name,
// SAN pattern with a '*' before its end, CIDR), a catch-all identity that is
// not the last one, an unknown clearance, a clearance for a column the policy
// does not protect or for a key no column uses, and cleared.roles behind a
// catch-all identity.
//
// The file is decoded with yaml.v3 into its node tree and walked here rather
// than unmarshalled with KnownFields(true), so that unknown fields are
// reported with their path and line instead of Go type names, together with
// every other problem.
func Parse(data []byte, source string) (*Policy, error) {
	ps := &parser{}
	root := ps.document(data)
	if root == nil {
		return nil, &ValidationError{Source: source, Problems: ps.problems}
	}
	pol := &Policy{source: source}
	if ps.parse(root, pol); len(ps.problems) > 0 {
		slices.SortStableFunc(ps.problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &ValidationError{Source: source, Problems: ps.problems}
	}
	pol.index()
	return pol, nil
}

// parser collects problems while walking one file.
type parser struct {
	problems []Problem

	// What the columns entries name, even entries with other problems, so
	// that identities are checked against them without echoing those
	// problems: every well-formed column name with its type ("" if the type
	// is malformed), and every well-formed key in file order.
	protected map[ColumnName]Type
	keys      []string

	// The first identity without conditions, or nil.
	catchAll *Rule
}

func (ps *parser) add(line int, field, format string, args ...any) {
	ps.problems = append(ps.problems, Problem{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// document decodes data into one YAML node tree and returns its root, or nil
// with the problem recorded.
func (ps *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.add(0, "", "the policy is empty (it needs at least version: %d and columns)", Version)
		} else {
			ps.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		ps.add(next.Line, "", "a policy file holds one YAML document; a second one starts here")
		return nil
	case !errors.Is(err, io.EOF):
		ps.yamlError(err)
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(root) {
		ps.add(root.Line, "", "the policy is empty (it needs at least version: %d and columns)", Version)
		return nil
	}
	ps.noAliases(root)
	if len(ps.problems) > 0 {
		return nil
	}
	return root
}

// yamlError records a YAML syntax error, lifting yaml.v3's "yaml: line N: "
// prefix into the problem's line.
func (ps *parser) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, after
			}
		}
	}
	ps.add(line, "", "invalid YAML: %s", msg)
}

// noAliases rejects anchors and aliases: a reviewer should see every column's
// settings where the column is named.
func (ps *parser) noAliases(n *yaml.Node) {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		ps.add(n.Line, "", "YAML anchors and aliases are not allowed in a policy file; write each value out")
		return
	}
	for _, c := range n.Content {
		ps.noAliases(c)
	}
}

func (ps *parser) parse(root *yaml.Node, pol *Policy) {
	top := ps.mapping(root, "", []string{"version", "columns", "identities", "cleared", "require_mtls_for_plaintext"})
	if top == nil {
		return
	}
	switch v := top["version"]; {
	case v == nil || isNull(v):
		ps.add(root.Line, "version", "missing: write version: %d", Version)
	case v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int":
		ps.add(v.Line, "version", "must be the number %d", Version)
	default:
		if n, err := strconv.Atoi(v.Value); err != nil || n != Version {
			ps.add(v.Line, "version", "unsupported version %s (this fleproxy reads version %d)", v.Value, Version)
			return
		}
	}

	switch cols := top["columns"]; {
	case cols == nil || isNull(cols):
		ps.add(root.Line, "columns", "missing: list the protected columns (or write columns: [] to protect none)")
	case cols.Kind != yaml.SequenceNode:
		ps.add(cols.Line, "columns", "must be a list of column entries")
	default:
		ps.columns(cols, pol)
	}

	// After columns: identities name columns and keys.
	switch ids := top["identities"]; {
	case ids == nil || isNull(ids):
	case ids.Kind != yaml.SequenceNode:
		ps.add(ids.Line, "identities", "must be a list of identity entries")
	default:
		ps.identities(ids, pol)
	}

	if cl := top["cleared"]; cl != nil && !isNull(cl) {
		ps.cleared(cl, pol)
	}

	if n := top["require_mtls_for_plaintext"]; n != nil {
		pol.requireMTLS, _ = ps.boolean(n, "require_mtls_for_plaintext")
	}
}

func (ps *parser) columns(seq *yaml.Node, pol *Policy) {
	byName := make(map[ColumnName]*Column)
	byID := make(map[string]*Column)
	ps.protected = make(map[ColumnName]Type)
	for i, n := range seq.Content {
		path := fmt.Sprintf("columns[%d]", i)
		f := ps.mapping(n, path, []string{"column", "id", "type", "mode", "key", "storage", "mask"})
		if f == nil {
			continue
		}
		col := &Column{Line: n.Line}
		ok := true

		if s, present := ps.scalar(f["column"], path+".column"); !present {
			ps.add(n.Line, path+".column", "missing: name the protected column as schema.table.column")
			ok = false
		} else if name, err := ParseColumnName(s); err != nil {
			ps.add(f["column"].Line, path+".column", "bad column name %q: %v", s, err)
			ok = false
		} else if prev := byName[name]; prev != nil {
			ps.add(f["column"].Line, path+".column", "column %s is already listed at line %d", name, prev.Line)
			ok = false
		} else {
			col.Name = name
			byName[name] = col
		}

		if s, present := ps.scalar(f["type"], path+".type"); !present {
			ps.add(n.Line, path+".type", "missing: give the logical type (%s)", joinTypes())
			ok = false
		} else if t, err := ParseType(s); err != nil {
			ps.add(f["type"].Line, path+".type", "%v", err)
			ok = false
		} else {
			col.Type = t
		}
		if col.Name != (ColumnName{}) {
			ps.protected[col.Name] = col.Type
		}

		if mn := f["mask"]; mn != nil && !isNull(mn) {
			if col.Type != "" && !col.Type.maskable() {
				ps.add(mn.Line, path+".mask", "a mask applies only to text, varchar and bpchar columns, not %s", col.Type)
				ok = false
			}
			m, good := ps.mask(mn, path+".mask")
			col.Mask = m
			ok = ok && good
		}

		mode, _ := ps.scalar(f["mode"], path+".mode")
		if m, err := parseMode(mode); err != nil {
			ps.add(f["mode"].Line, path+".mode", "%v", err)
			ok = false
		} else {
			col.Mode = m
		}

		storage, _ := ps.scalar(f["storage"], path+".storage")
		if s, err := parseStorage(storage); err != nil {
			ps.add(f["storage"].Line, path+".storage", "%v", err)
			ok = false
		} else {
			col.Storage = s
		}

		if s, present := ps.scalar(f["key"], path+".key"); !present {
			ps.add(n.Line, path+".key", "missing: name the keyring that encrypts this column")
			ok = false
		} else if err := checkKeyName(s); err != nil {
			ps.add(f["key"].Line, path+".key", "%v", err)
			ok = false
		} else {
			col.Key = s
			if !slices.Contains(ps.keys, s) {
				ps.keys = append(ps.keys, s)
			}
		}

		id, present := ps.scalar(f["id"], path+".id")
		if !present {
			id = col.Name.String()
		} else if err := checkID(id); err != nil {
			ps.add(f["id"].Line, path+".id", "%v", err)
			ok = false
		}
		idLine := n.Line
		if f["id"] != nil {
			idLine = f["id"].Line
		}
		if col.Name != (ColumnName{}) || present {
			if prev := byID[id]; prev != nil {
				ps.add(idLine, path+".id", "id %q is already used by %s at line %d; each protected column needs its own id so that ciphertext cannot be moved between columns", id, prev.Name, prev.Line)
				ok = false
			} else {
				byID[id] = col
			}
		}
		col.ID = id

		if ok {
			pol.columns = append(pol.columns, col)
		}
	}
}

func (ps *parser) cleared(n *yaml.Node, pol *Policy) {
	f := ps.mapping(n, "cleared", []string{"roles"})
	if f == nil {
		return
	}
	roles := f["roles"]
	if roles == nil || isNull(roles) {
		return
	}
	if roles.Kind != yaml.SequenceNode {
		ps.add(roles.Line, "cleared.roles", "must be a list of database role names")
		return
	}
	seen := make(map[string]bool)
	for i, r := range roles.Content {
		path := fmt.Sprintf("cleared.roles[%d]", i)
		s, _ := ps.scalar(r, path)
		switch err := checkRole(s); {
		case err != nil:
			ps.add(r.Line, path, "%v", err)
		case seen[s]:
			ps.add(r.Line, path, "role %q is listed twice", s)
		default:
			seen[s] = true
			pol.roles = append(pol.roles, s)
			pol.roleAt = append(pol.roleAt, r.Line)
		}
	}
	if c := ps.catchAll; c != nil && len(roles.Content) > 0 {
		ps.add(roles.Line, "cleared.roles", "never applies: identity %q (line %d) has no match conditions and so matches every caller first; give these roles an identity before it", c.Name, c.Line)
	}
}

// checkRole checks a database role name from the policy.
func checkRole(s string) error {
	switch {
	case s == "":
		return errors.New("empty role name")
	case len(s) > maxIdentifierLen:
		return fmt.Errorf("role name %q is longer than %d bytes", s, maxIdentifierLen)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Errorf("role name %q contains control characters or invalid UTF-8", s)
	}
	return nil
}

// mask reads a column's mask; ok is false after a problem.
func (ps *parser) mask(n *yaml.Node, path string) (m TextMask, ok bool) {
	m = TextMask{KeepLast: defaultKeepLast, Char: defaultMaskChar}
	f := ps.mapping(n, path, []string{"keep_last", "char"})
	if f == nil {
		return m, false
	}
	ok = true
	if v := f["keep_last"]; v != nil && !isNull(v) {
		switch k, good := ps.integer(v, path+".keep_last"); {
		case !good:
			ok = false
		case k < 0:
			ps.add(v.Line, path+".keep_last", "must not be negative, got %d", k)
			ok = false
		default:
			m.KeepLast = k
		}
	}
	if v := f["char"]; v != nil && !isNull(v) {
		s, present := ps.scalar(v, path+".char")
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case !present:
			ok = false
		case s == "" || size != len(s) || r == utf8.RuneError || !unicode.IsGraphic(r):
			ps.add(v.Line, path+".char", "must be exactly one printable character, got %q", s)
			ok = false
		default:
			m.Char = r
		}
	}
	return m, ok
}

// boolean returns n as true or false; ok is false after a problem.
func (ps *parser) boolean(n *yaml.Node, path string) (b, ok bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		ps.add(n.Line, path, "must be true or false")
		return false, false
	}
	return b, true
}

// integer returns n as an int; ok is false after a problem.
func (ps *parser) integer(n *yaml.Node, path string) (i int, ok bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		ps.add(n.Line, path, "must be a whole number")
		return 0, false
	}
	return i, true
}

// mapping checks that n is a mapping whose keys are all in known, each once,
// and returns the values by key; it returns nil after recording a problem if
// n is not a mapping.
func (ps *parser) mapping(n *yaml.Node, path string, known []string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		what := "must be"
		if path == "" {
			what = "the policy must be"
		}
		ps.add(n.Line, path, "%s a mapping with the fields %s", what, strings.Join(known, ", "))
		return nil
	}
	vals := make(map[string]*yaml.Node, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := joinPath(path, k.Value)
		switch {
		case k.Kind != yaml.ScalarNode:
			ps.add(k.Line, path, "field names must be plain words")
		case !slices.Contains(known, k.Value):
			ps.add(k.Line, field, "unknown field %q %s", k.Value, suggest(k.Value, known, "fields"))
		case lines[k.Value] > 0:
			ps.add(k.Line, field, "given twice (first at line %d)", lines[k.Value])
		default:
			vals[k.Value], lines[k.Value] = v, k.Line
		}
	}
	return vals
}

// scalar returns the string value of n, reporting n if it is a list or a
// mapping. present is false for a missing or null n.
func (ps *parser) scalar(n *yaml.Node, path string) (s string, present bool) {
	if n == nil || isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		ps.add(n.Line, path, "must be a single value, not a list or mapping")
		return "", false
	}
	return n.Value, true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// checkKeyName restricts keyring names to characters that are safe in key
// store paths, Vault paths and logs.
func checkKeyName(s string) error {
	ok := s != "" && len(s) <= maxKeyNameLen && isAlnum(s[0])
	for i := 0; ok && i < len(s); i++ {
		ok = isAlnum(s[i]) || s[i] == '_' || s[i] == '-' || s[i] == '.'
	}
	if !ok {
		return fmt.Errorf("bad key name %q: use letters, digits, '_', '-' and '.', starting with a letter or digit, at most %d characters", s, maxKeyNameLen)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkID accepts any printable text: the id is authenticated, not parsed.
func checkID(s string) error {
	switch {
	case s == "":
		return errors.New("empty id (leave id out to use the column name)")
	case len(s) > maxIDLen:
		return fmt.Errorf("id is longer than %d bytes", maxIDLen)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Errorf("id %q contains control characters or invalid UTF-8", s)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("id %q has leading or trailing spaces", s)
	}
	return nil
}

// suggest returns "(did you mean x?)" for the candidate closest to s, or the
// full list of candidates when none is close.
func suggest(s string, candidates []string, what string) string {
	if best := closest(strings.ToLower(s), candidates); best != "" {
		return fmt.Sprintf("(did you mean %s?)", best)
	}
	return fmt.Sprintf("(known %s: %s)", what, strings.Join(candidates, ", "))
}

// closest returns the candidate nearest to s within edit distance 2, or ""
// if none is that near.
func closest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
