package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// rawResult is a query result as bytes on the wire, so that direct and proxied runs compare
// exactly, including binary formats.
type rawResult struct {
	Fields []string
	Rows   [][][]byte
	Tag    string
	Err    string
}

func rawQuery(ctx context.Context, conn *pgx.Conn, sql string, args ...any) rawResult {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return rawResult{Err: errString(err)}
	}
	defer rows.Close()
	var r rawResult
	for _, fd := range rows.FieldDescriptions() {
		r.Fields = append(r.Fields, fmt.Sprintf("%s:%d:%d", fd.Name, fd.DataTypeOID, fd.Format))
	}
	for rows.Next() {
		var row [][]byte
		for _, v := range rows.RawValues() {
			row = append(row, bytes.Clone(v))
		}
		r.Rows = append(r.Rows, row)
	}
	if err := rows.Err(); err != nil {
		r.Err = errString(err)
	}
	r.Tag = rows.CommandTag().String()
	return r
}

// errString keeps what a client sees of an error, without connection-specific details.
func errString(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Severity + " " + pe.Code + " " + pe.Message
	}
	return err.Error()
}

const typesQuery = `select 1::int2, 2::int4, 3::int8, 1.5::float4, 2.25::float8, 12345.6789::numeric,
	true, 'text'::text, 'vc'::varchar, 'c'::char(3), '\x00ff'::bytea, '2024-02-29'::date,
	'2024-02-29 12:34:56.789'::timestamp, '2024-02-29 12:34:56.789+02'::timestamptz,
	'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '{"a": [1, 2]}'::jsonb, '{"b":1}'::json,
	'{1,2,3}'::int4[], '1 day 2 hours'::interval, null::text`

// TestPgxProtocols runs the same queries through every pgx execution mode, directly and through
// the proxy, and compares the bytes returned (text formats in simple mode, binary in the others).
func TestPgxProtocols(t *testing.T) {
	h := startProxy(t, nil)
	modes := []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol,
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			compare(t, h, func(t *testing.T, addr string) []rawResult {
				conn := connect(t, connString(addr, "trust_user", "", "app", "default_query_exec_mode", modeParam(mode), "timezone", "UTC"))
				ctx := ctxT(t)
				return []rawResult{
					rawQuery(ctx, conn, typesQuery),
					rawQuery(ctx, conn, "select $1::int4 + 1, $2::text, $3::bytea, $4::timestamptz", 41, "héllo", []byte{0, 1, 2}, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)),
					rawQuery(ctx, conn, "select generate_series(1, 1000) as n, repeat('x', 100)"),
					rawQuery(ctx, conn, "select 1/0"),
					rawQuery(ctx, conn, "select nosuchcolumn"),
				}
			})
		})
	}
}

func modeParam(m pgx.QueryExecMode) string {
	switch m {
	case pgx.QueryExecModeCacheStatement:
		return "cache_statement"
	case pgx.QueryExecModeCacheDescribe:
		return "cache_describe"
	case pgx.QueryExecModeDescribeExec:
		return "describe_exec"
	case pgx.QueryExecModeExec:
		return "exec"
	default:
		return "simple_protocol"
	}
}

// TestPgxBatchWithErrorInTheMiddle pipelines a batch whose second statement fails: the server
// discards the rest until Sync, and the connection must stay usable afterwards.
func TestPgxBatchWithErrorInTheMiddle(t *testing.T) {
	h := startProxy(t, nil)
	compare(t, h, func(t *testing.T, addr string) []string {
		conn := appConn(t, addr)
		ctx := ctxT(t)
		b := &pgx.Batch{}
		b.Queue("select 1")
		b.Queue("select 1/0")
		b.Queue("select 3")
		br := conn.SendBatch(ctx, b)
		var out []string
		for range 3 {
			var n int
			err := br.QueryRow().Scan(&n)
			if err != nil {
				out = append(out, errString(err))
			} else {
				out = append(out, fmt.Sprint(n))
			}
		}
		out = append(out, fmt.Sprint(br.Close() != nil))
		var after int
		if err := conn.QueryRow(ctx, "select 42").Scan(&after); err != nil {
			t.Fatalf("connection unusable after the failed batch: %v", err)
		}
		return append(out, fmt.Sprint(after))
	})
}

// TestPgxPipelineModes sends many statements in one round trip in several pipeline shapes.
func TestPgxPipeline(t *testing.T) {
	h := startProxy(t, nil)
	compare(t, h, func(t *testing.T, addr string) []string {
		conn := appConn(t, addr)
		ctx := ctxT(t)
		pc := conn.PgConn()
		p := pc.StartPipeline(ctx)
		p.SendPrepare("s1", "select $1::int * 2", nil)
		p.SendQueryPrepared("s1", [][]byte{[]byte("21")}, nil, nil)
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		p.SendQueryParams("select 'a' || $1", [][]byte{[]byte("b")}, nil, nil, nil)
		if err := p.Sync(); err != nil {
			t.Fatal(err)
		}
		var out []string
		for {
			res, err := p.GetResults()
			if err != nil {
				out = append(out, errString(err))
				break
			}
			if res == nil {
				break
			}
			switch r := res.(type) {
			case *pgconn.StatementDescription:
				out = append(out, "described "+r.Name)
			case *pgconn.ResultReader:
				rr := r.Read()
				for _, row := range rr.Rows {
					out = append(out, string(row[0]))
				}
			case *pgconn.PipelineSync:
				out = append(out, "sync")
			}
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		return out
	})
}

func TestPgxCopyFromAndTo(t *testing.T) {
	h := startProxy(t, nil)
	compare(t, h, func(t *testing.T, addr string) []string {
		conn := appConn(t, addr)
		ctx := ctxT(t)
		table := uniqueName(t)
		if _, err := conn.Exec(ctx, "create table "+table+" (id int, name text, at timestamptz, data bytea)"); err != nil {
			t.Fatal(err)
		}
		var rows [][]any
		for i := range 5000 {
			rows = append(rows, []any{i, fmt.Sprintf("name %d ☃", i), time.Unix(int64(i)*3600, 0).UTC(), []byte{byte(i), 0, 255}})
		}
		n, err := conn.CopyFrom(ctx, pgx.Identifier{table}, []string{"id", "name", "at", "data"}, pgx.CopyFromRows(rows))
		if err != nil {
			t.Fatalf("CopyFrom: %v", err)
		}
		var buf bytes.Buffer
		tag, err := conn.PgConn().CopyTo(ctx, &buf, "copy (select * from "+table+" order by id) to stdout with (format csv)")
		if err != nil {
			t.Fatalf("CopyTo: %v", err)
		}
		// A COPY FROM STDIN that the client aborts with CopyFail must leave nothing behind.
		_, err = conn.PgConn().CopyFrom(ctx, &failingReader{data: "1\tx\n"}, "copy "+table+" (id, name) from stdin")
		sum := sha256.Sum256(buf.Bytes())
		var count int
		if err := conn.QueryRow(ctx, "select count(*) from "+table).Scan(&count); err != nil {
			t.Fatal(err)
		}
		return []string{fmt.Sprint(n), tag.String(), fmt.Sprintf("%x", sum), errString(err), fmt.Sprint(count)}
	})
}

// failingReader yields some COPY data and then an error, which makes pgconn send CopyFail.
type failingReader struct {
	data string
	done bool
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, errors.New("client gave up")
	}
	r.done = true
	return copy(p, r.data), nil
}

func TestPgxListenNotifyNoticeAndParameterStatus(t *testing.T) {
	h := startProxy(t, nil)
	var notices []string
	listenerCfg, err := pgx.ParseConfig(connString(h.addr, "app", "app-secret", "app"))
	if err != nil {
		t.Fatal(err)
	}
	listenerCfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	ctx := ctxT(t)
	listener, err := pgx.ConnectConfig(ctx, listenerCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	sender := appConn(t, h.addr)

	if _, err := listener.Exec(ctx, "listen fle_channel"); err != nil {
		t.Fatal(err)
	}
	if _, err := sender.Exec(ctx, "select pg_notify('fle_channel', 'hello through the proxy')"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("WaitForNotification: %v", err)
	}
	if n.Channel != "fle_channel" || n.Payload != "hello through the proxy" {
		t.Fatalf("notification %+v", n)
	}

	if _, err := listener.Exec(ctx, "do $$ begin raise notice 'a notice for you'; end $$"); err != nil {
		t.Fatal(err)
	}
	if len(notices) != 1 || notices[0] != "a notice for you" {
		t.Fatalf("notices %q", notices)
	}

	if _, err := listener.Exec(ctx, "set application_name = 'renamed'"); err != nil {
		t.Fatal(err)
	}
	if got := listener.PgConn().ParameterStatus("application_name"); got != "renamed" {
		t.Fatalf("ParameterStatus application_name = %q", got)
	}
}

// TestPgxLargeBytea round-trips a 50 MB bytea value in the binary format through the proxy.
func TestPgxLargeBytea(t *testing.T) {
	h := startProxy(t, nil)
	conn := appConn(t, h.addr)
	ctx := ctxT(t)
	table := uniqueName(t)
	if _, err := conn.Exec(ctx, "create table "+table+" (data bytea)"); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 50<<20)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "insert into "+table+" values ($1)", blob); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var got []byte
	if err := conn.QueryRow(ctx, "select data from "+table).Scan(&got); err != nil {
		t.Fatalf("select: %v", err)
	}
	if !bytes.Equal(got, blob) {
		t.Fatalf("50 MB bytea came back different (%d bytes)", len(got))
	}
	// The text format doubles it; the simple protocol sends it in one Query message.
	var hexLen int
	if err := conn.QueryRow(ctx, "select length(data::text) from "+table, pgx.QueryExecModeSimpleProtocol).Scan(&hexLen); err != nil {
		t.Fatal(err)
	}
	if hexLen != 2+2*len(blob) {
		t.Fatalf("hex length %d", hexLen)
	}
}

// TestCancelRequest cancels a long pg_sleep through the proxy and checks it returns promptly and
// that the connection stays usable; a CancelRequest with a wrong key must cancel nothing.
func TestCancelRequest(t *testing.T) {
	h := startProxy(t, nil)
	conn := appConn(t, h.addr)
	ctx := ctxT(t)

	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "select pg_sleep(30)")
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := conn.PgConn().CancelRequest(ctx); err != nil {
		t.Fatalf("CancelRequest: %v", err)
	}
	err := <-errc
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" {
		t.Fatalf("want query_canceled 57014, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	var n int
	if err := conn.QueryRow(ctx, "select 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("connection after cancel: %v", err)
	}
	if strings.Contains(h.logs.String(), "could not forward") {
		t.Fatalf("log reports a failed cancel:\n%s", h.logs.String())
	}
}
