package copyfmt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Format is the data format of a COPY (the FORMAT option).
type Format int

const (
	// Text is PostgreSQL's tab-separated text format, the default.
	Text Format = iota
	// CSV is comma-separated values.
	CSV
	// Binary is PostgreSQL's binary COPY format.
	Binary
)

// String returns the format's name as written in FORMAT text|csv|binary.
func (f Format) String() string {
	switch f {
	case Text:
		return "text"
	case CSV:
		return "csv"
	case Binary:
		return "binary"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Options are the COPY options that decide how the data stream is framed.
// Start from [DefaultOptions]: the zero value of a field is not a default.
type Options struct {
	// Format is text, csv or binary.
	Format Format
	// Delimiter separates the fields of a row (DELIMITER): a tab for text,
	// a comma for CSV, 0 for binary.
	Delimiter byte
	// Null is the string that stands for SQL NULL (NULL): `\N` for text,
	// the empty string for CSV, and empty for binary.
	Null string
	// Default, if not nil, is the DEFAULT option (PostgreSQL 16+, COPY FROM
	// only): a field that matches it asks for the column default. It is
	// matched like Null, is forwarded as it is, and the FieldFunc is not
	// called for it.
	Default *string
	// Header reports a header line (HEADER, text and CSV): the first line
	// is forwarded untouched and not counted as a row.
	Header bool
	// Quote and Escape are the CSV QUOTE and ESCAPE characters, both `"` by
	// default; 0 for the other formats.
	Quote, Escape byte
	// ForceQuote, ForceNotNull and ForceNull are the CSV options of the
	// same names, indexed like the fields (nil means no field). ForceQuote
	// makes the Transformer quote every non-NULL value it writes to that
	// field; ForceNotNull and ForceNull change which fields PostgreSQL reads
	// as NULL, and the Transformer reads them the same way.
	ForceQuote, ForceNotNull, ForceNull []bool
}

// DefaultOptions returns the options PostgreSQL uses for format f when COPY
// names no other option.
func DefaultOptions(f Format) Options {
	switch f {
	case Text:
		return Options{Format: Text, Delimiter: '\t', Null: `\N`}
	case CSV:
		return Options{Format: CSV, Delimiter: ',', Quote: '"', Escape: '"'}
	}
	return Options{Format: f}
}

// validate applies the checks of PostgreSQL's ProcessCopyOptions that keep
// the framing unambiguous, for a stream of nfields fields per row.
func (o *Options) validate(nfields int) error {
	bad := func(format string, a ...any) error {
		return errors.New("copyfmt: invalid options: " + fmt.Sprintf(format, a...))
	}
	switch o.Format {
	case Text, CSV:
	case Binary:
		if o.Delimiter != 0 || o.Null != "" || o.Default != nil || o.Header || o.Quote != 0 || o.Escape != 0 ||
			o.ForceQuote != nil || o.ForceNotNull != nil || o.ForceNull != nil {
			return bad("binary format takes no DELIMITER, NULL, DEFAULT, HEADER, QUOTE, ESCAPE or FORCE options")
		}
		return nil
	default:
		return bad("unknown format %d", int(o.Format))
	}
	d := o.Delimiter
	switch {
	case d == 0:
		return bad("no delimiter")
	case d == '\r' || d == '\n':
		return bad("delimiter cannot be newline or carriage return")
	case o.Format == Text && strings.IndexByte(`\.abcdefghijklmnopqrstuvwxyz0123456789`, d) >= 0:
		return bad("text delimiter cannot be %q", d)
	}
	type marker struct{ name, s string }
	markers := []marker{{"NULL", o.Null}}
	if o.Default != nil {
		markers = append(markers, marker{"DEFAULT", *o.Default})
		if *o.Default == o.Null {
			return bad("NULL and DEFAULT are the same string")
		}
	}
	for _, m := range markers {
		if strings.ContainsAny(m.s, "\r\n") {
			return bad("%s cannot contain newline or carriage return", m.name)
		}
		if strings.IndexByte(m.s, d) >= 0 {
			return bad("%s cannot contain the delimiter", m.name)
		}
		if o.Format == CSV && strings.IndexByte(m.s, o.Quote) >= 0 {
			return bad("%s cannot contain the quote character", m.name)
		}
	}
	if o.Format == Text {
		if o.Quote != 0 || o.Escape != 0 || o.ForceQuote != nil || o.ForceNotNull != nil || o.ForceNull != nil {
			return bad("QUOTE, ESCAPE and FORCE options are for CSV only")
		}
		return nil
	}
	switch {
	case o.Quote == 0 || o.Escape == 0:
		return bad("CSV needs a quote and an escape character")
	case o.Quote == d:
		return bad("delimiter and quote must differ")
	case o.Quote == '\r' || o.Quote == '\n' || o.Escape == '\r' || o.Escape == '\n':
		return bad("quote and escape cannot be newline or carriage return")
	}
	for _, f := range []struct {
		name  string
		flags []bool
	}{{"FORCE_QUOTE", o.ForceQuote}, {"FORCE_NOT_NULL", o.ForceNotNull}, {"FORCE_NULL", o.ForceNull}} {
		if f.flags != nil && len(f.flags) != nfields {
			return bad("%s has %d entries for %d fields", f.name, len(f.flags), nfields)
		}
	}
	return nil
}
