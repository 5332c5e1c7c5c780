package rewrite_test

import (
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestMalformedMessagesWithEncryption sends truncated Parse, Bind, Describe and Execute bodies
// for a protected statement: the server or the proxy refuses them, no plaintext is stored, and the
// proxy stays up.
func TestMalformedMessagesWithEncryption(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	us := f.us()
	ctx := ctxT(t)
	if _, err := us.Prepare(ctx, "ins", "insert into people (id, email) values ($1, $2)"); err != nil {
		t.Fatal(err)
	}
	hj, err := us.PgConn().Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Conn.Close()
	_ = hj.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	raw := func(typ byte, body []byte) []byte {
		n := len(body) + 4
		return append([]byte{typ, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
	}
	var msgs []byte
	msgs = append(msgs, raw('B', []byte("\x00ins\x00\x00\x01\x00\x02\x00\x00\x00\x01"))...) // parameters cut short
	msgs = append(msgs, raw('P', []byte("noterminator"))...)
	msgs = append(msgs, raw('D', nil)...)
	msgs = append(msgs, raw('E', []byte("x"))...)
	msgs = append(msgs, raw('S', nil)...)
	if _, err := hj.Conn.Write(msgs); err != nil {
		t.Fatal(err)
	}
	fe := pgproto3.NewFrontend(hj.Conn, hj.Conn)
	sawError := false
	for {
		m, err := fe.Receive()
		if err != nil {
			break // the server may end the session on a malformed message
		}
		if _, ok := m.(*pgproto3.ErrorResponse); ok {
			sawError = true
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if !sawError {
		t.Fatal("malformed messages were not refused")
	}
	// The proxy still serves new sessions.
	c, err := net.DialTimeout("tcp", f.proxy, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	var n int
	if err := f.us().QueryRow(ctx, "select count(*) from people").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows: %d %v", n, err)
	}
}
