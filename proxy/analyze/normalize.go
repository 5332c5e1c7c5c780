package analyze

import (
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// unloggable replaces text Normalize cannot tokenize.
const unloggable = "<statement not shown: it could not be tokenized>"

// Normalize returns sql in a form safe to log (DESIGN.md §2 guarantee 4):
// every constant (strings of every kind, numbers, bit strings, TRUE and
// FALSE) is replaced by a $n placeholder numbered after the statement's own
// parameters, comments are dropped and white space between tokens becomes one space. Unlike
// pg_query.Normalize it also hides constants in utility statements (EXECUTE
// arguments, PREPARE bodies, DO blocks, COPY options, passwords, column
// defaults). Text that cannot be tokenized yields a fixed placeholder, never
// the input.
func Normalize(sql string) string {
	res, err := pg.Scan(sql)
	if err != nil {
		return unloggable
	}
	next := 1
	for _, t := range res.Tokens {
		if t.Token == pg.Token_PARAM && t.End > t.Start+1 && int(t.End) <= len(sql) {
			if n, err := strconv.Atoi(sql[t.Start+1 : t.End]); err == nil && n >= next {
				next = n + 1
			}
		}
	}
	var b strings.Builder
	prevEnd := int32(0)
	space := false
	for _, t := range res.Tokens {
		if t.Start < prevEnd || t.End < t.Start || int(t.End) > len(sql) {
			return unloggable
		}
		space = space || t.Start > prevEnd
		prevEnd = t.End
		switch t.Token {
		case pg.Token_SQL_COMMENT, pg.Token_C_COMMENT:
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		switch t.Token {
		case pg.Token_SCONST, pg.Token_USCONST, pg.Token_BCONST, pg.Token_XCONST,
			pg.Token_ICONST, pg.Token_FCONST, pg.Token_TRUE_P, pg.Token_FALSE_P:
			b.WriteString("$" + strconv.Itoa(next))
			next++
		default:
			b.WriteString(sql[t.Start:t.End])
		}
	}
	return b.String()
}

// Fingerprint returns pg_query's fingerprint of sql: a hex hash that is equal
// for statements differing only in constants and formatting, for grouping
// log lines and metrics. Its error, a *ParseError, is safe to log; its Detail
// is not.
func Fingerprint(sql string) (string, error) {
	fp, err := pg.Fingerprint(sql)
	if err != nil {
		return "", newParseError(err)
	}
	return fp, nil
}
