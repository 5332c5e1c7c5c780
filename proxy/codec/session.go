package codec

import (
	"strconv"
	"strings"
	"time"
)

type dateStyle uint8

// DateStyle output styles (src/include/miscadmin.h, USE_*_DATES). Only ISO
// is produced by this package.
const (
	styleISO dateStyle = iota
	styleSQL
	stylePostgres
	styleGerman
)

type dateOrder uint8

// DateStyle field orders (src/include/miscadmin.h, DATEORDER_*), used to
// read ambiguous text input such as 1/2/2020.
const (
	orderMDY dateOrder = iota
	orderDMY
	orderYMD
)

// Session holds the session settings (GUCs) that change how values are read
// from or written as text: DateStyle, TimeZone, extra_float_digits,
// bytea_output, client_encoding and server_encoding. The zero Session (and a
// nil *Session) has PostgreSQL's built-in defaults: DateStyle "ISO, MDY",
// TimeZone "GMT", extra_float_digits 1, bytea_output hex, UTF8 encodings.
//
// The proxy fills a Session with Set from the startup packet's options, from
// every ParameterStatus message (DateStyle, TimeZone, client_encoding and
// server_encoding are GUC_REPORT, PostgreSQL protocol §55.2.7), and from SET
// statements it sees for the settings PostgreSQL does not report
// (extra_float_digits, bytea_output). A Session is not safe for concurrent
// Set; conversions only read it.
type Session struct {
	style    dateStyle
	order    dateOrder
	styleErr *Error

	efdMinus1   int8 // extra_float_digits - 1, so that the zero value means 1
	byteaEscape bool

	zone    *tzone // nil means GMT
	zoneErr *Error

	clientEncErr *Error
	serverEncErr *Error
}

// Set records the value of one run-time parameter, named as in SET or
// ParameterStatus (case-insensitive). Parameters that do not affect value
// formats are ignored. It returns an error when the value is one PostgreSQL
// would reject or one this package cannot honour; in the latter case the
// setting is still recorded, and every later conversion that depends on it
// fails with an Unsupported error rather than producing output that differs
// from PostgreSQL's.
func (s *Session) Set(name, value string) error {
	switch strings.ToLower(name) {
	case "datestyle":
		return s.setDateStyle(value)
	case "timezone":
		z, err := resolveZone(value)
		if err != nil {
			s.zone, s.zoneErr = nil, err
			return err
		}
		s.zone, s.zoneErr = &z, nil
	case "extra_float_digits":
		n, err := strconv.Atoi(strings.TrimSpace(value))
		// src/backend/utils/misc/guc_tables.c: extra_float_digits is -15..3.
		if err != nil || n < -15 || n > 3 {
			return newError(CodeInvalidParameterValue, "invalid value for parameter extra_float_digits")
		}
		s.efdMinus1 = int8(n - 1)
	case "bytea_output":
		switch strings.ToLower(strings.TrimSpace(value)) {
		case "hex":
			s.byteaEscape = false
		case "escape":
			s.byteaEscape = true
		default:
			return newError(CodeInvalidParameterValue, "invalid value for parameter bytea_output")
		}
	case "client_encoding":
		s.clientEncErr = checkEncoding("client_encoding", value)
		if s.clientEncErr != nil {
			return s.clientEncErr
		}
	case "server_encoding":
		s.serverEncErr = checkEncoding("server_encoding", value)
		if s.serverEncErr != nil {
			return s.serverEncErr
		}
	}
	return nil
}

// checkEncoding accepts UTF8 and SQL_ASCII. With a UTF8 server and a
// SQL_ASCII client PostgreSQL converts nothing, so text bytes are the same as
// with a UTF8 client (src/backend/utils/mb/mbutils.c, pg_any_to_server).
func checkEncoding(param, value string) *Error {
	v := strings.ToUpper(strings.NewReplacer("-", "", "_", "").Replace(strings.TrimSpace(value)))
	switch v {
	case "UTF8", "UNICODE":
		return nil
	case "SQLASCII":
		if param == "client_encoding" {
			return nil
		}
	}
	return errUnsupported(param + " other than UTF8 is not supported by fleproxy for protected columns")
}

// setDateStyle parses a DateStyle value the way check_datestyle does
// (src/backend/commands/variable.c): a list of a style (ISO, SQL, Postgres,
// German) and an order (MDY/US/NonEuro, DMY/Euro, YMD), each defaulting to
// the current setting; German alone also selects DMY.
func (s *Session) setDateStyle(value string) error {
	style, order := s.style, s.order
	haveStyle, haveOrder := false, false
	for _, tok := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		switch strings.ToLower(tok) {
		case "iso":
			style, haveStyle = styleISO, true
		case "sql":
			style, haveStyle = styleSQL, true
		case "postgres":
			style, haveStyle = stylePostgres, true
		case "german":
			style, haveStyle = styleGerman, true
			if !haveOrder {
				order = orderDMY
			}
		case "ymd":
			order, haveOrder = orderYMD, true
		case "dmy", "euro", "european":
			order, haveOrder = orderDMY, true
		case "mdy", "us", "noneuro", "noneuropean":
			order, haveOrder = orderMDY, true
		case "default":
			if !haveStyle {
				style = styleISO
			}
			if !haveOrder {
				order = orderMDY
			}
		default:
			return newError(CodeInvalidParameterValue, "invalid value for parameter DateStyle")
		}
	}
	s.style, s.order = style, order
	s.styleErr = nil
	if style != styleISO {
		s.styleErr = errUnsupported("DateStyle other than ISO is not supported by fleproxy for protected columns")
		return s.styleErr
	}
	return nil
}

func (s *Session) dateOrder() dateOrder {
	if s == nil {
		return orderMDY
	}
	return s.order
}

func (s *Session) dateStyleErr() error {
	if s == nil || s.styleErr == nil {
		return nil
	}
	return s.styleErr
}

func (s *Session) extraFloatDigits() int {
	if s == nil {
		return 1
	}
	return int(s.efdMinus1) + 1
}

func (s *Session) byteaEscapeOutput() bool { return s != nil && s.byteaEscape }

// timeZone returns the session time zone.
func (s *Session) timeZone() (tzone, error) {
	if s == nil || (s.zone == nil && s.zoneErr == nil) {
		return tzone{loc: time.UTC}, nil
	}
	if s.zoneErr != nil {
		return tzone{}, s.zoneErr
	}
	return *s.zone, nil
}

// textEncodingErr reports whether text-bearing values (whose bytes depend on
// the encodings) can be converted in this session.
func (s *Session) textEncodingErr() error {
	if s == nil {
		return nil
	}
	if s.clientEncErr != nil {
		return s.clientEncErr
	}
	if s.serverEncErr != nil {
		return s.serverEncErr
	}
	return nil
}
