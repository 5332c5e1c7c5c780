package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Config configures a Server. Build it from package config or by hand in tests.
type Config struct {
	// UpstreamAddr is host:port of the PostgreSQL server.
	UpstreamAddr string
	// UpstreamTLS, if non-nil, makes every upstream connection (and every forwarded CancelRequest)
	// negotiate TLS with an SSLRequest and this configuration; the session fails if the server
	// refuses. Nil: plain TCP.
	UpstreamTLS *tls.Config
	// ConnectTimeout bounds dialling the server and its TLS handshake.
	ConnectTimeout time.Duration
	// ClientTLS, if non-nil, lets clients negotiate TLS (SSLRequest answered 'S'). Nil: answered 'N'.
	ClientTLS *tls.Config
	// RequireClientTLS refuses clients that send a StartupMessage without TLS (FATAL 28000).
	RequireClientTLS bool
	// MaxMessageBytes is the largest client message body accepted (FATAL 08P01 above it).
	MaxMessageBytes int
	// StartupTimeout bounds the start-up phase: TLS, start-up packet and authentication.
	StartupTimeout time.Duration
	// MaxConnections caps concurrent client sessions; 0 means no cap.
	MaxConnections int
	// ShutdownTimeout is how long Serve waits, once its context is done, for sessions to end before
	// closing them.
	ShutdownTimeout time.Duration
	// Logger receives the operational log; each session logs through a child with its id.
	Logger zerolog.Logger
	// NewInterceptor, if set, is called once a session is authenticated; the session's messages
	// then go through the Interceptor it returns. An error ends the session with a FATAL
	// ErrorResponse carrying the error's text. Nil: pure pass-through.
	NewInterceptor func(SessionInfo) (Interceptor, error)

	// testPanicUser, set only by this package's tests, makes a session whose StartupMessage user
	// equals it panic once authenticated, to exercise the recovery path.
	testPanicUser string
}

// SessionInfo is what the proxy knows of an authenticated session when it asks for its
// Interceptor.
type SessionInfo struct {
	// ID is the session's connection id, as in the operational log.
	ID uint64
	// Identity holds the verified facts about the caller.
	Identity Identity
	// Params are the StartupMessage parameters overlaid with the ParameterStatus values the
	// server reported during start-up (DateStyle, TimeZone, client_encoding, …).
	Params map[string]string
	// Log is the session's logger.
	Log zerolog.Logger
}

// Interceptor rewrites the messages of one session (package rewrite implements it). Frontend
// methods are called from the client→database goroutine only, Backend methods from the
// database→client goroutine only. A message whose type the NeedsBody method declines is forwarded
// unchanged without being read whole; the others are read and handed over, and the Interceptor
// writes whatever should go on in their place (possibly nothing, possibly several messages).
type Interceptor interface {
	FrontendNeedsBody(typ byte) bool
	Frontend(typ byte, body []byte, up *bufio.Writer) error
	BackendNeedsBody(typ byte) bool
	Backend(typ byte, body []byte, client *bufio.Writer) error
}

// Server accepts client connections and runs a session for each. Its methods are safe for
// concurrent use.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	cancels *cancelRegistry
	nextID  atomic.Uint64

	mu       sync.Mutex
	sessions map[*session]struct{}
	wg       sync.WaitGroup
}

// NewServer validates cfg and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.UpstreamAddr == "" {
		return nil, errors.New("proxy: UpstreamAddr is required")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.StartupTimeout <= 0 {
		cfg.StartupTimeout = 30 * time.Second
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 64 << 20
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.RequireClientTLS && cfg.ClientTLS == nil {
		return nil, errors.New("proxy: RequireClientTLS needs ClientTLS")
	}
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		cancels:  newCancelRegistry(),
		sessions: make(map[*session]struct{}),
	}, nil
}

// Serve accepts connections on ln until ctx is done or ln fails, then stops accepting, waits up
// to ShutdownTimeout for running sessions to end, closes those still open, and returns. It closes
// ln. The error is nil after a shutdown through ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	s.log.Info().Str("listen", ln.Addr().String()).Str("upstream", s.cfg.UpstreamAddr).Msg("accepting connections")

	var acceptErr error
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				acceptErr = fmt.Errorf("proxy: accept: %w", err)
			}
			break
		}
		s.start(ctx, conn)
	}
	s.drain()
	return acceptErr
}

func (s *Server) start(ctx context.Context, conn net.Conn) {
	id := s.nextID.Add(1)
	sess := newSession(s, id, conn)
	s.mu.Lock()
	full := s.cfg.MaxConnections > 0 && len(s.sessions) >= s.cfg.MaxConnections
	if !full {
		s.sessions[sess] = struct{}{}
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if full {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			sess.refuse(fatal(codeTooManyConnections, "too many connections to the proxy", "raise limits.max_connections or retry later"))
		}()
		return
	}
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}()
		sess.run(ctx)
	}()
}

// drain waits for sessions to end on their own, then closes the rest.
func (s *Server) drain() {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(s.cfg.ShutdownTimeout):
	}
	s.mu.Lock()
	n := len(s.sessions)
	for sess := range s.sessions {
		sess.abort()
	}
	s.mu.Unlock()
	s.log.Warn().Int("sessions", n).Msg("shutdown timeout reached; closing remaining sessions")
	<-done
}

// Sessions returns the number of sessions currently running.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
