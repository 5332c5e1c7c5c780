// Package codec converts values of protected columns between the PostgreSQL
// wire formats and fleproxy's canonical plaintext (DESIGN.md §4).
//
// On the write path the proxy calls Canonical (or AppendCanonical) with a
// Bind parameter or literal in text or binary format (PostgreSQL protocol
// §55.7) and encrypts the result; on the read path it decrypts and calls
// Wire (or AppendWire, which does not allocate for most types) to produce
// the DataRow value in the format the client asked for, while RowDescription
// carries the logical Type's OID, Len and Typmod.
//
// # Canonical plaintext
//
// The canonical plaintext of a value is its PostgreSQL binary send format
// (the typsend function's output), which is compact and, after the
// normalisations below, unique per value, so equal values encrypt equally
// under deterministic encryption and a blind index:
//
//   - int2/int4/int8, float4/float8, date, timestamp, timestamptz: big-endian
//     fixed-width integers or IEEE 754 bits; every NaN becomes the quiet NaN
//     that float4in/float8in store for 'NaN'.
//   - bool: one byte, 0 or 1.
//   - numeric: the ndigits/weight/sign/dscale header and base-10000 digits,
//     with leading and trailing zero digits stripped as numeric_send emits
//     them; the display scale is part of the value (1.0 and 1.00 differ, as
//     their text forms do).
//   - uuid: the 16 bytes.
//   - text, varchar, bpchar, json, bytea: the bytes themselves (UTF-8 for the
//     text types; json keeps its input text, as PostgreSQL does).
//   - jsonb: the version byte 1 and jsonb_out's text, which PostgreSQL
//     produces from its normalised storage (keys sorted by length then bytes,
//     last duplicate kept, numbers as numeric, strings re-escaped); Canonical
//     performs the same normalisation, so it is unique per jsonb value.
//
// Text input follows each type's input function (cited on each converter)
// for the forms applications send; binary input is checked as the receive
// function checks it. The column's type modifier (varchar(n), char(n),
// numeric(p,s), timestamp(p)) is applied as an assignment applies it.
//
// # Sessions
//
// Text output depends on session settings, held in a Session: DateStyle
// (only the ISO output style is produced; any field order is accepted for
// input), TimeZone (IANA zones from the system tz database, the same files
// Debian's PostgreSQL reads, and fixed-offset POSIX zones), extra_float_digits,
// bytea_output and client_encoding (UTF8 or SQL_ASCII). A setting this
// package cannot reproduce makes the affected conversions fail with an
// Unsupported error instead of returning output that differs from
// PostgreSQL's.
//
// # Errors
//
// Every error is an *Error carrying the SQLSTATE PostgreSQL raises for the
// same condition. Messages name the type and never contain the value.
package codec
