package proxy

import (
	"crypto/x509"
	"net/netip"
)

// Identity is what the proxy has verified about a client connection. It is fixed when
// authentication succeeds and never changes for the life of the session: SET ROLE, SET SESSION
// AUTHORIZATION, application_name and the other start-up parameters a client can simply claim are
// not part of it.
type Identity struct {
	// Role is the database role PostgreSQL authenticated (the StartupMessage user, accepted by the
	// server's AuthenticationOk).
	Role string
	// Database is the database the session is connected to.
	Database string
	// Source is the client's address as seen on the accepted TCP connection.
	Source netip.AddrPort
	// TLS reports whether the client connection is TLS.
	TLS bool
	// ClientCert is the client certificate's verified chain, leaf first, or nil if the client sent
	// none. The chain was verified against the configured client CA bundle during the handshake.
	ClientCert []*x509.Certificate
}
