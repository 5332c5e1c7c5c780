// Package codec converts values of protected columns between the PostgreSQL
// wire formats and fleproxy's canonical plaintext (DESIGN.md §4).
//
// On the write path the proxy calls Canonical (or AppendCanonical) with a
// Bind parameter or a literal in text or binary format (PostgreSQL protocol
// §55.7) and encrypts the result. On the read path it decrypts and calls
// Wire (or AppendWire, which allocates nothing when dst has room) to produce
// the DataRow value in the format the client asked for, while RowDescription
// carries the logical Type's OID, Len and Typmod. The main types are Type
// (from Lookup or ForOID), Session (the session settings that change text
// formats) and Error.
//
// # Canonical plaintext
//
// The canonical plaintext of a value is PostgreSQL's binary send format for
// it (the type's typsend output, e.g. int4send in
// src/backend/utils/adt/int.c): compact, and exactly what a client asking
// for binary results receives, so binary output is a copy. For each type it
// is the form PostgreSQL itself stores and sends back:
//
//   - int2/int4/int8, float4/float8, date, timestamp, timestamptz: big-endian
//     fixed-width integers or IEEE 754 bits (timestamptz in UTC, so the same
//     instant written from any time zone has one canonical form). NaN
//     payloads and signs are kept, as PostgreSQL keeps them.
//   - bool: one byte, 0 or 1.
//   - numeric: the ndigits/weight/sign/dscale header and base-10000 digits,
//     normalised as numeric_send emits them (zero digits stripped, digits
//     hidden by dscale dropped). The display scale is part of the value:
//     1.0 and 1.00 differ, as their text forms do.
//   - uuid: the 16 bytes.
//   - text, varchar, bpchar, json, bytea: the bytes themselves (UTF-8 for the
//     text types; json keeps its input text, as PostgreSQL does).
//   - jsonb: the version byte 1 and jsonb_out's text, which PostgreSQL
//     derives from its normalised storage (keys ordered by length then
//     bytes, the last duplicate kept, numbers as numeric, strings
//     re-escaped). Canonical performs the same normalisation, so equal jsonb
//     values have one canonical form.
//
// The canonical form is unique per stored PostgreSQL value, which is finer
// than SQL equality in a few cases: numeric 1.0 = 1.00, float8 0 = -0 and
// all NaNs are equal in SQL, and bpchar comparison ignores trailing blanks.
//
// # Input and output rules
//
// Text input follows each type's input function as PostgreSQL 15 implements
// it (cited on each converter), plus the integer and numeric spellings
// PostgreSQL 16 added (underscores between digits, 0x/0o/0b prefixes).
// Binary input is checked as the receive function checks it. The column's
// type modifier (varchar(n), char(n), numeric(p,s), timestamp(p)) is then
// applied as an assignment to the column applies it. Text output is
// byte-identical to the type's output function. The package's tests compare
// all of this with a real PostgreSQL server.
//
// Input PostgreSQL accepts but this package cannot convert faithfully fails
// with an Unsupported error: date/time input "now", "today", "tomorrow" and
// "yesterday" (they depend on the server's transaction time), and time zone
// abbreviations whose offset depends on the date (the fixed-offset
// abbreviations of the Default timezone_abbreviations set are supported).
//
// # Sessions
//
// Text formats depend on session settings, held in a Session: DateStyle
// (only the ISO output style is produced; any field order is accepted for
// input), TimeZone (IANA zones from the system tz database, the files
// Debian's PostgreSQL also reads, and POSIX zone specifications),
// extra_float_digits, bytea_output, and the client and server encodings
// (UTF8; a SQL_ASCII client is equivalent). A setting this package cannot
// reproduce makes the affected conversions fail with an Unsupported error
// instead of returning output that differs from PostgreSQL's.
// IntervalStyle and standard_conforming_strings do not affect the supported
// types (quoting of SQL literals is the statement analyser's concern).
//
// # Errors
//
// Every error is an *Error carrying the SQLSTATE PostgreSQL raises for the
// same condition. Messages name the type and never contain the value
// (DESIGN.md §2, guarantee 4).
package codec
