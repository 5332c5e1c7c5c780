// Package copyfmt rewrites chosen fields of a PostgreSQL COPY data stream in
// the text, CSV and binary formats, leaving every other byte as it was.
//
// During COPY … FROM STDIN the client sends the rows as CopyData messages
// whose payloads split the stream at arbitrary bytes; during COPY … TO STDOUT
// the server sends them (one row per message, which this package does not
// rely on). A [Transformer] is fed the payloads in order with
// [Transformer.Write] and finished at CopyDone with [Transformer.Close]; it
// calls a [FieldFunc] for each selected field of each row and re-encodes the
// result in the stream's format. It knows nothing of keys, policy or sockets.
//
// The formats are those of the PostgreSQL documentation, COPY, "File
// Formats" (https://www.postgresql.org/docs/15/sql-copy.html):
//
//   - "Text Format": fields separated by the delimiter, rows by \n, \r\n or
//     \r (all rows alike, as COPY FROM insists); backslash escapes; the NULL
//     string matched against the field before de-escaping; the end-of-data
//     line \. . Values are written with COPY TO's escaping.
//   - "CSV Format": QUOTE and ESCAPE, quoted fields that may hold line
//     breaks, NULL matched only when unquoted, the optional header line, and
//     the FORCE_QUOTE, FORCE_NOT_NULL and FORCE_NULL options. Values are
//     quoted as COPY TO quotes them.
//   - "Binary Format": the signature, flags and header extension, tuples of
//     length-prefixed fields, and the trailer.
//
// Where the documentation is silent the parser follows PostgreSQL's own
// (src/backend/commands/copyfromparse.c), so that the proxy and the server
// split the stream into the same rows and fields. Where the two could
// differ the Transformer fails instead of guessing: a protected field is
// never forwarded unprocessed.
//
// The stream is parsed byte by byte, which is exact for every PostgreSQL
// server encoding and for UTF-8 clients, because no byte of a multibyte
// character is ASCII there. The client-only encodings SJIS, SHIFT_JIS_2004,
// BIG5, GBK, UHC, GB18030 and JOHAB embed ASCII bytes in multibyte
// characters; the caller must not use a Transformer for a stream in one of
// them.
package copyfmt
