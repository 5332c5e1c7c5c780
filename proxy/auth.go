package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fleproxy/fleproxy/proxy/wire"
)

var noDeadline time.Time

// Authentication request codes of the 'R' message (PostgreSQL protocol §55.7).
const (
	authOk                = 0
	authCleartextPassword = 3
	authMD5Password       = 5
	authGSS               = 7
	authGSSContinue       = 8
	authSSPI              = 9
	authSASL              = 10
	authSASLContinue      = 11
	authSASLFinal         = 12
)

// relayAuthentication relays the authentication exchange between client and server until the
// server's first ReadyForQuery (PostgreSQL protocol §55.2.1). The database does the
// authenticating; the proxy forwards each request and the client's single answer to it, with two
// changes: SCRAM-SHA-256-PLUS is removed from the SASL mechanisms, since channel binding would
// bind to the proxy's TLS certificate while the server checks its own; and BackendKeyData is
// replaced by a key of the proxy's, registered for CancelRequest routing.
func (s *session) relayAuthentication(cr *wire.Reader, cw *bufio.Writer, ur *wire.Reader, uw *bufio.Writer, st startup) error {
	authenticated := false
	for {
		h, err := ur.Next()
		if err != nil {
			return fmt.Errorf("reading from upstream during start-up: %w", err)
		}
		body, err := ur.Body()
		if err != nil {
			return fmt.Errorf("reading from upstream during start-up: %w", err)
		}
		switch h.Type {
		case 'R':
			if len(body) < 4 {
				return fmt.Errorf("upstream sent a malformed authentication request")
			}
			code := binary.BigEndian.Uint32(body)
			needsAnswer := false
			switch code {
			case authOk:
				authenticated = true
				s.identity.Role = st.values["user"]
			case authSASL:
				body = stripChannelBinding(body)
				needsAnswer = true
			case authCleartextPassword, authMD5Password, authGSS, authGSSContinue, authSSPI, authSASLContinue:
				needsAnswer = true
			case authSASLFinal:
			default:
				return fatal(codeFeatureNotSupported, fmt.Sprintf("the database requested authentication method %d, which the proxy cannot relay", code), "use trust, password, md5 or scram-sha-256 in pg_hba.conf")
			}
			if err := writeMessage(cw, 'R', body); err != nil {
				return errClientGone
			}
			if !needsAnswer {
				continue
			}
			if err := cw.Flush(); err != nil {
				return errClientGone
			}
			if err := s.relayAuthAnswer(cr, uw, code == authSASL); err != nil {
				return err
			}
		case 'K':
			if len(body) < 8 {
				return fmt.Errorf("upstream sent a malformed BackendKeyData")
			}
			up := backendKey{pid: binary.BigEndian.Uint32(body)}
			if len(body) != 8 {
				return fmt.Errorf("upstream sent a %d-byte cancel key; the proxy speaks protocol 3.0", len(body)-4)
			}
			copy(up.secret[:], body[4:8])
			k, err := s.srv.cancels.register(up)
			if err != nil {
				return fmt.Errorf("issuing a cancel key: %w", err)
			}
			s.proxyKey, s.hasKey = k, true
			var kb [8]byte
			binary.BigEndian.PutUint32(kb[:], k.pid)
			copy(kb[4:], k.secret[:])
			if err := writeMessage(cw, 'K', kb[:]); err != nil {
				return errClientGone
			}
		case 'v':
			// The proxy sends upstream only what 3.0 defines; a server answer here would speak of
			// options this client was already told about. It is not forwarded.
			s.log.Debug().Msg("ignoring NegotiateProtocolVersion from upstream")
		case 'E':
			// Authentication failed or the server refused the session: the client gets the server's
			// own error, and the server closes the connection.
			_ = writeMessage(cw, 'E', body)
			_ = cw.Flush()
			return errUpstreamRefused
		case 'Z':
			if !authenticated {
				return fmt.Errorf("upstream sent ReadyForQuery before AuthenticationOk")
			}
			if err := writeMessage(cw, 'Z', body); err != nil {
				return errClientGone
			}
			if err := cw.Flush(); err != nil {
				return errClientGone
			}
			return nil
		default: // ParameterStatus, NoticeResponse
			if h.Type == 'S' {
				if i := bytes.IndexByte(body, 0); i > 0 {
					st.params[string(body[:i])] = string(bytes.TrimRight(body[i+1:], "\x00"))
				}
			}
			if err := writeMessage(cw, h.Type, body); err != nil {
				return errClientGone
			}
		}
	}
}

// errUpstreamRefused ends a session whose start-up the server rejected with its own ErrorResponse,
// already forwarded to the client.
var errUpstreamRefused = errors.New("the database refused the session")

// relayAuthAnswer forwards the client's answer to an authentication request: one
// PasswordMessage, SASLInitialResponse, SASLResponse or GSSResponse, all of type 'p'.
// initialSASL marks a SASLInitialResponse.
func (s *session) relayAuthAnswer(cr *wire.Reader, uw *bufio.Writer, initialSASL bool) error {
	h, err := cr.Next()
	if err != nil {
		if ce := s.clientReadError(err); !errors.Is(ce, errClientGone) {
			return ce
		}
		// libpq closes the connection here to prompt for a password, then reconnects.
		return errClientGone
	}
	if h.Type == 'X' {
		return errClientGone
	}
	if h.Type != 'p' {
		return fatal(codeProtocolViolation, fmt.Sprintf("expected a password or SASL message during authentication, got message type %q", h.Type), "")
	}
	if !initialSASL || s.srv.cfg.UpstreamTLS == nil {
		if err := cr.Forward(uw, h); err != nil {
			return err
		}
		return uw.Flush()
	}
	body, err := cr.Body()
	if err != nil {
		return s.clientReadError(err)
	}
	if scramFlag(body) == 'y' {
		// RFC 5802 §6: "y" says the client supports channel binding but thinks the server does
		// not; a PostgreSQL server on TLS rightly refuses that as a possible downgrade. The
		// binding cannot be carried across the proxy, so say so plainly instead.
		return fatal(codeInvalidAuthorization,
			"SCRAM channel binding cannot pass through the proxy, which terminates TLS on both sides",
			"set channel_binding=disable in the client's connection settings")
	}
	if err := writeMessage(uw, 'p', body); err != nil {
		return err
	}
	return uw.Flush()
}

// scramFlag returns the gs2 channel-binding flag ('n', 'y' or 'p') of a SASLInitialResponse
// body: the mechanism name, an int32 data length and the client-first-message (RFC 5802 §7).
func scramFlag(body []byte) byte {
	i := bytes.IndexByte(body, 0)
	if i < 0 || len(body) < i+1+4+1 {
		return 0
	}
	return body[i+1+4]
}

// stripChannelBinding removes the -PLUS (channel binding) mechanisms from an AuthenticationSASL
// body: the int32 code and a list of NUL-terminated names ended by an empty one (§55.7).
func stripChannelBinding(body []byte) []byte {
	out := make([]byte, 4, len(body))
	copy(out, body[:4])
	for _, m := range bytes.Split(bytes.TrimRight(body[4:], "\x00"), []byte{0}) {
		if len(m) == 0 || bytes.HasSuffix(m, []byte("-PLUS")) {
			continue
		}
		out = append(out, m...)
		out = append(out, 0)
	}
	return append(out, 0)
}

// writeMessage writes one regular message.
func writeMessage(w *bufio.Writer, typ byte, body []byte) error {
	if err := wire.WriteHeader(w, typ, len(body)); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// forwardCancel routes a CancelRequest body (process ID and secret key) to the upstream backend
// behind the proxy key, over a new connection as PostgreSQL requires (§55.2.8). Unknown keys are
// ignored silently, as the server does; the client gets no answer either way.
func (s *session) forwardCancel(ctx context.Context, body []byte) {
	if len(body) < 8 {
		s.log.Debug().Msg("malformed CancelRequest ignored")
		return
	}
	up, ok := s.srv.cancels.lookup(binary.BigEndian.Uint32(body), body[4:])
	if !ok {
		s.log.Info().Msg("CancelRequest with an unknown key ignored")
		return
	}
	conn, err := s.dialUpstream(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("could not forward CancelRequest")
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(s.srv.cfg.ConnectTimeout))
	if _, err := conn.Write(wire.AppendCancelRequest(nil, up.pid, up.secret[:])); err != nil {
		s.log.Warn().Err(err).Msg("could not forward CancelRequest")
		return
	}
	// The server closes the connection once it has read the request.
	_, _ = io.Copy(io.Discard, conn)
	s.log.Info().Msg("CancelRequest forwarded")
}
