package codec

// SQLSTATE codes used by this package's errors (PostgreSQL Appendix A,
// src/backend/utils/errcodes.txt). They are the codes PostgreSQL itself
// raises for the same condition, so the proxy can forward them unchanged in
// an ErrorResponse.
const (
	CodeInvalidTextRepresentation   = "22P02"
	CodeInvalidBinaryRepresentation = "22P03"
	CodeNumericValueOutOfRange      = "22003"
	CodeInvalidDatetimeFormat       = "22007"
	CodeDatetimeFieldOverflow       = "22008"
	CodeInvalidTimeZoneDisplacement = "22009"
	CodeInvalidParameterValue       = "22023"
	CodeStringDataRightTruncation   = "22001"
	CodeCharacterNotInRepertoire    = "22021"
	CodeUntranslatableCharacter     = "22P05"
	CodeFeatureNotSupported         = "0A000"
	CodeDataCorrupted               = "XX001"
)

// Error is the error returned by every conversion in this package. Its
// message follows PostgreSQL's wording for the same condition but never
// contains the value being converted (guarantee 4 of DESIGN.md: nothing
// secret in errors), only the type name and, where PostgreSQL gives one, a
// detail that describes the rule that was broken.
type Error struct {
	// Code is the SQLSTATE PostgreSQL raises for the same condition.
	Code string
	// Message is a PostgreSQL-style message without the value.
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unsupported reports whether the value or setting is one PostgreSQL accepts
// but this package deliberately does not handle (as opposed to an invalid
// value that PostgreSQL would reject too).
func (e *Error) Unsupported() bool { return e.Code == CodeFeatureNotSupported }

func newError(code, msg string) *Error { return &Error{Code: code, Message: msg} }

func errSyntax(t Type) *Error {
	return newError(CodeInvalidTextRepresentation, "invalid input syntax for type "+t.sqlName())
}

func errRange(t Type) *Error {
	return newError(CodeNumericValueOutOfRange, "value is out of range for type "+t.sqlName())
}

func errBinary(t Type) *Error {
	return newError(CodeInvalidBinaryRepresentation, "incorrect binary data format for type "+t.sqlName())
}

func errUnsupported(msg string) *Error { return newError(CodeFeatureNotSupported, msg) }

func errCorrupt(t Type) *Error {
	return newError(CodeDataCorrupted, "malformed canonical plaintext for type "+t.sqlName())
}

func errEncoding() *Error {
	return newError(CodeCharacterNotInRepertoire, `invalid byte sequence for encoding "UTF8"`)
}

func errFormat() *Error { return newError(CodeInvalidParameterValue, "unsupported format code") }
