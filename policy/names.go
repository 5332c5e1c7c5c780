package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1: longer identifiers are
// silently truncated by the server, so a longer name in a policy could never
// match the catalog.
const maxIdentifierLen = 63

// TableName is a schema-qualified table name as the catalog stores it:
// unquoted parts already folded to lower case, quoted parts verbatim, no quotes.
type TableName struct {
	Schema string
	Table  string
}

// String renders the name the way a policy file would spell it, quoting a part
// only where its case or characters require it. It is for messages, not for
// splicing into SQL (it does not quote keywords); use pgx.Identifier for that.
func (n TableName) String() string {
	return quoteIdent(n.Schema) + "." + quoteIdent(n.Table)
}

// ColumnName is a schema.table.column name as the catalog stores it.
type ColumnName struct {
	Schema string
	Table  string
	Column string
}

// TableName returns the table part of n.
func (n ColumnName) TableName() TableName {
	return TableName{Schema: n.Schema, Table: n.Table}
}

// String renders the name the way a policy file would spell it, e.g.
// public."Customer".email. See [TableName.String].
func (n ColumnName) String() string {
	return quoteIdent(n.Schema) + "." + quoteIdent(n.Table) + "." + quoteIdent(n.Column)
}

// ParseColumnName parses a schema.table.column name written with SQL
// identifier syntax (PostgreSQL lexical rules, "SQL Syntax: Identifiers and Key
// Words"): an unquoted part is letters, digits, '_' and '$', not starting with
// a digit or '$', and is folded to lower case; a double-quoted part keeps its
// case and may contain anything but NUL, with "" standing for one quote. Each
// part must be at most 63 bytes. The schema is required: a policy names
// exactly one table, whatever a session's search_path is.
func ParseColumnName(s string) (ColumnName, error) {
	parts, err := splitQualified(s)
	if err != nil {
		return ColumnName{}, err
	}
	if len(parts) != 3 {
		return ColumnName{}, fmt.Errorf("want schema.table.column, got %d part(s)", len(parts))
	}
	return ColumnName{Schema: parts[0], Table: parts[1], Column: parts[2]}, nil
}

// splitQualified splits a dotted name into its identifiers, unquoting and
// case-folding each.
func splitQualified(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New("empty name")
	}
	if !utf8.ValidString(s) {
		return nil, errors.New("not valid UTF-8")
	}
	var parts []string
	for i := 0; ; {
		ident, next, err := scanIdent(s, i)
		if err != nil {
			return nil, err
		}
		parts = append(parts, ident)
		if next == len(s) {
			return parts, nil
		}
		if s[next] != '.' {
			return nil, fmt.Errorf("unexpected %q at offset %d", runeAt(s, next), next)
		}
		i = next + 1
		if i == len(s) {
			return nil, errors.New("name ends with '.'")
		}
	}
}

// scanIdent reads one identifier of s starting at i and returns it with the
// offset just past it.
func scanIdent(s string, i int) (string, int, error) {
	var b strings.Builder
	if s[i] == '"' {
		j := i + 1
		for {
			k := strings.IndexByte(s[j:], '"')
			if k < 0 {
				return "", 0, errors.New("unterminated quoted identifier")
			}
			b.WriteString(s[j : j+k])
			j += k + 1
			if j < len(s) && s[j] == '"' {
				b.WriteByte('"')
				j++
				continue
			}
			break
		}
		ident := b.String()
		switch {
		case ident == "":
			return "", 0, errors.New("zero-length quoted identifier")
		case strings.IndexByte(ident, 0) >= 0:
			return "", 0, errors.New("identifier contains NUL")
		case len(ident) > maxIdentifierLen:
			return "", 0, fmt.Errorf("identifier %q is longer than %d bytes", ident, maxIdentifierLen)
		}
		return ident, j, nil
	}
	j := i
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		if !identStart(r) && !(j > i && (r >= '0' && r <= '9' || r == '$')) {
			break
		}
		if r >= 'A' && r <= 'Z' {
			// PostgreSQL folds only ASCII letters in a UTF-8 database.
			r += 'a' - 'A'
		}
		b.WriteRune(r)
		j += size
	}
	if j == i {
		if s[i] == '.' {
			return "", 0, fmt.Errorf("empty identifier at offset %d", i)
		}
		return "", 0, fmt.Errorf("unexpected %q at offset %d (quote the identifier)", runeAt(s, i), i)
	}
	if j-i > maxIdentifierLen {
		return "", 0, fmt.Errorf("identifier %q is longer than %d bytes", s[i:j], maxIdentifierLen)
	}
	return b.String(), j, nil
}

// runeAt returns the character of s that starts at byte offset i.
func runeAt(s string, i int) string {
	_, size := utf8.DecodeRuneInString(s[i:])
	return s[i : i+size]
}

// identStart reports whether r may begin an unquoted identifier; like
// PostgreSQL's lexer, any non-ASCII character counts as a letter.
func identStart(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r >= 0x80
}

// quoteIdent quotes s unless it is lower-case letters, digits and '_' not
// starting with a digit, the same test as PostgreSQL's quote_ident apart from
// keywords.
func quoteIdent(s string) string {
	safe := s != "" && !(s[0] >= '0' && s[0] <= '9')
	for i := 0; safe && i < len(s); i++ {
		c := s[i]
		safe = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
	}
	if safe {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
