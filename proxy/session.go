package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleproxy/fleproxy/proxy/wire"
)

// Buffer sizes of the pump's readers and writers, in bytes: big enough that a burst of small
// pipelined messages or a DataRow batch moves in one system call.
const bufferSize = 32 << 10

// session is one client connection and the upstream connection behind it.
type session struct {
	srv *Server
	id  uint64
	log zerolog.Logger

	client net.Conn // *tls.Conn once TLS is negotiated

	mu       sync.Mutex // guards client and upstream against abort from another goroutine
	upstream net.Conn

	identity Identity
	// rw rewrites messages once the session is authenticated; nil for pure pass-through.
	rw       Interceptor
	proxyKey backendKey
	hasKey   bool
	// ended records which side ended the session first (one of the end* values); once it is set,
	// connection errors are expected and no longer reported to the client.
	ended     atomic.Int32
	closeOnce sync.Once
}

// Values of session.ended.
const (
	endNone int32 = iota
	endFrontend
	endBackend
	endAborted
)

func (s *session) closing() bool { return s.ended.Load() != endNone }

func newSession(srv *Server, id uint64, conn net.Conn) *session {
	s := &session{srv: srv, id: id, client: conn}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		s.identity.Source = ap
	}
	s.log = srv.log.With().Uint64("conn", id).Str("client", conn.RemoteAddr().String()).Logger()
	return s
}

// run drives the session to its end. A panic is recovered here and ends only this session.
func (s *session) run(ctx context.Context) {
	start := time.Now()
	defer s.close()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error().Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).Msg("session panicked; closing it")
			s.sendFatal(fatal(codeInternalError, "internal error in the proxy; the session was closed", "the proxy's log has the details"))
		}
	}()

	err := s.serve(ctx)
	var ce *clientError
	switch {
	case errors.Is(err, errCancelHandled):
		s.log.Debug().Msg("cancel request connection closed")
	case err == nil, errors.Is(err, errClientGone):
		s.log.Debug().Dur("duration_ms", time.Since(start)).Msg("session ended by the client")
	case errors.As(err, &ce):
		s.log.Warn().Str("sqlstate", ce.code).Err(err).Dur("duration_ms", time.Since(start)).Msg("session ended")
	default:
		s.log.Info().Err(err).Dur("duration_ms", time.Since(start)).Msg("session ended")
	}
}

var (
	// errClientGone reports a client that closed its connection or sent Terminate.
	errClientGone = errors.New("client closed the connection")
	// errCancelHandled ends a connection that carried only a CancelRequest.
	errCancelHandled = errors.New("cancel request handled")
)

func (s *session) serve(ctx context.Context) error {
	_ = s.client.SetDeadline(time.Now().Add(s.srv.cfg.StartupTimeout))
	st, err := s.negotiate(ctx)
	if err != nil {
		s.sendFatal(err)
		return err
	}
	s.log = s.log.With().Str("user", st.values["user"]).Str("database", st.database()).Logger()

	if err := s.connectUpstream(ctx); err != nil {
		ce := fatal(codeConnectionFailure, fmt.Sprintf("could not connect to the database server at %s: %v", s.srv.cfg.UpstreamAddr, err), "check that the database is running and reachable from the proxy (upstream.address)")
		s.sendFatal(ce)
		return ce
	}
	ur := wire.NewReader(bufio.NewReaderSize(s.upstream, bufferSize), 0)
	uw := bufio.NewWriterSize(s.upstream, bufferSize)
	cr := wire.NewReader(bufio.NewReaderSize(s.client, bufferSize), s.srv.cfg.MaxMessageBytes)
	cw := bufio.NewWriterSize(s.client, bufferSize)

	if _, err := uw.Write(wire.AppendStartupMessage(nil, st.names, st.values)); err != nil {
		return fmt.Errorf("sending StartupMessage upstream: %w", err)
	}
	if err := uw.Flush(); err != nil {
		return fmt.Errorf("sending StartupMessage upstream: %w", err)
	}
	if err := s.relayAuthentication(cr, cw, ur, uw, st); err != nil {
		var ce *clientError
		if errors.As(err, &ce) {
			s.sendFatal(ce)
		}
		return err
	}
	_ = s.client.SetDeadline(time.Time{})
	ev := s.log.Info().Str("role", s.identity.Role).Bool("tls", s.identity.TLS)
	if len(s.identity.ClientCert) > 0 {
		ev = ev.Str("client_cert_subject", s.identity.ClientCert[0].Subject.String())
	}
	ev.Msg("session authenticated")
	if s.srv.cfg.testPanicUser != "" && s.identity.Role == s.srv.cfg.testPanicUser {
		panic("test panic requested for this role")
	}
	if f := s.srv.cfg.NewInterceptor; f != nil {
		rw, err := f(SessionInfo{ID: s.id, Identity: s.identity, Params: st.params, Log: s.log})
		if err != nil {
			ce := fatal(codeInvalidAuthorization, err.Error(), "")
			s.sendFatal(ce)
			return ce
		}
		s.rw = rw
	}
	return s.pump(cr, cw, ur, uw)
}

// sendFatal writes e as the last message to the client. Other errors are not reported: the
// client has gone or the error is the connection itself.
func (s *session) sendFatal(err error) {
	var ce *clientError
	if !errors.As(err, &ce) {
		return
	}
	_ = s.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = s.client.Write(appendErrorResponse(nil, ce))
}

// refuse answers a connection the server will not serve: it reads the start-up packets far enough
// to answer SSLRequest and GSSENCRequest with 'N', then sends e.
func (s *session) refuse(e *clientError) {
	defer s.close()
	_ = s.client.SetDeadline(time.Now().Add(5 * time.Second))
	for range 3 {
		p, err := wire.ReadStartupPacket(s.client)
		if err != nil {
			return
		}
		if p.Code == wire.SSLRequestCode || p.Code == wire.GSSENCRequestCode {
			if _, err := s.client.Write([]byte{'N'}); err != nil {
				return
			}
			continue
		}
		break
	}
	s.sendFatal(e)
}

// abort closes both connections, ending the session's goroutines.
func (s *session) abort() {
	s.ended.CompareAndSwap(endNone, endAborted)
	s.mu.Lock()
	client, up := s.client, s.upstream
	s.mu.Unlock()
	_ = client.Close()
	if up != nil {
		_ = up.Close()
	}
}

func (s *session) close() {
	s.closeOnce.Do(func() {
		s.abort()
		if s.hasKey {
			s.srv.cancels.unregister(s.proxyKey)
		}
	})
}

// dialUpstream opens a connection to the server, negotiating TLS when configured (PostgreSQL
// protocol §55.2.10: SSLRequest, then 'S' and a TLS handshake, or 'N').
func (s *session) dialUpstream(ctx context.Context) (net.Conn, error) {
	cfg := s.srv.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.UpstreamAddr)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetKeepAlive(true)
	}
	if cfg.UpstreamTLS == nil {
		return conn, nil
	}
	tconn, err := startUpstreamTLS(ctx, conn, cfg.UpstreamTLS)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tconn, nil
}

func (s *session) connectUpstream(ctx context.Context) error {
	conn, err := s.dialUpstream(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing() {
		conn.Close()
		return errors.New("the proxy is shutting down")
	}
	s.upstream = conn
	return nil
}

// pump forwards messages both ways until either side ends. Client→upstream runs here, upstream→
// client in a second goroutine; each is the only writer of its destination, so no lock is needed
// on the hot path.
func (s *session) pump(cr *wire.Reader, cw *bufio.Writer, ur *wire.Reader, uw *bufio.Writer) error {
	backendDone := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error().Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).Msg("upstream pump panicked; closing the session")
				backendDone <- fmt.Errorf("panic: %v", r)
				s.abort()
			}
		}()
		err := s.forwardBackend(ur, cw)
		if s.ended.CompareAndSwap(endNone, endBackend) {
			// The server ended the session (or vanished): make the client's read end.
			_ = s.client.Close()
		}
		backendDone <- err
	}()

	ferr := s.forwardFrontend(cr, uw)
	s.ended.CompareAndSwap(endNone, endFrontend)
	_ = s.upstream.Close()
	_ = s.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	berr := <-backendDone
	if c, ok := s.rw.(interface{ Close() }); ok {
		// Both directions have stopped: the interceptor may settle what it holds.
		c.Close()
	}
	if s.ended.Load() != endFrontend {
		return berr
	}
	var ce *clientError
	if errors.As(ferr, &ce) {
		s.sendFatal(ce)
	}
	return ferr
}

// forwardFrontend copies client messages upstream. It returns a *clientError for a protocol
// violation the client must be told about, errClientGone when the client ends the session, and
// the I/O error otherwise.
func (s *session) forwardFrontend(cr *wire.Reader, uw *bufio.Writer) error {
	for {
		h, err := cr.Next()
		if err != nil {
			return s.clientReadError(err)
		}
		if h.Type == 'X' {
			// Terminate (§55.2.11): pass it on so the backend ends cleanly, then stop. The
			// connection closing that follows is expected, not a lost server.
			s.ended.CompareAndSwap(endNone, endFrontend)
			if err := cr.Forward(uw, h); err == nil {
				_ = uw.Flush()
			}
			return errClientGone
		}
		if s.rw != nil && s.rw.FrontendNeedsBody(h.Type) {
			body, err := cr.Body()
			if err != nil {
				return s.clientReadError(err)
			}
			if err := s.rw.Frontend(h.Type, body, uw); err != nil {
				return err
			}
		} else if err := cr.Forward(uw, h); err != nil {
			return err
		}
		if cr.Buffered() == 0 {
			if err := uw.Flush(); err != nil {
				return err
			}
		}
	}
}

// forwardBackend copies server messages to the client. When the server connection drops between
// messages without a FATAL error of its own, the client is told with a FATAL 08006.
func (s *session) forwardBackend(ur *wire.Reader, cw *bufio.Writer) error {
	var lastType byte
	for {
		h, err := ur.Next()
		if err != nil {
			if !s.closing() && lastType != 'E' {
				ce := fatal(codeConnectionFailure, "lost the connection to the database server at "+s.srv.cfg.UpstreamAddr, "")
				if _, werr := cw.Write(appendErrorResponse(nil, ce)); werr == nil {
					_ = cw.Flush()
				}
			}
			return fmt.Errorf("reading from upstream: %w", err)
		}
		lastType = h.Type
		if s.rw != nil && s.rw.BackendNeedsBody(h.Type) {
			body, err := ur.Body()
			if err != nil {
				return fmt.Errorf("reading from upstream: %w", err)
			}
			if err := s.rw.Backend(h.Type, body, cw); err != nil {
				return err
			}
		} else if err := ur.Forward(cw, h); err != nil {
			return err
		}
		if ur.Buffered() == 0 {
			if err := cw.Flush(); err != nil {
				return err
			}
		}
	}
}

// clientReadError classifies an error reading a client message.
func (s *session) clientReadError(err error) error {
	var tooLarge *wire.TooLargeError
	var malformed *wire.MalformedError
	switch {
	case errors.As(err, &tooLarge):
		return fatal(codeProtocolViolation, tooLarge.Error(), "raise limits.max_message_bytes if such messages are expected")
	case errors.As(err, &malformed):
		return fatal(codeProtocolViolation, malformed.Error(), "")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return errClientGone
	}
	return err
}
