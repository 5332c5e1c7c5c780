package rewrite_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestCopyFromStdin loads protected columns with COPY in the text, CSV and binary formats and
// reads them back; the data at rest is ciphertext.
func TestCopyFromStdin(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	us := f.us()
	ctx := ctxT(t)
	text := "1\tcopy-text-1@example.com\t5\tplain note\n2\t\\N\t\\N\tsecond\n3\ttab\\there@example.com\t-7\t\\N\n"
	if _, err := us.PgConn().CopyFrom(ctx, strings.NewReader(text), "copy people (id, email, score, note) from stdin"); err != nil {
		t.Fatalf("text COPY: %v", err)
	}
	csv := "id,email,score\n4,\"csv, quoted@example.com\",8\n5,,9\n6,\"\",10\n"
	if _, err := us.PgConn().CopyFrom(ctx, strings.NewReader(csv), "copy people (id, email, score) from stdin with (format csv, header true)"); err != nil {
		t.Fatalf("csv COPY: %v", err)
	}
	n, err := us.CopyFrom(ctx, pgx.Identifier{"people"}, []string{"id", "email", "score"}, pgx.CopyFromRows([][]any{
		{int32(7), "binary-seven@example.com", int32(77)},
		{int32(8), nil, int32(88)},
	}))
	if err != nil || n != 2 {
		t.Fatalf("binary COPY: %d %v", n, err)
	}
	want := "1 copy-text-1@example.com 5|2 <nil> <nil>|3 tab\there@example.com -7|4 csv, quoted@example.com 8|5 <nil> 9|6  10|7 binary-seven@example.com 77|8 <nil> 88"
	if got := readEmailsScores(t, us); got != want {
		t.Fatalf("read back\n got %q\nwant %q", got, want)
	}
	f.assertNoPlaintextAtRest("people", "copy-text-1@example.com", "quoted@example.com", "binary-seven@example.com", "here@example.com")

	// A value that is not valid for the logical type fails the whole COPY, naming the column.
	_, err = us.PgConn().CopyFrom(ctx, strings.NewReader("9\tx@example.com\tnot-a-number\n"), "copy people (id, email, score) from stdin")
	if err == nil || !strings.Contains(err.Error(), "people.score") {
		t.Fatalf("bad value in COPY: %v", err)
	}
	if strings.Contains(err.Error(), "not-a-number") {
		t.Fatalf("error quotes the value: %v", err)
	}
	if got := readEmailsScores(t, us); got != want {
		t.Fatalf("a failed COPY changed the table: %q", got)
	}
}

func readEmailsScores(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	rows, err := conn.Query(ctxT(t), "select id, email, score from people order by id")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var id int32
		var email *string
		var score *int32
		if err := rows.Scan(&id, &email, &score); err != nil {
			t.Fatal(err)
		}
		e, s := "<nil>", "<nil>"
		if email != nil {
			e = *email
		}
		if score != nil {
			s = fmt.Sprint(*score)
		}
		out = append(out, fmt.Sprintf("%d %s %s", id, e, s))
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return strings.Join(out, "|")
}

// TestCopyToStdout reads protected columns with COPY TO in each format: plaintext for the cleared
// role, ciphertext for the other.
func TestCopyToStdout(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	us := f.us()
	ctx := ctxT(t)
	if _, err := us.Exec(ctx, "insert into people (id, email, score) values (1, 'out\tone@example.com', 1), (2, NULL, 2)"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ opts, want string }{
		{"", "1\tout\\tone@example.com\t1\n2\t\\N\t2\n"},
		{"with (format csv)", "1,out\tone@example.com,1\n2,,2\n"},
	} {
		var buf bytes.Buffer
		if _, err := us.PgConn().CopyTo(ctx, &buf, "copy people (id, email, score) to stdout "+c.opts); err != nil {
			t.Fatal(err)
		}
		if buf.String() != c.want {
			t.Fatalf("COPY TO %s as cleared role:\n got %q\nwant %q", c.opts, buf.String(), c.want)
		}
		buf.Reset()
		if _, err := f.sg().PgConn().CopyTo(ctx, &buf, "copy people (id, email, score) to stdout "+c.opts); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "one@example.com") || !strings.Contains(buf.String(), "fle1:") {
			t.Fatalf("COPY TO as uncleared role: %q", buf.String())
		}
	}
}

// TestCursorsAndPsql reads through DECLARE/FETCH and runs psql, whose FETCH_COUNT reads results
// through a cursor.
func TestCursorsAndPsql(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	us := f.us()
	ctx := ctxT(t)
	for i := range 5 {
		if _, err := us.Exec(ctx, "insert into people (id, email) values ($1, $2)", i, fmt.Sprintf("cursor-%d@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := us.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "declare c cursor for select id, email from people order by id"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		rows, err := tx.Query(ctx, "fetch 2 from c")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int32
			var email string
			if err := rows.Scan(&id, &email); err != nil {
				t.Fatal(err)
			}
			got = append(got, email)
		}
	}
	_ = tx.Rollback(ctx)
	if strings.Join(got, ",") != "cursor-0@example.com,cursor-1@example.com,cursor-2@example.com,cursor-3@example.com,cursor-4@example.com" {
		t.Fatalf("FETCH through the proxy: %v", got)
	}

	host, port, _ := net.SplitHostPort(f.proxy)
	cmd := exec.CommandContext(ctx, cluster.Bin("psql"), "-X", "-At", "-v", "FETCH_COUNT=2", "-h", host, "-p", port, "-U", usRole, "-d", f.db,
		"-c", "select email from people order by id",
		"-c", "insert into people (id, email) values (99, 'psql-insert@example.com')",
		"-c", "select email from people where id = 99")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+usPassword, "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	want := "cursor-0@example.com\ncursor-1@example.com\ncursor-2@example.com\ncursor-3@example.com\ncursor-4@example.com\nINSERT 0 1\npsql-insert@example.com\n"
	if string(out) != want {
		t.Fatalf("psql output:\n%s", out)
	}
	f.assertNoPlaintextAtRest("people", "psql-insert@example.com", "cursor-3@example.com")
}

// TestPgbenchCustomScript runs pgbench through the proxy with a script that writes and reads
// protected columns, in each query mode.
func TestPgbenchCustomScript(t *testing.T) {
	f := newFixture(t, peopleSchema, peoplePolicy)
	script := t.TempDir() + "/fle.sql"
	// pgbench substitutes variables as literals (simple) or parameters (extended, prepared);
	// an expression such as 'bench-' || :id around a protected value would be refused.
	if err := os.WriteFile(script, []byte(`\set id random(1, 1000000000)
insert into people (id, email, score) values (:id, 'bench@example.com', :id) on conflict (id) do nothing;
select email, score from people where id = :id;
`), 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(f.proxy)
	for _, mode := range []string{"simple", "extended", "prepared"} {
		cmd := exec.CommandContext(ctxT(t), cluster.Bin("pgbench"), "-n", "-M", mode, "-c", "2", "-j", "2", "-t", "50", "-f", script, "-h", host, "-p", port, "-U", usRole, f.db)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+usPassword, "PGSSLMODE=disable")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "number of failed transactions: 0") {
			t.Fatalf("pgbench -M %s: %v\n%s", mode, err, out)
		}
	}
	f.assertNoPlaintextAtRest("people", "bench@example.com")
}
