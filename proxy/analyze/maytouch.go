package analyze

import (
	"strings"
	"unicode/utf8"
	"unsafe"
)

// maxIdentifierLen is NAMEDATALEN-1: PostgreSQL truncates longer identifiers
// to this many bytes (at a character boundary), so a longer word can name a
// table whose name is its prefix.
const maxIdentifierLen = 63

// FoldName is the case folding MayTouch applies to candidate names: the
// tableNames function given to MayTouch must report whether its argument
// equals FoldName of the name of some protected relation.
func FoldName(name string) string { return strings.ToLower(name) }

// MayTouch reports whether sql may reference a relation for which tableNames
// (called with names folded by FoldName; it must not retain its argument,
// which may alias a scratch buffer) reports true; tableNames must cover
// every relation the Schema reports as protected (partitions, inheritance
// children and views included). It is a cheap
// pre-check run on every statement so that statements that cannot touch a
// protected table skip parsing; it must never give a false negative, so it
// over-approximates:
//
//   - it scans the whole text, string constants and comments included, so a
//     name inside a DO body or a function definition counts;
//   - every maximal run of identifier characters is a candidate, and so are
//     its pieces between '$' signs (dollar-quote delimiters can touch a name)
//     and the piece after leading digits;
//   - the text between any double quote and the next unescaped one is a
//     candidate (a quoted identifier, with "" standing for "), whatever
//     precedes it, so a quote inside a string literal cannot hide one;
//   - candidates longer than 63 bytes are also tried truncated, as
//     PostgreSQL truncates identifiers;
//   - case is folded on both sides, so "Customer" and customer both match
//     either spelling;
//   - text containing U&" (an identifier with Unicode escapes, which can
//     spell any name) or the word EXECUTE (which runs a prepared statement
//     whose text is not here) always may touch.
func MayTouch(sql string, tableNames func(name string) bool) bool {
	if hasUnicodeIdent(sql) {
		return true
	}
	var buf [4 * maxIdentifierLen]byte
	hit := false
	scanNames(sql, func(name string) bool {
		if len(name) == len("execute") && strings.EqualFold(name, "execute") {
			hit = true
			return false
		}
		if tableNames(foldInto(buf[:0], name)) {
			hit = true
			return false
		}
		return true
	})
	return hit
}

// foldInto returns FoldName(name) without allocating for ASCII names: the
// result may alias buf, so MayTouch's tableNames must not retain it.
func foldInto(buf []byte, name string) string {
	upper := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= utf8.RuneSelf || len(name) > cap(buf) {
			return FoldName(name)
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	if !upper {
		return name
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return unsafe.String(unsafe.SliceData(buf), len(buf))
}

func hasUnicodeIdent(sql string) bool {
	for i := strings.IndexByte(sql, '&'); i >= 0; {
		if i > 0 && (sql[i-1] == 'u' || sql[i-1] == 'U') && i+1 < len(sql) && sql[i+1] == '"' {
			return true
		}
		j := strings.IndexByte(sql[i+1:], '&')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// scanNames calls fn with every candidate relation name in text (see
// MayTouch), unfolded, until fn returns false.
func scanNames(text string, fn func(string) bool) {
	try := func(s string) bool {
		if s == "" {
			return true
		}
		if !fn(s) {
			return false
		}
		if len(s) > maxIdentifierLen {
			return fn(clip(s))
		}
		return true
	}
	// piece tries s and, if it starts with digits, what follows them.
	piece := func(s string) bool {
		if !try(s) {
			return false
		}
		i := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i == 0 || try(s[i:])
	}
	word := func(w string) bool {
		if !piece(w) {
			return false
		}
		if strings.IndexByte(w, '$') < 0 {
			return true
		}
		for w != "" {
			j := strings.IndexByte(w, '$')
			if j < 0 {
				return piece(w)
			}
			if !piece(w[:j]) {
				return false
			}
			w = w[j+1:]
		}
		return true
	}
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case isIdentByte(c):
			j := i + 1
			for j < len(text) && isIdentByte(text[j]) {
				j++
			}
			if !word(text[i:j]) {
				return
			}
			i = j
		case c == '"':
			if name, ok := quotedAt(text, i); ok && !try(name) {
				return
			}
			i++
		default:
			i++
		}
	}
}

// quotedAt returns the identifier of a double-quoted identifier starting at
// text[i], un-doubling "". Names longer than any identifier are cut (the
// candidate is then their truncation, which is all PostgreSQL keeps).
func quotedAt(text string, i int) (string, bool) {
	j := i + 1
	k := strings.IndexByte(text[j:], '"')
	if k < 0 {
		return "", false
	}
	if j+k+1 >= len(text) || text[j+k+1] != '"' {
		return text[j : j+k], true // no "" inside: a substring, no copy
	}
	var b strings.Builder
	for ; j < len(text); j++ {
		if text[j] == '"' {
			if j+1 < len(text) && text[j+1] == '"' {
				b.WriteByte('"')
				j++
				continue
			}
			return b.String(), true
		}
		if b.Len() > 4*maxIdentifierLen {
			return clip(b.String()), true
		}
		b.WriteByte(text[j])
	}
	return "", false
}

// clip truncates s to at most maxIdentifierLen bytes at a UTF-8 boundary.
func clip(s string) string {
	if len(s) <= maxIdentifierLen {
		return s
	}
	n := maxIdentifierLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
