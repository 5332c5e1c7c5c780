package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/fleproxy/fleproxy/internal/pgtest"
	"github.com/fleproxy/fleproxy/proxy/wire"
)

// rawClient is a hand-driven protocol client for what drivers never send.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	fe   *pgproto3.Frontend
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, fe: pgproto3.NewFrontend(conn, conn)}
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// startup sends a StartupMessage for trust_user and reads up to ReadyForQuery.
func (c *rawClient) startup(protocol uint32, extra ...string) []pgproto3.BackendMessage {
	c.t.Helper()
	names := []string{"user", "database"}
	values := map[string]string{"user": "trust_user", "database": pgtest.AppDatabase}
	for i := 0; i+1 < len(extra); i += 2 {
		names = append(names, extra[i])
		values[extra[i]] = extra[i+1]
	}
	pkt := wire.AppendStartupMessage(nil, names, values)
	binary.BigEndian.PutUint32(pkt[4:], protocol)
	c.write(pkt)
	return c.readUntil('Z')
}

// readUntil reads messages until one of type typ (or an error response, or EOF).
func (c *rawClient) readUntil(typ byte) []pgproto3.BackendMessage {
	c.t.Helper()
	var msgs []pgproto3.BackendMessage
	for {
		m, err := c.fe.Receive()
		if err != nil {
			msgs = append(msgs, nil)
			return msgs
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			cp := *m
			msgs = append(msgs, &cp)
			if typ != 'E' && m.Severity == "FATAL" {
				return msgs
			}
			if typ == 'E' {
				return msgs
			}
		case *pgproto3.ReadyForQuery:
			msgs = append(msgs, &pgproto3.ReadyForQuery{TxStatus: m.TxStatus})
			if typ == 'Z' {
				return msgs
			}
		case *pgproto3.NegotiateProtocolVersion:
			cp := *m
			cp.UnrecognizedOptions = append([]string(nil), m.UnrecognizedOptions...)
			msgs = append(msgs, &cp)
		default:
			msgs = append(msgs, m)
		}
	}
}

// lastError returns the last ErrorResponse among msgs.
func lastError(msgs []pgproto3.BackendMessage) *pgproto3.ErrorResponse {
	for i := len(msgs) - 1; i >= 0; i-- {
		if e, ok := msgs[i].(*pgproto3.ErrorResponse); ok {
			return e
		}
	}
	return nil
}

// expectFatal reads until the proxy's FATAL error and the connection's end.
func (c *rawClient) expectFatal(code string) *pgproto3.ErrorResponse {
	c.t.Helper()
	msgs := c.readUntil('E')
	e := lastError(msgs)
	if e == nil || e.Severity != "FATAL" || e.Code != code {
		c.t.Fatalf("want FATAL %s, got %#v", code, msgs)
	}
	if _, err := c.fe.Receive(); err == nil {
		c.t.Fatal("connection still open after FATAL")
	}
	return e
}

func TestGSSENCRequestFirst(t *testing.T) {
	h := startProxy(t, nil)
	c := dialRaw(t, h.addr)
	c.write(wire.AppendRequest(nil, wire.GSSENCRequestCode))
	var b [1]byte
	if _, err := io.ReadFull(c.conn, b[:]); err != nil || b[0] != 'N' {
		t.Fatalf("GSSENCRequest answer %q, %v", b, err)
	}
	// Then SSLRequest on a proxy without client TLS: 'N' again, then a plain start-up.
	c.write(wire.AppendRequest(nil, wire.SSLRequestCode))
	if _, err := io.ReadFull(c.conn, b[:]); err != nil || b[0] != 'N' {
		t.Fatalf("SSLRequest answer %q, %v", b, err)
	}
	msgs := c.startup(wire.ProtocolVersion30)
	if _, ok := msgs[len(msgs)-1].(*pgproto3.ReadyForQuery); !ok {
		t.Fatalf("start-up after GSSENCRequest: %#v", msgs)
	}
}

// TestNegotiateProtocolVersion starts with protocol 3.2 and a _pq_ option, as newer libpq does.
func TestNegotiateProtocolVersion(t *testing.T) {
	h := startProxy(t, nil)
	c := dialRaw(t, h.addr)
	msgs := c.startup(3<<16|2, "_pq_.test_option", "on")
	npv, ok := msgs[0].(*pgproto3.NegotiateProtocolVersion)
	if !ok {
		t.Fatalf("first message %#v, want NegotiateProtocolVersion", msgs[0])
	}
	if npv.NewestMinorProtocol != 3<<16 && npv.NewestMinorProtocol != 0 {
		t.Fatalf("newest minor version %#x", npv.NewestMinorProtocol)
	}
	if len(npv.UnrecognizedOptions) != 1 || npv.UnrecognizedOptions[0] != "_pq_.test_option" {
		t.Fatalf("unrecognized options %q", npv.UnrecognizedOptions)
	}
	if _, ok := msgs[len(msgs)-1].(*pgproto3.ReadyForQuery); !ok {
		t.Fatalf("start-up did not finish: %#v", msgs)
	}
	// Protocol 4.0 is refused.
	c = dialRaw(t, h.addr)
	pkt := wire.AppendStartupMessage(nil, []string{"user"}, map[string]string{"user": "trust_user"})
	binary.BigEndian.PutUint32(pkt[4:], 4<<16)
	c.write(pkt)
	c.expectFatal("0A000")
}

func TestMalformedAndOversizedMessages(t *testing.T) {
	h := startProxy(t, func(c *Config) { c.MaxMessageBytes = 64 << 10 })
	t.Run("length below four", func(t *testing.T) {
		c := dialRaw(t, h.addr)
		c.startup(wire.ProtocolVersion30)
		c.write([]byte{'Q', 0, 0, 0, 2})
		c.expectFatal("08P01")
	})
	t.Run("oversized", func(t *testing.T) {
		c := dialRaw(t, h.addr)
		c.startup(wire.ProtocolVersion30)
		c.write([]byte{'Q', 0, 0x10, 0, 0})
		e := c.expectFatal("08P01")
		if !strings.Contains(e.Message, "exceeds the limit of 65536 bytes") {
			t.Fatalf("message %q", e.Message)
		}
	})
	t.Run("garbage start-up packet", func(t *testing.T) {
		c := dialRaw(t, h.addr)
		c.write([]byte{0, 0, 0, 5, 0, 3, 0, 0})
		c.expectFatal("08P01")
	})
	t.Run("huge start-up packet", func(t *testing.T) {
		c := dialRaw(t, h.addr)
		c.write([]byte{0x7f, 0, 0, 0, 0, 3, 0, 0})
		c.expectFatal("08P01")
	})
	t.Run("no user", func(t *testing.T) {
		c := dialRaw(t, h.addr)
		c.write(wire.AppendStartupMessage(nil, []string{"database"}, map[string]string{"database": "app"}))
		c.expectFatal("28000")
	})
	t.Run("replication refused", func(t *testing.T) {
		c := dialRaw(t, h.addr)
		c.write(wire.AppendStartupMessage(nil, []string{"user", "replication"}, map[string]string{"user": "trust_user", "replication": "database"}))
		c.expectFatal("0A000")
	})
	t.Run("a password message where none was asked", func(t *testing.T) {
		c := dialRaw(t, h.addr)
		c.startup(wire.ProtocolVersion30)
		// Unknown message types are the server's to reject; the proxy forwards them and the
		// server answers with its own FATAL protocol violation.
		c.write([]byte{'!', 0, 0, 0, 4})
		c.expectFatal("08P01")
	})
	// After all that the proxy still serves.
	conn := appConn(t, h.addr)
	if err := conn.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()
	h := startProxy(t, func(c *Config) { c.UpstreamAddr = deadAddr })
	_, err = pgx.Connect(ctxT(t), connString(h.addr, "app", "app-secret", "app"))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "08006" || !strings.Contains(pe.Message, deadAddr) {
		t.Fatalf("want 08006 naming %s, got %v", deadAddr, err)
	}
}

// TestUpstreamLostMidSession terminates the backend under a session: the client gets a clear
// error and the proxy lets go of the session.
func TestUpstreamLostMidSession(t *testing.T) {
	h := startProxy(t, nil)
	conn := appConn(t, h.addr)
	admin := connect(t, connString(cluster.Addr(), "postgres", "", "postgres"))
	var pid int
	if err := conn.QueryRow(ctxT(t), "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctxT(t), "select pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(ctxT(t), "select 1")
	if err == nil {
		t.Fatal("query on a terminated backend succeeded")
	}
	waitFor(t, 5*time.Second, "the session to end", func() bool { return h.srv.Sessions() == 0 })
}

// TestPanicIsContained makes one session panic: its client gets XX000, another session carries
// on, and the proxy keeps accepting.
func TestPanicIsContained(t *testing.T) {
	h := startProxy(t, func(c *Config) { c.testPanicUser = "md5_user" })
	bystander := appConn(t, h.addr)
	// The panic comes right after ReadyForQuery, so the connection opens and its first query
	// meets the FATAL error.
	victim := connect(t, connString(h.addr, "md5_user", "md5-secret", "app"))
	_, err := victim.Exec(ctxT(t), "select 1")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "XX000" {
		t.Fatalf("want XX000 from the panicking session, got %v", err)
	}
	if err := bystander.Ping(ctxT(t)); err != nil {
		t.Fatalf("bystander session: %v", err)
	}
	if !strings.Contains(h.logs.String(), "session panicked") {
		t.Fatal("panic not logged")
	}
	connect(t, connString(h.addr, "trust_user", "", "app")).Close(context.Background())
}

// backendsFor counts the server's backends with an application_name.
func backendsFor(t *testing.T, admin *pgx.Conn, app string) int {
	var n int
	if err := admin.QueryRow(ctxT(t), "select count(*) from pg_stat_activity where application_name = $1", app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClientVanishes drops clients mid-query and mid-COPY: their upstream backends must go, the
// half-sent COPY must leave no row behind, and no goroutine may linger.
func TestClientVanishes(t *testing.T) {
	h := startProxy(t, nil)
	admin := connect(t, connString(cluster.Addr(), "postgres", "", "app"))
	table := uniqueName(t)
	if _, err := admin.Exec(ctxT(t), "create table "+table+" (id int, note text); grant all on "+table+" to app"); err != nil {
		t.Fatal(err)
	}
	baseline := runtime.NumGoroutine()

	// Mid-query.
	conn := connect(t, connString(h.addr, "app", "app-secret", "app", "application_name", "vanish_query"))
	go func() { _, _ = conn.Exec(context.Background(), "select pg_sleep(5)") }()
	waitFor(t, 5*time.Second, "the query to start", func() bool { return backendsFor(t, admin, "vanish_query") == 1 })
	_ = conn.PgConn().Conn().Close()

	// Mid-COPY: send CopyData rows and then just close the socket.
	conn2 := connect(t, connString(h.addr, "app", "app-secret", "app", "application_name", "vanish_copy"))
	pr, pw := io.Pipe()
	copyDone := make(chan struct{})
	copyCtx, stopCopy := context.WithCancel(context.Background())
	defer stopCopy()
	go func() {
		defer close(copyDone)
		_, _ = conn2.PgConn().CopyFrom(copyCtx, pr, "copy "+table+" from stdin")
	}()
	w := bufio.NewWriter(pw)
	for i := range 1000 {
		_, _ = w.WriteString(strings.Repeat("x", 10) + "\n")
		_ = i
	}
	_ = w.Flush()
	waitFor(t, 5*time.Second, "the COPY to start", func() bool { return backendsFor(t, admin, "vanish_copy") == 1 })
	_ = conn2.PgConn().Conn().Close()
	pw.Close()
	stopCopy()
	select { // the connection's cleanup must not race the COPY
	case <-copyDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the client's COPY did not end after its connection was closed")
	}

	waitFor(t, 10*time.Second, "the upstream backends to go", func() bool {
		return backendsFor(t, admin, "vanish_query")+backendsFor(t, admin, "vanish_copy") == 0
	})
	waitFor(t, 5*time.Second, "the sessions to end", func() bool { return h.srv.Sessions() == 0 })
	var rows int
	if err := admin.QueryRow(ctxT(t), "select count(*) from "+table).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("half-sent COPY left %d rows (%v)", rows, err)
	}
	waitFor(t, 5*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= baseline+2 })
}

// TestCancelRequestWrongKey sends a CancelRequest with the right process ID and a wrong secret:
// it must cancel nothing.
func TestCancelRequestWrongKey(t *testing.T) {
	h := startProxy(t, nil)
	conn := appConn(t, h.addr)
	ctx := ctxT(t)
	pid := conn.PgConn().PID()
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "select pg_sleep(1.5)")
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	c := dialRaw(t, h.addr)
	c.write(wire.AppendCancelRequest(nil, pid, []byte{1, 2, 3, 4}))
	_, _ = io.Copy(io.Discard, c.conn)
	if err := <-errc; err != nil {
		t.Fatalf("query was disturbed by a wrong-key cancel: %v", err)
	}
}

// TestFunctionCall uses the FunctionCall sub-protocol (§55.2.6), which no common driver sends.
func TestFunctionCall(t *testing.T) {
	h := startProxy(t, nil)
	call := func(addr string) string {
		c := dialRaw(t, addr)
		c.startup(wire.ProtocolVersion30)
		// int4pl(int4, int4), OID 177, with binary arguments and result.
		arg := func(n int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }
		c.fe.Send(&pgproto3.FunctionCall{Function: 177, ArgFormatCodes: []uint16{1}, Arguments: [][]byte{arg(40), arg(2)}, ResultFormatCode: 1})
		if err := c.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		msgs := c.readUntil('Z')
		for _, m := range msgs {
			if r, ok := m.(*pgproto3.FunctionCallResponse); ok {
				return string(rune(binary.BigEndian.Uint32(r.Result)))
			}
		}
		t.Fatalf("no FunctionCallResponse: %#v", msgs)
		return ""
	}
	if got := call(h.addr); got != call(cluster.Addr()) || got != string(rune(42)) {
		t.Fatalf("FunctionCall through the proxy returned %q", got)
	}
}

func TestMaxConnections(t *testing.T) {
	h := startProxy(t, func(c *Config) { c.MaxConnections = 1 })
	first := appConn(t, h.addr)
	_, err := pgx.Connect(ctxT(t), connString(h.addr, "app", "app-secret", "app"))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" {
		t.Fatalf("second connection: want 53300, got %v", err)
	}
	if err := first.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}
