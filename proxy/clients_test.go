package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleproxy/fleproxy/internal/pgtest"
)

// psql runs psql against addr with the script on standard input and returns its combined output
// and exit code.
func psql(t *testing.T, addr, user, password, script string, args ...string) (string, int) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cluster.Bin("psql"), append([]string{"-X", "-h", host, "-p", port, "-U", user, "-d", pgtest.AppDatabase, "-v", "VERBOSITY=default"}, args...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10", "PGTZ=UTC")
	cmd.Stdin = strings.NewReader(script)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("psql: %v", err)
	}
	return string(out), code
}

// TestPsql runs one psql script, with several statements per query string, errors, COPY and
// \copy both ways, directly and through the proxy, and expects the same output.
func TestPsql(t *testing.T) {
	h := startProxy(t, nil)
	dir := t.TempDir()
	csvIn := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(csvIn, []byte("1,\"one, uno\"\n2,two\n3,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	compare(t, h, func(t *testing.T, addr string) string {
		table := uniqueName(t)
		csvOut := filepath.Join(dir, "out-"+table+".csv")
		script := strings.NewReplacer("TBL", table, "CSVIN", csvIn, "CSVOUT", csvOut).Replace(`
create table TBL (id int primary key, name text);
insert into TBL values (10, 'ten'); select count(*) from TBL; select 'multi' as statement;
select 1/0;
insert into TBL values (10, 'duplicate');
\copy TBL from 'CSVIN' with (format csv)
\copy TBL to 'CSVOUT' with (format csv)
copy TBL from stdin;
20	twenty
21	\N
\.
select * from TBL order by id;
begin; select 1; select bad; commit;
\echo done
`)
		out, code := psql(t, addr, pgtest.AppUser, pgtest.AppPassword, script)
		csv, err := os.ReadFile(csvOut)
		if err != nil {
			t.Fatalf("\\copy to file: %v\n%s", err, out)
		}
		// Table names differ between the runs; the rest must not.
		out = strings.ReplaceAll(out, table, "TBL")
		return fmt.Sprintf("exit %d\n%s\n--- csv ---\n%s", code, out, csv)
	})
}

// TestPgbench initialises pgbench's tables through the proxy (COPY) and runs its TPC-B-like
// workload in each query mode; the number of transactions must match a direct run.
func TestPgbench(t *testing.T) {
	h := startProxy(t, nil)
	pgbench := func(t *testing.T, addr string, args ...string) string {
		t.Helper()
		host, port, _ := net.SplitHostPort(addr)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cluster.Bin("pgbench"), append([]string{"-h", host, "-p", port, "-U", pgtest.AppUser}, append(args, pgtest.AppDatabase)...)...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+pgtest.AppPassword, "PGSSLMODE=disable")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pgbench %v via %s: %v\n%s", args, addr, err, out)
		}
		return string(out)
	}
	pgbench(t, h.addr, "-i", "-q", "-s", "1", "--foreign-keys")
	processed := regexp.MustCompile(`number of transactions actually processed: (\d+/\d+)`)
	failed := regexp.MustCompile(`number of failed transactions: (\d+)`)
	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run(mode, func(t *testing.T) {
			compare(t, h, func(t *testing.T, addr string) string {
				out := pgbench(t, addr, "-M", mode, "-c", "4", "-j", "2", "-t", "100", "-n")
				p := processed.FindStringSubmatch(out)
				f := failed.FindStringSubmatch(out)
				if p == nil {
					t.Fatalf("unexpected pgbench output:\n%s", out)
				}
				fails := "0"
				if f != nil {
					fails = f[1]
				}
				return p[1] + " failed " + fails
			})
		})
	}
}
