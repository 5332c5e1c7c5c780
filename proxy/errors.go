package proxy

import (
	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes the proxy itself reports (PostgreSQL Appendix A, "PostgreSQL Error Codes").
const (
	codeProtocolViolation     = "08P01" // protocol_violation
	codeConnectionFailure     = "08006" // connection_failure
	codeFeatureNotSupported   = "0A000" // feature_not_supported
	codeInvalidAuthorization  = "28000" // invalid_authorization_specification
	codeTooManyConnections    = "53300" // too_many_connections
	codeAdminShutdown         = "57P01" // admin_shutdown
	codeInternalError         = "XX000" // internal_error
	codeInvalidParameterValue = "22023" // invalid_parameter_value
)

// clientError is an error the proxy reports to the client as an ErrorResponse. Fatal ones end the
// session (PostgreSQL protocol §55.2.7: the server closes the connection after a FATAL error).
type clientError struct {
	severity string // ERROR or FATAL
	code     string
	message  string
	hint     string
}

func (e *clientError) Error() string { return e.code + ": " + e.message }

func fatal(code, message, hint string) *clientError {
	return &clientError{severity: "FATAL", code: code, message: message, hint: hint}
}

// appendErrorResponse appends e as an ErrorResponse message.
func appendErrorResponse(dst []byte, e *clientError) []byte {
	msg := pgproto3.ErrorResponse{
		Severity:            e.severity,
		SeverityUnlocalized: e.severity,
		Code:                e.code,
		Message:             "fleproxy: " + e.message,
		Hint:                e.hint,
	}
	out, err := msg.Encode(dst)
	if err != nil {
		// Encode fails only for fields over the protocol's int32 limits, which these never reach.
		return dst
	}
	return out
}
