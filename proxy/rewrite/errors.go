package rewrite

import (
	"github.com/jackc/pgx/v5/pgproto3"
)

// Error is an error the proxy reports to the client in place of the server's, as an
// ErrorResponse (PostgreSQL protocol §55.7). Its fields never hold a value from the statement.
type Error struct {
	// Code is the SQLSTATE (PostgreSQL Appendix A).
	Code string
	// Message names the column concerned and what went wrong.
	Message string
	// Hint says what to do instead.
	Hint string
	// Position is the 1-based character position in the query string, 0 if none.
	Position int
	// quotesInput marks a Message that may quote the statement's text (a parser's "at or near"):
	// it goes to the client that sent the text, never to a log.
	quotesInput bool
}

// logReason is what logs may say of e.
func (e *Error) logReason() string {
	if e.quotesInput {
		return "statement text not shown (the parser's message quotes it)"
	}
	return e.Message
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// SQLSTATE codes the rewriter reports.
const (
	codeFeatureNotSupported   = "0A000"
	codeSyntaxError           = "42601"
	codeDataCorrupted         = "XX001"
	codeInternalError         = "XX000"
	codeQueryCanceled         = "57014"
	codeInsufficientPrivilege = "42501"
	codeProtocolViolation     = "08P01"
	// codeObjectNotInPrerequisiteState (55000) reports a result the policy changed under.
	codeObjectNotInPrerequisiteState = "55000"
)

// response encodes e as an ErrorResponse body with severity ERROR.
func (e *Error) response() []byte {
	msg := pgproto3.ErrorResponse{
		Severity:            "ERROR",
		SeverityUnlocalized: "ERROR",
		Code:                e.Code,
		Message:             "fleproxy: " + e.Message,
		Hint:                e.Hint,
		Position:            int32(e.Position),
	}
	out, err := msg.Encode(nil)
	if err != nil {
		return nil
	}
	return out[5:]
}
