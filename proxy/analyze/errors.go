package analyze

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// SQLSTATE codes carried by the analyzer's errors (PostgreSQL Appendix A).
const (
	// SQLStateFeatureNotSupported (feature_not_supported) is the code of every
	// RejectError. The statement is valid SQL and the caller may well be
	// entitled to run it; the proxy cannot map it onto encrypted columns.
	// insufficient_privilege (42501) would wrongly suggest a GRANT as the fix.
	SQLStateFeatureNotSupported = "0A000"
	// SQLStateSyntaxError (syntax_error) is the code of every ParseError.
	SQLStateSyntaxError = "42601"
)

// RejectError reports a statement the analyzer refuses because it cannot
// account for every value written to, or every use of, a protected column.
// The proxy turns it into an ErrorResponse; the statement is not forwarded.
// No field ever contains a value taken from the statement.
type RejectError struct {
	// Column is the protected column concerned. For rejections that concern a
	// relation rather than one column (an ambiguous table name, a DO block),
	// Name is empty, and Schema may be empty.
	Column Column
	// SQLState is the SQLSTATE to report, SQLStateFeatureNotSupported.
	SQLState string
	// Reason says what was found, e.g. "value is a function call".
	Reason string
	// Hint says what is supported instead.
	Hint string
	// Position is the 1-based character position in the query string of the
	// offending construct, as the ErrorResponse P field expects; 0 if unknown.
	Position int
}

// Error names the column, the reason and what is supported.
func (e *RejectError) Error() string {
	what := "protected column " + e.Column.String()
	if e.Column.Name == "" {
		what = "protected table " + e.Column.relString()
	}
	msg := "fleproxy: " + what + ": " + e.Reason
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// ParseError reports query text the parser rejects. A statement the proxy
// cannot parse is not forwarded: it could not be checked.
type ParseError struct {
	// Position is the 1-based character position of the error, 0 if unknown.
	Position int
	// Detail is the parser's message. It may quote a token of the input, which
	// can be a plaintext value: send it only to the client that sent the text,
	// never to a log.
	Detail string
}

// SQLState returns SQLStateSyntaxError.
func (e *ParseError) SQLState() string { return SQLStateSyntaxError }

// Error describes the error without quoting the input, so it is safe to log.
func (e *ParseError) Error() string {
	if e.Position > 0 {
		return "fleproxy: cannot parse statement (syntax error at position " + strconv.Itoa(e.Position) + ")"
	}
	return "fleproxy: cannot parse statement"
}

// RewriteError reports a failure of Plan.Rewrite: the caller's encrypt
// function failed or returned something that is not one SQL constant, or the
// rewritten tree could not be turned back into SQL.
type RewriteError struct {
	// Column is the column being encrypted, zero when the failure is not tied to one.
	Column Column
	// Err is the underlying error.
	Err error
}

// Error names the column; the underlying error's text is included as is.
func (e *RewriteError) Error() string {
	if e.Column.Name != "" {
		return fmt.Sprintf("fleproxy: rewriting value for %s: %v", e.Column, e.Err)
	}
	return fmt.Sprintf("fleproxy: rewriting statement: %v", e.Err)
}

// Unwrap returns the underlying error.
func (e *RewriteError) Unwrap() error { return e.Err }

// charPosition converts a byte offset in sql to a 1-based character position,
// 0 when the offset is unknown.
func charPosition(sql string, loc int32) int {
	if loc < 0 || int(loc) > len(sql) {
		return 0
	}
	return utf8.RuneCountInString(sql[:loc]) + 1
}
