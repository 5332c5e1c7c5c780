package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/fleproxy/fleproxy/proxy/wire"
)

// startup is the client's StartupMessage, as it will be forwarded upstream.
type startup struct {
	names  []string
	values map[string]string
	// params are the StartupMessage parameters overlaid with the ParameterStatus values the
	// server reported during start-up, for the Interceptor.
	params map[string]string
}

func (st startup) database() string {
	if db := st.values["database"]; db != "" {
		return db
	}
	return st.values["user"]
}

// negotiate reads the client's start-up packets (PostgreSQL protocol §55.2.1 and §55.2.10–11) up
// to its StartupMessage: SSLRequest is answered 'S' and TLS is negotiated when client TLS is
// configured, 'N' otherwise; GSSENCRequest is always answered 'N'; a CancelRequest is routed and
// ends the connection with errCancelHandled. Packets are read straight from the connection, not
// through a buffer, so bytes a client sends after SSLRequest but before the handshake cannot be
// taken as part of the encrypted stream (CVE-2021-23214).
func (s *session) negotiate(ctx context.Context) (startup, error) {
	sawGSS := false
	for {
		p, err := wire.ReadStartupPacket(s.client)
		if err != nil {
			var tooLarge *wire.TooLargeError
			var malformed *wire.MalformedError
			if errors.As(err, &tooLarge) || errors.As(err, &malformed) {
				return startup{}, fatal(codeProtocolViolation, err.Error(), "")
			}
			return startup{}, errClientGone
		}
		switch p.Code {
		case wire.SSLRequestCode:
			if s.identity.TLS {
				return startup{}, fatal(codeProtocolViolation, "SSLRequest received on a TLS connection", "")
			}
			if s.srv.cfg.ClientTLS == nil {
				if _, err := s.client.Write([]byte{'N'}); err != nil {
					return startup{}, errClientGone
				}
				continue
			}
			if _, err := s.client.Write([]byte{'S'}); err != nil {
				return startup{}, errClientGone
			}
			if err := s.startClientTLS(ctx); err != nil {
				return startup{}, err
			}
		case wire.GSSENCRequestCode:
			// fleproxy does not offer GSSAPI encryption; 'N' lets the client go on with SSLRequest
			// or a plain StartupMessage (§55.2.11).
			if s.identity.TLS || sawGSS {
				return startup{}, fatal(codeProtocolViolation, "unexpected GSSENCRequest", "")
			}
			sawGSS = true
			if _, err := s.client.Write([]byte{'N'}); err != nil {
				return startup{}, errClientGone
			}
		case wire.CancelRequestCode:
			s.forwardCancel(ctx, p.Body)
			return startup{}, errCancelHandled
		default:
			return s.readStartupMessage(p)
		}
	}
}

func (s *session) startClientTLS(ctx context.Context) error {
	tconn := tls.Server(s.client, s.srv.cfg.ClientTLS)
	if err := tconn.HandshakeContext(ctx); err != nil {
		// No ErrorResponse can be sent: the client expects TLS records now.
		return fmt.Errorf("client TLS handshake: %w", err)
	}
	s.mu.Lock() // abort may read s.client from another goroutine
	s.client = tconn
	s.mu.Unlock()
	s.identity.TLS = true
	cs := tconn.ConnectionState()
	if len(cs.VerifiedChains) > 0 {
		s.identity.ClientCert = cs.VerifiedChains[0]
	}
	return nil
}

// readStartupMessage checks a StartupMessage and prepares the one sent upstream. The proxy speaks
// protocol 3.0: a client asking for a newer 3.x minor version or for protocol options (_pq_.*) is
// answered with NegotiateProtocolVersion (§55.7) and the start-up goes on at 3.0 without them.
func (s *session) readStartupMessage(p wire.StartupPacket) (startup, error) {
	major, minor := p.Code>>16, p.Code&0xffff
	if major != 3 {
		return startup{}, fatal(codeFeatureNotSupported, fmt.Sprintf("unsupported frontend protocol %d.%d: the proxy supports 3.0", major, minor), "")
	}
	if s.srv.cfg.RequireClientTLS && !s.identity.TLS {
		return startup{}, fatal(codeInvalidAuthorization, "the proxy accepts only TLS connections", "connect with sslmode=require or stronger")
	}
	names, values, err := wire.ParseStartupParameters(p.Body)
	if err != nil {
		return startup{}, fatal(codeProtocolViolation, err.Error(), "")
	}
	if values["user"] == "" {
		return startup{}, fatal(codeInvalidAuthorization, "no PostgreSQL user name specified in startup packet", "")
	}
	if r, ok := values["replication"]; ok && r != "false" && r != "off" && r != "no" && r != "0" {
		return startup{}, fatal(codeFeatureNotSupported, "replication connections are not supported through the proxy", "connect replication clients to the database directly")
	}
	st := startup{values: values, params: make(map[string]string, len(values))}
	for k, v := range values {
		st.params[k] = v
	}
	var unknown []string
	for _, n := range names {
		if strings.HasPrefix(n, "_pq_.") {
			unknown = append(unknown, n)
			delete(values, n)
			continue
		}
		st.names = append(st.names, n)
	}
	if minor > 0 || len(unknown) > 0 {
		if _, err := s.client.Write(appendNegotiateProtocolVersion(nil, 0, unknown)); err != nil {
			return startup{}, errClientGone
		}
	}
	s.identity.Database = st.database()
	return st, nil
}

// appendNegotiateProtocolVersion appends a NegotiateProtocolVersion message: the newest minor
// version supported and the protocol options not recognised (PostgreSQL protocol §55.7).
func appendNegotiateProtocolVersion(dst []byte, minor uint32, unknown []string) []byte {
	start := len(dst)
	dst = append(dst, 'v', 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, 3<<16|minor)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(unknown)))
	for _, u := range unknown {
		dst = append(dst, u...)
		dst = append(dst, 0)
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}

// startUpstreamTLS sends SSLRequest on conn and, when the server answers 'S', completes a TLS
// handshake with cfg. The server's single-byte answer is read before anything else so that no
// unencrypted byte is taken as part of the TLS stream.
func startUpstreamTLS(ctx context.Context, conn net.Conn, cfg *tls.Config) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
		defer conn.SetDeadline(noDeadline)
	}
	if _, err := conn.Write(wire.AppendRequest(nil, wire.SSLRequestCode)); err != nil {
		return nil, err
	}
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		return nil, fmt.Errorf("reading the answer to SSLRequest: %w", err)
	}
	if b[0] != 'S' {
		return nil, errors.New("the server does not accept TLS connections (upstream.tls.mode requires TLS)")
	}
	tconn := tls.Client(conn, cfg)
	if err := tconn.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tconn, nil
}
