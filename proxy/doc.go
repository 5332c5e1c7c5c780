// Package proxy is fleproxy's PostgreSQL wire-protocol proxy: the client listener, one session per
// client connection, the start-up phase (SSLRequest, GSSENCRequest, NegotiateProtocolVersion,
// TLS on each side, authentication relayed to the database), CancelRequest routing, and the
// message pump that forwards the two streams.
//
// A session runs in two phases (PostgreSQL protocol §55.2):
//
//   - Start-up, in the session's goroutine: the client's start-up packets are read one by one
//     (unbuffered, so nothing the client sends before a TLS handshake can be replayed after it);
//     the proxy answers SSLRequest and GSSENCRequest itself, opens the upstream connection,
//     forwards the StartupMessage, and relays the authentication exchange message by message
//     until ReadyForQuery. The database authenticates the client; the proxy never sees a stored
//     password and only removes SCRAM-SHA-256-PLUS from the offered mechanisms, since channel
//     binding cannot span a connection that TLS terminates in the middle.
//   - The pump: client→upstream in the session's goroutine and upstream→client in a second one.
//     Each reads a five-byte header and streams the body through without decoding it
//     (package wire); the two directions share no state but the connections.
//
// The proxy hands each client its own BackendKeyData, so a CancelRequest can only reach the
// backend of the session that received that key; see cancel.go.
//
// The caller's Identity is fixed at start-up from verified facts only: the TLS client certificate
// chain, the role the database authenticated, and the source address.
package proxy
