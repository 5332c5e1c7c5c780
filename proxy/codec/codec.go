package codec

import (
	"bytes"
	"unicode/utf8"
)

// Wire format codes of the Bind and RowDescription messages (PostgreSQL
// protocol §55.7).
const (
	FormatText   int16 = 0
	FormatBinary int16 = 1
)

// Canonical converts one non-NULL wire value of type t, in format (FormatText
// or FormatBinary, as in a Bind message's parameter format codes, PostgreSQL
// protocol §55.7), to its canonical plaintext: the value's binary send format
// (see the package documentation). Text input is read as the type's input
// function reads it in session s (nil means PostgreSQL's defaults); binary
// input is checked as the type's receive function checks it. Either way the
// column's type modifier (t.Typmod) is then applied as an assignment would
// apply it. NULL is the caller's: it has no canonical form.
//
// The error is an *Error whose message names the type but never includes the
// value.
func Canonical(t Type, format int16, wire []byte, s *Session) ([]byte, error) {
	return AppendCanonical(nil, t, format, wire, s)
}

// AppendCanonical is Canonical appending to dst. On error dst's contents
// beyond its length are unspecified and the returned slice is nil.
func AppendCanonical(dst []byte, t Type, format int16, wire []byte, s *Session) ([]byte, error) {
	switch format {
	case FormatText:
		// Text-format parameters pass pg_client_to_server, which rejects
		// invalid UTF-8 and NUL bytes for every type
		// (src/backend/utils/mb/mbutils.c, pg_verify_mbstr).
		if !validText(wire) {
			return nil, errEncoding()
		}
		return appendCanonicalText(dst, t, wire, s)
	case FormatBinary:
		return appendCanonicalBinary(dst, t, wire, s)
	default:
		return nil, errFormat()
	}
}

func appendCanonicalText(dst []byte, t Type, src []byte, s *Session) ([]byte, error) {
	switch t.kind {
	case kindText, kindVarchar, kindBpchar:
		return textCanonical(dst, t, src, s)
	case kindInt2, kindInt4, kindInt8:
		return intCanonicalText(dst, t, src)
	case kindFloat4, kindFloat8:
		return floatCanonicalText(dst, t, src)
	case kindNumeric:
		return numericCanonicalText(dst, t, src)
	case kindBool:
		return boolCanonicalText(dst, t, src)
	case kindUUID:
		return uuidCanonicalText(dst, t, src)
	case kindBytea:
		return byteaCanonicalText(dst, t, src)
	case kindJSON:
		return jsonCanonical(dst, t, src, s)
	case kindJSONB:
		return jsonbCanonical(dst, t, src, s)
	case kindDate, kindTimestamp, kindTimestamptz:
		return datetimeCanonicalText(dst, t, src, s)
	}
	return nil, errInvalidType()
}

func appendCanonicalBinary(dst []byte, t Type, src []byte, s *Session) ([]byte, error) {
	switch t.kind {
	case kindText, kindVarchar, kindBpchar:
		if !validText(src) {
			return nil, errEncoding()
		}
		return textCanonical(dst, t, src, s)
	case kindInt2, kindInt4, kindInt8, kindUUID:
		if len(src) != int(t.Len) {
			return nil, errBinary(t)
		}
		return append(dst, src...), nil
	case kindFloat4, kindFloat8:
		return floatCanonicalBinary(dst, t, src)
	case kindNumeric:
		return numericCanonicalBinary(dst, t, src)
	case kindBool:
		if len(src) != 1 {
			return nil, errBinary(t)
		}
		// boolrecv: any non-zero byte is true (src/backend/utils/adt/bool.c).
		if src[0] != 0 {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case kindBytea:
		return append(dst, src...), nil
	case kindJSON:
		if !validText(src) {
			return nil, errEncoding()
		}
		return jsonCanonical(dst, t, src, s)
	case kindJSONB:
		// jsonb_recv: a version byte (1) then the text form
		// (src/backend/utils/adt/jsonb.c).
		if len(src) == 0 || src[0] != 1 {
			return nil, newError(CodeInvalidBinaryRepresentation, "unsupported jsonb version number")
		}
		if !validText(src[1:]) {
			return nil, errEncoding()
		}
		return jsonbCanonical(dst, t, src[1:], s)
	case kindDate, kindTimestamp, kindTimestamptz:
		return datetimeCanonicalBinary(dst, t, src)
	}
	return nil, errInvalidType()
}

// Wire converts canonical plaintext of type t to the wire format the client
// asked for (format as in RowDescription, PostgreSQL protocol §55.7). Text
// output is byte-identical to what the type's output function produces in
// session s (nil means PostgreSQL's defaults); a session setting this package
// cannot reproduce (e.g. DateStyle SQL) yields an Unsupported error rather
// than different output. Binary output is the canonical plaintext itself
// after a structural check.
func Wire(t Type, format int16, canonical []byte, s *Session) ([]byte, error) {
	return AppendWire(nil, t, format, canonical, s)
}

// AppendWire is Wire appending to dst, for building DataRow messages without
// an allocation per value.
func AppendWire(dst []byte, t Type, format int16, canonical []byte, s *Session) ([]byte, error) {
	switch format {
	case FormatText:
		return appendWireText(dst, t, canonical, s)
	case FormatBinary:
		return appendWireBinary(dst, t, canonical, s)
	default:
		return nil, errFormat()
	}
}

func appendWireText(dst []byte, t Type, c []byte, s *Session) ([]byte, error) {
	switch t.kind {
	case kindText, kindVarchar, kindBpchar, kindJSON:
		if err := s.textEncodingErr(); err != nil {
			return nil, err
		}
		return append(dst, c...), nil
	case kindJSONB:
		if err := s.textEncodingErr(); err != nil {
			return nil, err
		}
		if len(c) == 0 || c[0] != 1 {
			return nil, errCorrupt(t)
		}
		return append(dst, c[1:]...), nil
	case kindInt2, kindInt4, kindInt8:
		return intWireText(dst, t, c)
	case kindFloat4, kindFloat8:
		return floatWireText(dst, t, c, s)
	case kindNumeric:
		return numericWireText(dst, t, c)
	case kindBool:
		if len(c) != 1 {
			return nil, errCorrupt(t)
		}
		// boolout (src/backend/utils/adt/bool.c).
		if c[0] != 0 {
			return append(dst, 't'), nil
		}
		return append(dst, 'f'), nil
	case kindUUID:
		return uuidWireText(dst, t, c)
	case kindBytea:
		return byteaWireText(dst, c, s), nil
	case kindDate:
		return dateWireText(dst, t, c, s)
	case kindTimestamp, kindTimestamptz:
		return timestampWireText(dst, t, c, s)
	}
	return nil, errInvalidType()
}

func appendWireBinary(dst []byte, t Type, c []byte, s *Session) ([]byte, error) {
	switch t.kind {
	case kindText, kindVarchar, kindBpchar, kindJSON, kindJSONB:
		if err := s.textEncodingErr(); err != nil {
			return nil, err
		}
		if t.kind == kindJSONB && (len(c) == 0 || c[0] != 1) {
			return nil, errCorrupt(t)
		}
	case kindNumeric:
		if !numericWellFormed(c) {
			return nil, errCorrupt(t)
		}
	case kindBytea:
	case kindInvalid:
		return nil, errInvalidType()
	default:
		if len(c) != int(t.Len) {
			return nil, errCorrupt(t)
		}
	}
	return append(dst, c...), nil
}

func errInvalidType() *Error {
	return newError(CodeFeatureNotSupported, "unsupported logical type")
}

// validText reports whether b is acceptable as server-encoded text: valid
// UTF-8 without NUL bytes.
func validText(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0 && utf8.Valid(b)
}

// isSpace is C's isspace in the "C" locale, which PostgreSQL's input
// functions use to skip leading and trailing blanks.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold is pg_strncasecmp(s, prefix, len(prefix)) == 0 for ASCII.
func hasPrefixFold(s []byte, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lower(s[i]) != lower(prefix[i]) {
			return false
		}
	}
	return true
}
