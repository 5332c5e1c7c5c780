package copyfmt

import (
	"errors"
	"strconv"
)

// Error reports a COPY data stream that cannot be rewritten, or a FieldFunc
// that failed. Its text names the row and field; it never holds field
// values, which are plaintext on one side of the proxy.
type Error struct {
	// Row is the 1-based number of the data row, not counting a header
	// line; 0 means the header line or, in binary, the file header.
	Row int64
	// Field is the 0-based field index, or -1 if the error is not about one
	// field.
	Field int
	// Reason says what was malformed.
	Reason string
	// Err is the FieldFunc's error when that is the cause, otherwise nil.
	Err error
}

func (e *Error) Error() string {
	b := []byte("copyfmt: ")
	if e.Row > 0 {
		b = append(b, "row "...)
		b = strconv.AppendInt(b, e.Row, 10)
	} else {
		b = append(b, "header"...)
	}
	if e.Field >= 0 {
		b = append(b, ", field "...)
		b = strconv.AppendInt(b, int64(e.Field), 10)
	}
	b = append(b, ": "...)
	b = append(b, e.Reason...)
	if e.Err != nil {
		b = append(b, ": "...)
		b = append(b, e.Err.Error()...)
	}
	return string(b)
}

// Unwrap returns the FieldFunc's error, if any.
func (e *Error) Unwrap() error { return e.Err }

// ErrClosed is returned by Write and Close after Close has been called.
var ErrClosed = errors.New("copyfmt: transformer is closed")
