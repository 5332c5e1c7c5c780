// Package rewrite is the per-session encryption layer between the proxy's message pump and the
// database: it encrypts every value written into a protected column and, for callers the policy
// clears, decrypts protected result columns. It knows nothing of sockets: the pump hands it
// message bodies and a writer, one direction per goroutine.
//
// # Write path (client → database)
//
// A Query or Parse whose text may name a protected table is analysed once (package analyze) to
// learn which literal, $n or COPY field feeds which protected column. Literals are replaced by
// ciphertext constants; $n of a prepared statement are encrypted at every Bind, in the text or
// binary format the client used (PostgreSQL protocol §55.7, Bind), after conversion to the column's
// canonical plaintext (package codec); COPY FROM STDIN data is rewritten field by field (package
// copyfmt). A statement the analyzer cannot account for is not forwarded: the proxy sends the
// server a statement that fails at the same point instead (a Query or Parse with a syntax error, a
// Bind to a statement that does not exist), so that the server applies its own error rules —
// aborting the transaction, discarding messages until Sync — and then replaces the server's
// ErrorResponse with its own, which names the column and what is supported.
//
// # Read path (database → client)
//
// RowDescription fields are resolved through the catalog cache by table OID and attribute number.
// For a caller with plaintext clearance a protected field's type is shown as the logical type and
// its DataRow values are decrypted and encoded in the format the client asked for; every other
// caller gets the stored ciphertext unchanged. In the extended protocol a client need not Describe
// the portal it executes, so after each Bind of a statement that reads a protected table the proxy
// sends its own Describe (portal) and keeps the answer to itself.
//
// # Keeping the two directions in step
//
// Responses come back in the order requests were sent (§55.2.3), so the frontend side queues one
// entry per request that the server will answer, and the backend side matches each answer to the
// head of the queue. An ErrorResponse in the extended protocol makes the server skip to the next
// Sync; the queue does the same.
package rewrite
