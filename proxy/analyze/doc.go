// Package analyze decides, for one query string, which literal, bind parameter
// or COPY field feeds which protected column, and rewrites the statement text so
// that the database receives only ciphertext.
//
// The proxy calls [MayTouch] on every Query and Parse message; only when it
// reports true does it call [Analyze], which parses the text with the real
// PostgreSQL parser (pg_query, PostgreSQL 17 grammar) and returns a [Plan]: one
// [Statement] per statement of the query string, each saying whether it
// touches a protected table, which $n parameters and which literals are
// written into which protected [Column], and, for COPY, how each field of the
// data stream maps to a column ([Copy]). [Plan.Rewrite] then replaces every
// such literal by the ciphertext literal the caller's encrypt function returns
// and strips type casts around protected parameters and literals, so the
// server infers the storage type (an ORM's `$1::text` into a bytea column
// becomes `$1`).
//
// # Fail closed
//
// DESIGN.md §2 guarantee 1: a write that targets a protected column reaches the
// database only as ciphertext. The analyzer therefore accepts a statement that
// touches a protected table only when it can account for every value written
// to a protected column and every use of one. A value written to a protected
// column must be a literal, a $n parameter, NULL or DEFAULT (each optionally
// inside type casts), or, in ON CONFLICT DO UPDATE, EXCLUDED.<same column>.
// A protected column may be read only as a plain select-list or RETURNING
// item, as the argument of IS [NOT] NULL, or inside count(col). Everything
// else (expressions around written values, column-to-column copies, INSERT …
// SELECT from a table, writable CTEs and MERGE on protected tables, COPY FROM
// a server file or program, predicates, joins, grouping, ordering, DISTINCT and
// set operations on protected columns) is rejected with a [*RejectError] that
// names the column and says what is supported. Text that cannot be parsed is
// rejected with a [*ParseError]. Errors never quote a value from the statement.
//
// # Limits the caller must handle
//
//   - The parser assumes standard_conforming_strings = on. With it off, the
//     server reads backslashes in ordinary string literals differently from
//     the analyzer; the proxy must refuse sessions that turn it off.
//   - Writes that happen inside the server out of the analyzer's sight —
//     functions, procedures, triggers and rules defined earlier, dynamic SQL in
//     PL/pgSQL — cannot be mapped. The database-side CHECK on every protected
//     column (DESIGN.md §2, defence in depth) is what stops plaintext there.
//     DO blocks whose text names a protected table are rejected.
//   - EXECUTE of a prepared statement is reported in [Statement.Execute]; its
//     arguments are literals the analyzer cannot map, because the prepared
//     statement may have been created by a protocol-level Parse. The proxy
//     must reject it when that statement has protected parameters. SQL-level
//     PREPARE of a statement with protected parameters is rejected here.
//   - Unqualified relation names are resolved by table name only (the proxy
//     cannot see search_path); see [Schema].
//
// # Views
//
// [ViewColumns] serves the catalog rather than the proxy's statements: given a
// view's definition, it tells which of the view's columns are plain
// references to protected columns, so that the catalog can attribute them
// (RowDescription names the view, not the table) and report the view to
// [Analyze] as a protected relation. It follows the same scopes as the read
// checks, with the opposite bias: it attributes only what it is sure of.
//
// For logging, use [Normalize] or [Fingerprint], never the statement text: the
// text may contain plaintext values (DESIGN.md §2 guarantee 4).
package analyze
