package rewrite_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/fleproxy/fleproxy/internal/testcerts"
	"github.com/fleproxy/fleproxy/proxy"
)

// The red-team suite plants plaintext canaries in protected columns of a pagila-like schema and
// lets callers the policy does not clear try every path they have to read them. Every byte the
// proxy sends such a caller is recorded and searched for the canaries.

const redteamSchema = `
create table address (address_id int primary key, address text not null, phone text, postal_code text, district text);
create table customer (customer_id int primary key, first_name text not null, email text, address_id int references address);
create view customer_list as
	select cu.customer_id as id, cu.first_name || ' (' || cu.customer_id || ')' as name,
	       a.address, a.phone, a.postal_code as "zip code", cu.email
	from customer cu join address a on a.address_id = cu.address_id;
create function get_email(int) returns text language sql stable as 'select email from customer where customer_id = $1';
`

const redteamPolicy = `
version: 1
require_mtls_for_plaintext: true
columns:
  - {column: public.customer.email,      type: text, key: pii, storage: text}
  - {column: public.address.address,     type: text, key: pii, storage: text}
  - {column: public.address.phone,       type: text, key: pii, storage: text, mask: {keep_last: 4}}
  - {column: public.address.postal_code, type: text, key: pii, storage: text}
identities:
  - name: us-service
    match:
      roles: [us_service]
      cert_common_name: us-billing
      san_uri: ["spiffe://fle.test/us/*"]
      source: ["127.0.0.1/32"]
    clearance: {default: plaintext}
  - name: us-auditor
    match: {roles: [auditor]}
    clearance:
      default: ciphertext
      columns: {public.address.phone: mask, public.customer.email: "null", public.address.postal_code: deny}
    write: false
  - name: everyone-else
    clearance: {default: ciphertext}
`

// Canaries: plaintext planted in every protected column.
var canaries = []string{"CANARY-EMAIL-q7Zr", "CANARY-ADDR-w3Kx", "CANARY-PHONE-555-0199", "CANARY-ZIP-90210"}

// recorder keeps every byte a client read from the proxy.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

type recordingConn struct {
	net.Conn
	r *recorder
}

func (c recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r.mu.Lock()
	c.r.buf.Write(p[:n])
	c.r.mu.Unlock()
	return n, err
}

func (r *recorder) assertClean(t *testing.T, who string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buf.Len() == 0 {
		t.Fatalf("%s: nothing was recorded", who)
	}
	for _, c := range canaries {
		for _, form := range [][]byte{[]byte(c), []byte(strings.ToLower(c)), []byte(fmt.Sprintf("%x", c))} {
			if bytes.Contains(r.buf.Bytes(), form) {
				t.Errorf("%s received canary %q", who, c)
			}
		}
	}
}

// redteam is the fixture plus the client certificates.
type redteam struct {
	*fixture
	caFile            string
	goodCert, badCert tls.Certificate
}

func newRedteam(t *testing.T) *redteam {
	dir := t.TempDir()
	ca, err := testcerts.NewCA("fle.test US clients")
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := testcerts.NewCA("fle.test US clients") // same name, different key
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue(testcerts.Leaf{CommonName: "proxy", IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	spiffe, _ := url.Parse("spiffe://fle.test/us/billing")
	good, err := ca.Issue(testcerts.Leaf{CommonName: "us-billing", URIs: []*url.URL{spiffe}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := rogue.Issue(testcerts.Leaf{CommonName: "us-billing", URIs: []*url.URL{spiffe}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, redteamSchema, redteamPolicy, func(c *proxy.Config) {
		c.ClientTLS = &tls.Config{Certificates: []tls.Certificate{server.TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
	})
	ctx := ctxT(t)
	if _, err := f.admin.Exec(ctx, "grant execute on function get_email(int) to public; grant select on customer_list to public"); err != nil {
		t.Fatal(err)
	}
	rt := &redteam{fixture: f, caFile: caFile, goodCert: good.TLS, badCert: bad.TLS}
	// The cleared service plants the canaries through the proxy.
	us := rt.conn(t, usRole, usPassword, &rt.goodCert, "127.0.0.1", nil)
	if _, err := us.Exec(ctx, "insert into address values (1, $1, $2, $3, 'district')", canaries[1], canaries[2], canaries[3]); err != nil {
		t.Fatal(err)
	}
	if _, err := us.Exec(ctx, "insert into customer values (1, 'MARY', $1, 1)", canaries[0]); err != nil {
		t.Fatal(err)
	}
	f.assertNoPlaintextAtRest("customer", canaries...)
	f.assertNoPlaintextAtRest("address", canaries...)
	return rt
}

// conn connects through the proxy as role, with a client certificate (TLS) or without (plain
// TCP), from a chosen loopback source address, recording what it reads if rec is set.
func (rt *redteam) conn(t *testing.T, role, password string, cert *tls.Certificate, source string, rec *recorder, params ...string) *pgx.Conn {
	t.Helper()
	cs := rt.url(role, password, params...)
	if cert != nil {
		cs = strings.Replace(cs, "sslmode=disable", "sslmode=verify-full&sslrootcert="+url.QueryEscape(rt.caFile), 1)
	}
	cfg, err := pgx.ParseConfig(cs)
	if err != nil {
		t.Fatal(err)
	}
	if cert != nil {
		cfg.TLSConfig.Certificates = []tls.Certificate{*cert}
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil || rec == nil {
			return c, err
		}
		return recordingConn{Conn: c, r: rec}, nil
	}
	conn, err := pgx.ConnectConfig(ctxT(t), cfg)
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// attacks are the reads an uncleared caller tries; errors are fine, plaintext is not.
var attacks = []string{
	"select * from customer",
	"select email as e, first_name from customer",
	"select c.email from customer c",
	"table customer",
	"select * from customer natural join address",
	"select a.*, c.* from address a join customer c using (address_id)",
	"with x as (select email, address_id from customer) select * from x",
	"select * from (select email from customer) s",
	"select (select email from customer limit 1)",
	"select email from customer union all select phone from address",
	"select email from customer union select phone from address",
	"select email::text from customer",
	"select upper(email), md5(email), substr(email, 1, 20), length(email) from customer",
	"select row_to_json(c) from customer c",
	"select to_jsonb(a) from address a",
	"select string_agg(email, ',') from customer",
	"select * from customer_list",
	"select get_email(1)",
	"select email from customer where email is not null",
	"select count(email) from customer",
	"select pg_notify('leak', email) from customer",
	"update customer set first_name = first_name where customer_id = 1 returning email",
	"update customer set first_name = null where customer_id = 1",
	"select * from customer where email = 'CANARY-EMAIL-q7Zr'",
	"select 'x' where exists (select 1 from customer where email like 'CANARY%')",
	"explain (analyze, verbose) select email from customer",
	"copy customer to stdout",
	"copy (select email from customer) to stdout with (format csv)",
	"copy address (phone, postal_code) to stdout with (format binary)",
}

// runAttacks runs every attack in the simple and extended protocols, a cursor, a prepared
// statement in binary, and a FunctionCall, on conn.
func runAttacks(t *testing.T, conn *pgx.Conn) {
	ctx := ctxT(t)
	if _, err := conn.Exec(ctx, "listen leak"); err != nil {
		t.Fatal(err)
	}
	for _, sql := range attacks {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
			if strings.HasPrefix(sql, "copy ") {
				var buf bytes.Buffer
				_, _ = conn.PgConn().CopyTo(ctx, &buf, sql)
				continue
			}
			rows, err := conn.Query(ctx, sql, mode)
			if err == nil {
				for rows.Next() {
					_ = rows.RawValues()
				}
				rows.Close()
			}
		}
	}
	tx, err := conn.Begin(ctx)
	if err == nil {
		_, _ = tx.Exec(ctx, "declare c binary cursor for select email from customer")
		rows, err := tx.Query(ctx, "fetch all from c")
		if err == nil {
			for rows.Next() {
			}
			rows.Close()
		}
		_ = tx.Rollback(ctx)
	}
	var raw []byte
	_ = conn.QueryRow(ctx, "select email from customer where customer_id = $1", 1).Scan(&raw)
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, _ = conn.WaitForNotification(wctx)
	cancel()
	var oid uint32
	if err := conn.QueryRow(ctx, "select 'get_email(int)'::regprocedure::oid").Scan(&oid); err == nil {
		hj, err := conn.PgConn().Hijack()
		if err == nil {
			fe := hj.Frontend
			fe.Send(&pgproto3.FunctionCall{Function: oid, ArgFormatCodes: []uint16{1}, Arguments: [][]byte{binary.BigEndian.AppendUint32(nil, 1)}, ResultFormatCode: 0})
			_ = fe.Flush()
			_ = hj.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				m, err := fe.Receive()
				if err != nil {
					break
				}
				if _, ok := m.(*pgproto3.ReadyForQuery); ok {
					break
				}
			}
			hj.Conn.Close()
		}
	}
}

// TestRedTeamUnclearedCallers lets every kind of uncleared caller try every path; no canary
// byte may reach any of them.
func TestRedTeamUnclearedCallers(t *testing.T) {
	rt := newRedteam(t)
	ctx := ctxT(t)
	if _, err := rt.admin.Exec(ctx, "grant us_service to sg_operator"); err != nil {
		t.Fatal(err)
	}
	defer rt.admin.Exec(ctx, "revoke us_service from sg_operator")

	callers := []struct {
		name   string
		role   string
		pw     string
		cert   *tls.Certificate
		source string
		params []string
	}{
		{"sg_operator", sgRole, sgPassword, nil, "127.0.0.1", nil},
		{"sg_operator claiming us_service in application_name", sgRole, sgPassword, nil, "127.0.0.1", []string{"application_name", usRole}},
		{"sg_operator with role=us_service in startup options", sgRole, sgPassword, nil, "127.0.0.1", []string{"options", "-crole=us_service"}},
		{"us_service without a client certificate", usRole, usPassword, nil, "127.0.0.1", nil},
		{"us_service's certificate from another source address", usRole, usPassword, nil, "127.0.0.2", nil},
	}
	for _, c := range callers {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			conn := rt.conn(t, c.role, c.pw, c.cert, c.source, rec, c.params...)
			if c.role == sgRole {
				if _, err := conn.Exec(ctx, "set role us_service"); err != nil {
					t.Fatal(err)
				}
			}
			runAttacks(t, conn)
			rec.assertClean(t, c.name)
		})
	}
	t.Run("cleared certificate from the right CA, wrong source address", func(t *testing.T) {
		conn := rt.conn(t, usRole, usPassword, &rt.goodCert, "127.0.0.2", nil)
		var email string
		if err := conn.QueryRow(ctx, "select email from customer").Scan(&email); err != nil || email == canaries[0] {
			t.Fatalf("got %q, %v", email, err)
		}
	})
	t.Run("cleared names in a certificate from another CA", func(t *testing.T) {
		cs := strings.Replace(rt.url(usRole, usPassword), "sslmode=disable", "sslmode=verify-full&sslrootcert="+url.QueryEscape(rt.caFile), 1)
		cfg, _ := pgx.ParseConfig(cs)
		cfg.TLSConfig.Certificates = []tls.Certificate{rt.badCert}
		if _, err := pgx.ConnectConfig(ctx, cfg); err == nil {
			t.Fatal("a certificate from another CA was accepted")
		}
	})
	logs := rt.logs.String()
	for _, c := range canaries {
		if strings.Contains(logs, c) {
			t.Fatalf("canary %q in the proxy's logs", c)
		}
	}
}

// TestRedTeamClearedCaller is the converse: the cleared service sees plaintext through every
// supported path, and the audit log records it without values.
func TestRedTeamClearedCaller(t *testing.T) {
	rt := newRedteam(t)
	ctx := ctxT(t)
	us := rt.conn(t, usRole, usPassword, &rt.goodCert, "127.0.0.1", nil)
	reads := map[string]string{
		"select email from customer":                                                    canaries[0],
		"select email as e from customer c":                                             canaries[0],
		"select * from customer":                                                        canaries[0],
		"with x as (select email from customer) select email from x":                    canaries[0],
		"select s.email from (select email from customer) s":                            canaries[0],
		"update customer set first_name = 'MARY' where customer_id = 1 returning email": canaries[0],
		"select phone from address":                                                     canaries[2],
		"select a.address from address a join customer c using (address_id)":            canaries[1],
	}
	for sql, want := range reads {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
			rows, err := us.Query(ctx, sql, mode)
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			found := false
			for rows.Next() {
				for _, v := range rows.RawValues() {
					found = found || string(v) == want
				}
			}
			rows.Close()
			if rows.Err() != nil || !found {
				t.Errorf("%s (%v): plaintext not seen (%v)", sql, mode, rows.Err())
			}
		}
	}
	var buf bytes.Buffer
	if _, err := us.PgConn().CopyTo(ctx, &buf, "copy customer (email) to stdout"); err != nil || !strings.Contains(buf.String(), canaries[0]) {
		t.Errorf("COPY TO: %q %v", buf.String(), err)
	}
	audit := rt.logs.String()
	if !strings.Contains(audit, `"event":"plaintext"`) || !strings.Contains(audit, "public.customer.email") || !strings.Contains(audit, `"identity":"identity \"us-service\"`) {
		t.Errorf("audit log lacks the plaintext records:\n%s", audit)
	}
	for _, c := range canaries {
		if strings.Contains(audit, c) {
			t.Fatalf("canary %q in the audit log", c)
		}
	}
}

// TestMaskNullDeny checks the other clearances: a mask keeps the last characters, null hides
// the value, deny refuses the read.
func TestMaskNullDeny(t *testing.T) {
	rt := newRedteam(t)
	ctx := ctxT(t)
	// require_mtls_for_plaintext covers masks too: the auditor connects with a certificate.
	auditor := rt.conn(t, auditorRole, auditorPassword, &rt.goodCert, "127.0.0.1", nil)
	if got := rt.conn(t, auditorRole, auditorPassword, nil, "127.0.0.1", nil); true {
		var phone string
		if err := got.QueryRow(ctx, "select phone from address").Scan(&phone); err != nil || !strings.HasPrefix(phone, "fle1:") {
			t.Fatalf("mask without mTLS: want ciphertext, got %q %v", phone, err)
		}
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		var phone string
		var email *string
		if err := auditor.QueryRow(ctx, "select a.phone, c.email from address a join customer c using (address_id)", mode).Scan(&phone, &email); err != nil {
			t.Fatal(err)
		}
		if phone != strings.Repeat("*", len(canaries[2])-4)+canaries[2][len(canaries[2])-4:] || email != nil {
			t.Fatalf("%v: phone %q email %v", mode, phone, email)
		}
		var zip string
		err := auditor.QueryRow(ctx, "select postal_code from address", mode).Scan(&zip)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "public.address.postal_code") {
			t.Fatalf("%v: deny: got %q %v", mode, zip, err)
		}
	}
	var buf bytes.Buffer
	_, err := auditor.PgConn().CopyTo(ctx, &buf, "copy address (postal_code) to stdout")
	if err == nil || strings.Contains(buf.String(), canaries[3]) {
		t.Fatalf("COPY of a denied column: %q %v", buf.String(), err)
	}
	// COPY (query) cannot be attributed: refused for an identity with null, mask or deny.
	buf.Reset()
	if _, err := auditor.PgConn().CopyTo(ctx, &buf, "copy (select postal_code, phone from address) to stdout"); err == nil || strings.Contains(buf.String(), "fle1:") {
		t.Fatalf("COPY (query) with restricted columns: %q %v", buf.String(), err)
	}
	// Without a certificate the mask becomes ciphertext, but null and deny still hold, also in
	// the extended protocol where the client does not describe the portal.
	plain := rt.conn(t, auditorRole, auditorPassword, nil, "127.0.0.1", nil)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		var email *string
		if err := plain.QueryRow(ctx, "select email from customer where customer_id = 1", mode).Scan(&email); err != nil || email != nil {
			t.Fatalf("%v: null clearance without decryption rights: %v %v", mode, email, err)
		}
		var zip string
		err := plain.QueryRow(ctx, "select postal_code from address", mode).Scan(&zip)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Fatalf("%v: deny without decryption rights: %q %v", mode, zip, err)
		}
	}
	// write: false covers erasing values too.
	for _, sql := range []string{
		"update address set phone = null where address_id = 1",
		"update address set phone = default where address_id = 1",
		"insert into address (address_id, address) values (1, 'x') on conflict (address_id) do update set phone = excluded.phone",
	} {
		_, err := auditor.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s by a write: false identity: want 42501, got %v", sql, err)
		}
	}
}

// TestAuditRecordsResultsEndingInErrors reads plaintext with a statement that fails after the
// first rows: what was sent must be on the audit record all the same.
func TestAuditRecordsResultsEndingInErrors(t *testing.T) {
	rt := newRedteam(t)
	ctx := ctxT(t)
	us := rt.conn(t, usRole, usPassword, &rt.goodCert, "127.0.0.1", nil)
	if _, err := us.Exec(ctx, "insert into customer values (2, 'B', 'second@example.com', 1)"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		before := strings.Count(rt.logs.String(), `"event":"plaintext"`)
		rows, err := us.Query(ctx, "select email, 1 / (2 - customer_id) from customer", mode)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		if err == nil {
			t.Fatal("the statement did not fail")
		}
		if after := strings.Count(rt.logs.String(), `"event":"plaintext"`); after != before+1 {
			t.Fatalf("%v: %d plaintext audit records for a result that ended in an error, want 1", mode, after-before)
		}
	}
}
