package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var pg *Cluster

// orphanEnv makes the test binary act as TestOrphanedServerDies's helper
// instead of running tests.
const orphanEnv = "PGTEST_ORPHAN_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(orphanEnv) != "" {
		orphanHelper()
	}
	Main(m, &pg)
}

// orphanHelper starts a cluster, reports its postmaster's pid and Dir, and
// waits to be killed.
func orphanHelper() {
	c, err := Start(context.Background(), Options{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("%d %s\n", c.srv.cmd.Process.Pid, c.Dir)
	select {}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, ctx context.Context, connString string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatalf("connect %s: %v", connString, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, ctx context.Context, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestEveryRoleLogsIn(t *testing.T) {
	ctx := testContext(t)
	for _, tc := range []struct{ user, password string }{
		{SuperUser, ""},
		{TrustUser, ""},
		{PasswordUser, PasswordUserPassword},
		{MD5User, MD5UserPassword},
		{SCRAMUser, SCRAMUserPassword},
		{AppUser, AppPassword},
	} {
		t.Run(tc.user, func(t *testing.T) {
			conn := connect(t, ctx, pg.ConnString(tc.user, tc.password, AppDatabase))
			if got := queryString(t, ctx, conn, "SELECT current_user"); got != tc.user {
				t.Fatalf("current_user = %q", got)
			}
			table := pgx.Identifier{"t_" + tc.user}.Sanitize()
			if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (id int)"); err != nil {
				t.Fatalf("%s cannot create a table: %v", tc.user, err)
			}
			if _, err := conn.Exec(ctx, "DROP TABLE "+table); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWrongPasswordFails(t *testing.T) {
	ctx := testContext(t)
	for _, user := range []string{PasswordUser, MD5User, SCRAMUser, AppUser} {
		t.Run(user, func(t *testing.T) {
			conn, err := pgx.Connect(ctx, pg.ConnString(user, "wrong", AppDatabase))
			if err == nil {
				conn.Close(ctx)
				t.Fatal("connected with a wrong password")
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
				t.Fatalf("want invalid_password (28P01), got %v", err)
			}
		})
	}
}

// TestAuthConfiguration checks that each role's stored password and hba
// method are what the proxy's auth-relay tests assume.
func TestAuthConfiguration(t *testing.T) {
	ctx := testContext(t)
	conn := connect(t, ctx, pg.ConnString(SuperUser, "", "postgres"))

	for user, prefix := range map[string]string{
		PasswordUser: "SCRAM-SHA-256$",
		MD5User:      "md5",
		SCRAMUser:    "SCRAM-SHA-256$",
		AppUser:      "SCRAM-SHA-256$",
	} {
		stored := queryString(t, ctx, conn, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", user)
		if !strings.HasPrefix(stored, prefix) {
			t.Errorf("%s: stored password %.16q..., want prefix %q", user, stored, prefix)
		}
	}

	rows, err := conn.Query(ctx, `SELECT type, user_name[1], coalesce(address, ''), auth_method, coalesce(error, '')
		FROM pg_hba_file_rules ORDER BY line_number`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var typ, user, addr, method, hbaErr string
		if err := rows.Scan(&typ, &user, &addr, &method, &hbaErr); err != nil {
			t.Fatal(err)
		}
		if hbaErr != "" {
			t.Errorf("pg_hba.conf error: %s", hbaErr)
		}
		got = append(got, strings.Join([]string{typ, user, addr, method}, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"local postgres  trust",
		"host postgres 127.0.0.1 trust",
		"host trust_user 127.0.0.1 trust",
		"host password_user 127.0.0.1 password",
		"host md5_user 127.0.0.1 md5",
		"host scram_user 127.0.0.1 scram-sha-256",
		"host app 127.0.0.1 scram-sha-256",
		"host all 127.0.0.1 scram-sha-256",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("pg_hba rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	owner := queryString(t, ctx, conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", AppDatabase)
	if owner != AppUser {
		t.Errorf("owner of %s = %s", AppDatabase, owner)
	}
}

func TestTLS(t *testing.T) {
	ctx := testContext(t)
	tlsURL := func(host, query string) string {
		u := url.URL{
			Scheme:   "postgres",
			User:     url.UserPassword(SCRAMUser, SCRAMUserPassword),
			Host:     net.JoinHostPort(host, strconv.Itoa(pg.Port)),
			Path:     "/" + AppDatabase,
			RawQuery: query,
		}
		return u.String()
	}
	sslInUse := func(t *testing.T, conn *pgx.Conn) bool {
		t.Helper()
		var ssl bool
		if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
			t.Fatal(err)
		}
		return ssl
	}
	verifyFull := "sslmode=verify-full&sslrootcert=" + url.QueryEscape(pg.CAFile)

	for _, host := range []string{"localhost", "127.0.0.1"} {
		t.Run("verify-full/"+host, func(t *testing.T) {
			conn := connect(t, ctx, tlsURL(host, verifyFull))
			if !sslInUse(t, conn) {
				t.Fatal("connection is not encrypted")
			}
		})
	}
	t.Run("disable", func(t *testing.T) {
		if sslInUse(t, connect(t, ctx, pg.ConnString(SCRAMUser, SCRAMUserPassword, AppDatabase))) {
			t.Fatal("sslmode=disable connection is encrypted")
		}
	})
	t.Run("untrusted CA", func(t *testing.T) {
		// Without sslrootcert the system roots are used, which do not
		// include the cluster's CA.
		conn, err := pgx.Connect(ctx, tlsURL("localhost", "sslmode=verify-full"))
		if err == nil {
			conn.Close(ctx)
			t.Fatal("verify-full succeeded without the cluster CA")
		}
	})
}

func TestCreateDatabase(t *testing.T) {
	ctx := testContext(t)
	const name = `odd "db" name`
	// Concurrent creations must not trip over the shared template.
	errs := make(chan error, 4)
	for i := range cap(errs) {
		go func() { errs <- pg.CreateDatabase(ctx, name+" "+strconv.Itoa(i)) }()
	}
	if err := pg.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if err := pg.CreateDatabase(ctx, name); err == nil {
		t.Fatal("creating the database twice succeeded")
	}
	conn := connect(t, ctx, pg.ConnString(MD5User, MD5UserPassword, name))
	if got := queryString(t, ctx, conn, "SELECT current_database()"); got != name {
		t.Fatalf("current_database() = %q", got)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
		t.Fatalf("test role cannot create a table in the new database: %v", err)
	}
	if got := queryString(t, ctx, conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"); got != AppUser {
		t.Fatalf("owner = %s", got)
	}
}

func TestBin(t *testing.T) {
	out, err := exec.Command(pg.Bin("psql"), "-X", "-A", "-t", "-c", "SELECT 40 + 2",
		pg.ConnString(AppUser, AppPassword, AppDatabase)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("psql: %v\n%s", err, out)
	}
}

// TestRunsUnprivileged checks who owns the server: the postgres OS user
// when the tests run as root (as in CI), else the caller.
func TestRunsUnprivileged(t *testing.T) {
	wantUID := os.Geteuid()
	if wantUID == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			u, err = user.Lookup("nobody")
		}
		if err != nil {
			t.Fatal(err)
		}
		wantUID, _ = strconv.Atoi(u.Uid)
		t.Logf("running as root; the server should run as %s (uid %d)", u.Username, wantUID)
	}

	status, err := os.ReadFile("/proc/" + strconv.Itoa(pg.srv.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var uids []string
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			uids = strings.Fields(rest)
		}
	}
	for _, uid := range uids {
		if uid != strconv.Itoa(wantUID) {
			t.Errorf("postmaster uids (real, effective, saved, fs) = %v, want all %d", uids, wantUID)
			break
		}
	}

	for _, path := range []string{pg.dataDir(), pg.SocketDir, filepath.Join(pg.Dir, "certs", "server.key")} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if uid := int(fi.Sys().(*syscall.Stat_t).Uid); uid != wantUID {
			t.Errorf("%s is owned by uid %d, want %d", path, uid, wantUID)
		}
	}
	if fi, _ := os.Stat(filepath.Join(pg.Dir, "certs", "server.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("server.key mode = %v", fi.Mode())
	}
}
