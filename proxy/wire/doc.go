// Package wire frames PostgreSQL protocol 3.0 messages on a byte stream without decoding them.
//
// A regular message is a one-byte type, a four-byte big-endian length that counts itself but not
// the type byte, and a body (PostgreSQL protocol §55.2 "Message Flow" and §55.7 "Message
// Formats"). The start-up packets that precede the first regular message (StartupMessage,
// SSLRequest, GSSENCRequest, CancelRequest) have no type byte: a four-byte length and a four-byte
// request code come first.
//
// The proxy's hot path peeks the five-byte header with [Reader.Next] and forwards the body with
// [Reader.Forward], which streams it through the buffered reader and writer without allocating or
// holding the whole message; only messages the proxy must act on are read whole with
// [Reader.Body] and decoded with github.com/jackc/pgx/v5/pgproto3. This mirrors the interceptor of
// CockroachDB's sqlproxy.
//
// Everything here is transport: it knows nothing of sessions, policy or keys.
package wire
