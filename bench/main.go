//go:build linux

// Command bench measures fleproxy against the performance targets of DESIGN.md §9 and prints them as
// ratios, every number measured in the same run on the same machine. Run it from the repository's
// top directory with `bash bench/run.sh` (which installs PgBouncer if it is missing) or
// `go run ./bench`. It starts a throwaway PostgreSQL 15 (internal/pgtest), loads pgbench's tables
// (pgbench -i -s BENCH_SCALE), and puts in front of it PgBouncer in session pool mode and two
// fleproxy processes (the built binary, `fleproxy serve`): one without a policy (pass-through) and
// one with a policy (encryption on). Then:
//
//  1. Pass-through. pgbench -S (select-only) with -M simple and -M prepared at 1 and 8 clients
//     (-j = min(clients, 2)), directly, through PgBouncer, through fleproxy and through
//     fleproxy+policy, whose policy protects columns of other tables: pgbench's statements touch
//     none, so this is the cost of the encryption layer on statements it only has to look at.
//     Target: fleproxy ≥ PgBouncer in session mode (ratio ≥ 1.00), for each case.
//  2. Encryption. A pgbench script that inserts a row (three values, as literals under -M simple and
//     as parameters under -M prepared) and selects the same three columns back by primary key, at 8
//     clients, through fleproxy+policy as the cleared role (so the reads decrypt): once on a table
//     whose three columns (text, int4, date; bytea storage) are protected, once on the same table
//     with plaintext columns. Target: encrypted/plaintext ≥ 0.80 ("loses no more than 20%").
//  3. Memory. BENCH_IDLE idle client connections opened through a freshly started proxy; the growth
//     of the proxy process's resident set (VmRSS) divided by their number. PgBouncer is measured the
//     same way, for reference. §9 gives no number ("bounded per connection; tens of thousands of
//     idle connections fit"), so the table extrapolates to 10,000 and 50,000 connections.
//     RSS includes what the Go runtime keeps between garbage collections (up to GOGC=100 above
//     the live heap), so it is what an operator would see rather than the live heap alone.
//
// Reading the output: every TPS is the best of BENCH_ROUNDS runs; within a round the targets run
// one after another in an order rotated from case to case and round to round, so drift on the
// machine hits them alike. Ratios are truncated to two decimals and judged strictly (0.998 reads
// "0.99 FAIL" against 1.00). The "spread" line says how much the rounds of one cell disagreed, and
// the load average whether something else ran: a ratio that misses its target by less than the
// spread is within the noise of this machine, and above a median spread of 10% the report says the
// verdicts are unreliable. On a 2-core machine pgbench, PostgreSQL and the proxy share the cores,
// so a proxy's CPU time is taken from the database's throughput; that is what is compared.
//
// Linux only: RSS comes from /proc, and PgBouncer from Debian's package.
//
// Settings (environment): BENCH_SECONDS per run (default 10), BENCH_ROUNDS (2), BENCH_IDLE (2000),
// BENCH_SCALE (10), BENCH_FLEPROXY, a built fleproxy binary (default: go build ./cmd/fleproxy).
// Progress goes to standard error, the tables to standard output.
//
// Exit status: 0 when everything was measured, whether or not the targets were met (the numbers are
// the product); 1 when something could not be measured (its cells read n/a and the errors are
// listed); 2 for an invalid setting.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleproxy/fleproxy/internal/pgtest"
)

const (
	database    = "bench"
	appRole     = "bench_app" // the role the policy clears for plaintext
	appPassword = "bench-app-secret"
	plainTable  = "bench_plain"
	encTable    = "bench_enc"
	encClients  = 8

	targetPassThrough = 1.00 // fleproxy / PgBouncer
	targetEncryption  = 0.80 // encrypted / plaintext

	readyTimeout = 30 * time.Second
	idleWorkers  = 16 // parallel connection openers for the memory measurement
	settleTime   = time.Second
)

// Targets of the pass-through measurement, in table order.
const (
	tDirect = iota
	tBouncer
	tFleproxy
	tPolicy
	nTargets
)

func targetName(t int) string {
	return [nTargets]string{"direct", "pgbouncer", "fleproxy", "fleproxy+policy"}[t]
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	opts, err := optionsFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(2)
	}
	code := run(ctx, opts, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the settings read from the environment.
type options struct {
	seconds, rounds, idle, scale int
	fleproxy                     string
}

func optionsFromEnv() (options, error) {
	o := options{fleproxy: os.Getenv("BENCH_FLEPROXY")}
	for _, s := range []struct {
		name     string
		dst      *int
		def, min int
	}{
		{"BENCH_SECONDS", &o.seconds, 10, 1},
		{"BENCH_ROUNDS", &o.rounds, 2, 1},
		{"BENCH_IDLE", &o.idle, 2000, 1},
		{"BENCH_SCALE", &o.scale, 10, 1},
	} {
		*s.dst = s.def
		v := os.Getenv(s.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < s.min {
			return o, fmt.Errorf("%s=%q: want an integer of at least %d", s.name, v, s.min)
		}
		*s.dst = n
	}
	return o, nil
}

// run measures everything and prints the report; it returns the exit status.
func run(ctx context.Context, opts options, out, progress io.Writer) int {
	b := &bench{opts: opts, progress: progress}
	rep, err := b.measure(ctx)
	if rep != nil {
		rep.print(out)
	}
	if err != nil {
		fmt.Fprintln(progress, "bench:", err)
		return 1
	}
	if len(rep.errs) > 0 {
		return 1
	}
	return 0
}

// bench holds what one run sets up.
type bench struct {
	opts     options
	progress io.Writer
	work     string // temporary directory: configurations, policy, scripts, logs
	cluster  *pgtest.Cluster
	pgbench  string
	fleproxy string
	bouncer  string
	// bouncerCred runs PgBouncer as an unprivileged user when we are root (it refuses root).
	bouncerCred *syscall.Credential
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// measure sets everything up, runs the three measurements and returns the report. A returned error
// means the run could not go on; measurements that failed individually are in report.errs.
func (b *bench) measure(ctx context.Context) (*report, error) {
	var err error
	if b.bouncer, err = findPgBouncer(); err != nil {
		return nil, err
	}
	if b.bouncerCred, err = unprivilegedCredential(); err != nil {
		return nil, err
	}
	if b.work, err = os.MkdirTemp("", "fleproxy-bench-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.work)
	// PgBouncer, possibly running as another user, reads its configuration from here.
	if err := os.Chmod(b.work, 0o755); err != nil {
		return nil, err
	}
	if b.fleproxy = b.opts.fleproxy; b.fleproxy == "" {
		b.fleproxy = filepath.Join(b.work, "fleproxy")
		b.logf("building fleproxy (go build ./cmd/fleproxy)")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.fleproxy, "github.com/fleproxy/fleproxy/cmd/fleproxy")
		if outb, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/fleproxy: %w\n%s", err, outb)
		}
	}

	b.logf("starting PostgreSQL")
	b.cluster, err = pgtest.Start(ctx, pgtest.Options{Settings: map[string]string{
		// Room for the idle connections of the memory measurement, each of which the proxy
		// relays to a backend of its own.
		"max_connections": strconv.Itoa(max(200, b.opts.idle+150)),
		// pgbench's tables at scale 10 (about 160 MB) stay in PostgreSQL's own cache.
		"shared_buffers": "256MB",
	}})
	if err != nil {
		return nil, err
	}
	defer b.cluster.Stop()
	b.pgbench = b.cluster.Bin("pgbench")

	rep := &report{loadStart: loadAverage()}
	if err := b.setUpDatabase(ctx); err != nil {
		return nil, err
	}
	cfg, err := b.writeConfigs()
	if err != nil {
		return nil, err
	}
	b.logf("creating the keys (fleproxy keys init)")
	if outb, err := exec.CommandContext(ctx, b.fleproxy, "keys", "init", "--config", cfg.policy).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("fleproxy keys init: %w\n%s", err, outb)
	}
	if err := b.describe(ctx, rep); err != nil {
		return nil, err
	}

	procs, err := b.startAll(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer stopAll(procs)
	policyAddr := procs[tPolicy].addr
	if err := b.checkEncryption(ctx, policyAddr); err != nil {
		return nil, fmt.Errorf("fleproxy+policy does not encrypt as expected, so nothing it measured would mean anything: %w", err)
	}
	addrs := [nTargets]string{tDirect: b.cluster.Addr()}
	for t := tBouncer; t < nTargets; t++ {
		addrs[t] = procs[t].addr
	}

	b.passThrough(ctx, rep, addrs)
	b.encryption(ctx, rep, policyAddr)
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	stopAll(procs)

	b.memory(ctx, rep, cfg)
	rep.loadEnd = loadAverage()
	return rep, ctx.Err()
}

// setUpDatabase creates the database, the cleared role, pgbench's tables and the two tables of the
// encryption measurement.
func (b *bench) setUpDatabase(ctx context.Context) error {
	if err := b.exec(ctx, "postgres",
		"create database "+database,
		fmt.Sprintf("create role %s login password '%s'", appRole, appPassword),
	); err != nil {
		return err
	}
	b.logf("loading pgbench's tables (pgbench -i -s %d)", b.opts.scale)
	host, port, _ := net.SplitHostPort(b.cluster.Addr())
	cmd := exec.CommandContext(ctx, b.pgbench, "-i", "-q", "-s", strconv.Itoa(b.opts.scale), "-h", host, "-p", port, "-U", pgtest.SuperUser, database)
	cmd.Env = childEnv("")
	if outb, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %w\n%s", err, outb)
	}
	return b.exec(ctx, database,
		fmt.Sprintf("create table %s (id bigint primary key, email text, score int4, born date)", plainTable),
		fmt.Sprintf("create table %s (id bigint primary key, email bytea, score bytea, born bytea)", encTable),
		fmt.Sprintf("grant select, insert on %s, %s to %s", plainTable, encTable, appRole),
	)
}

// exec runs statements as the superuser directly on PostgreSQL.
func (b *bench) exec(ctx context.Context, db string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, b.cluster.ConnString(pgtest.SuperUser, "", db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// configs are the files written for the proxies and the addresses they listen on.
type configs struct {
	plain, policy, bouncer             string // fleproxy.yaml, fleproxy-policy.yaml, pgbouncer.ini
	plainAddr, policyAddr, bouncerAddr string
}

// writeConfigs writes the policy, the two fleproxy configurations and PgBouncer's. Each process
// gets a port that was free a moment ago.
func (b *bench) writeConfigs() (configs, error) {
	var c configs
	for _, a := range []*string{&c.plainAddr, &c.policyAddr, &c.bouncerAddr} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return c, err
		}
		*a = ln.Addr().String()
		ln.Close()
	}
	c.plain = filepath.Join(b.work, "fleproxy.yaml")
	c.policy = filepath.Join(b.work, "fleproxy-policy.yaml")
	c.bouncer = filepath.Join(b.work, "pgbouncer.ini")
	policyFile := filepath.Join(b.work, "policy.yaml")
	userlist := filepath.Join(b.work, "userlist.txt")

	policy := fmt.Sprintf(`version: 1
columns:
  - {column: public.%[1]s.email, id: %[1]s.email, type: text, mode: randomized, key: bench, storage: bytea}
  - {column: public.%[1]s.score, id: %[1]s.score, type: int4, mode: randomized, key: bench, storage: bytea}
  - {column: public.%[1]s.born,  id: %[1]s.born,  type: date, mode: randomized, key: bench, storage: bytea}
cleared:
  roles: [%[2]s]
`, encTable, appRole)
	proxyConfig := func(listen string) string {
		return fmt.Sprintf(`listen: %s
upstream:
  address: %s
limits:
  shutdown_timeout: 2s
log:
  level: warn
`, listen, b.cluster.Addr())
	}
	withPolicy := proxyConfig(c.policyAddr) + fmt.Sprintf(`encryption:
  policy: %s
  service: %s
  kek_file: %s
`, policyFile, b.cluster.ConnString(pgtest.SuperUser, "", database), filepath.Join(b.work, "kek.json"))

	host, port, _ := net.SplitHostPort(b.cluster.Addr())
	bhost, bport, _ := net.SplitHostPort(c.bouncerAddr)
	ini := fmt.Sprintf(`[databases]
%s = host=%s port=%s dbname=%s

[pgbouncer]
listen_addr = %s
listen_port = %s
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = session
max_client_conn = %d
default_pool_size = %d
server_tls_sslmode = disable
client_tls_sslmode = disable
logfile =
pidfile =
log_connections = 0
log_disconnections = 0
`, database, host, port, database, bhost, bport, userlist, b.opts.idle+100, b.opts.idle+100)

	for _, f := range []struct{ name, text string }{
		{policyFile, policy},
		{c.plain, proxyConfig(c.plainAddr)},
		{c.policy, withPolicy},
		{c.bouncer, ini},
		{userlist, fmt.Sprintf("%q \"\"\n", pgtest.SuperUser)},
	} {
		if err := os.WriteFile(f.name, []byte(f.text), 0o644); err != nil {
			return c, err
		}
	}
	return c, nil
}

// describe records the versions and settings for the report's header.
func (b *bench) describe(ctx context.Context, rep *report) error {
	conn, err := pgx.Connect(ctx, b.cluster.ConnString(pgtest.SuperUser, "", database))
	if err != nil {
		return err
	}
	var pgVersion string
	err = conn.QueryRow(ctx, "show server_version").Scan(&pgVersion)
	conn.Close(context.Background())
	if err != nil {
		return err
	}
	bv, _ := exec.CommandContext(ctx, b.bouncer, "--version").Output()
	fv, _ := exec.CommandContext(ctx, b.fleproxy, "version").Output()
	firstLine := func(b []byte) string { s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n"); return s }
	host, _ := os.Hostname()
	rep.header = []string{
		fmt.Sprintf("%s, %s; %d CPUs (GOMAXPROCS %d), %s", time.Now().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version()),
		fmt.Sprintf("PostgreSQL %s (fsync off, shared_buffers 256MB), %s (session mode), %s", pgVersion, firstLine(bv), firstLine(fv)),
		fmt.Sprintf("pgbench scale %d, %d s per run, best of %d rounds; -j = min(clients, 2); TCP on 127.0.0.1, no TLS", b.opts.scale, b.opts.seconds, b.opts.rounds),
	}
	return nil
}

// startAll starts PgBouncer and both fleproxy processes, indexed by target.
func (b *bench) startAll(ctx context.Context, c configs) ([nTargets]*proc, error) {
	var procs [nTargets]*proc
	var err error
	if procs[tBouncer], err = b.startBouncer(ctx, c); err == nil {
		if procs[tFleproxy], err = b.startFleproxy(ctx, "fleproxy", c.plain, c.plainAddr); err == nil {
			procs[tPolicy], err = b.startFleproxy(ctx, "fleproxy+policy", c.policy, c.policyAddr)
		}
	}
	if err != nil {
		stopAll(procs)
		return procs, err
	}
	return procs, nil
}

func stopAll(procs [nTargets]*proc) {
	for _, p := range procs {
		if p != nil {
			p.stop()
		}
	}
}

func (b *bench) startFleproxy(ctx context.Context, name, cfg, addr string) (*proc, error) {
	b.logf("starting %s on %s", name, addr)
	return b.start(ctx, name, addr, nil, b.fleproxy, "serve", "--config", cfg)
}

func (b *bench) startBouncer(ctx context.Context, c configs) (*proc, error) {
	who := "this user"
	if b.bouncerCred != nil {
		who = fmt.Sprintf("uid %d", b.bouncerCred.Uid)
	}
	b.logf("starting PgBouncer (session mode) on %s as %s", c.bouncerAddr, who)
	return b.start(ctx, "pgbouncer", c.bouncerAddr, b.bouncerCred, b.bouncer, c.bouncer)
}

// proc is a started proxy process.
type proc struct {
	name, addr, logFile string
	cmd                 *exec.Cmd
	done                chan struct{}
}

// start runs argv as a proxy listening on addr and waits until a session through it works.
func (b *bench) start(ctx context.Context, name, addr string, cred *syscall.Credential, argv ...string) (*proc, error) {
	logFile := filepath.Join(b.work, strings.ReplaceAll(name, "+", "-")+".log")
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = childEnv("")
	// Killed with us if we die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, addr: addr, logFile: logFile, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		c, err := pgconn.Connect(ctx, connString(addr, pgtest.SuperUser, ""))
		if err == nil {
			c.Close(ctx)
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited during start-up: %s", name, p.logTail())
		case <-ctx.Done():
			p.stop()
			return nil, fmt.Errorf("%s did not accept sessions on %s: %w (last: %v); log: %s", name, addr, ctx.Err(), err, p.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the process: SIGTERM, then SIGKILL after a few seconds. Calling it again does nothing.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) logTail() string {
	data, _ := os.ReadFile(p.logFile)
	s := strings.TrimSpace(string(data))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// rss returns the process's resident set size in bytes (VmRSS in /proc/PID/status).
func (p *proc) rss() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("%s: no VmRSS in /proc/%d/status", p.name, p.cmd.Process.Pid)
}

// checkEncryption writes a row through fleproxy+policy as the cleared role and checks that the
// role reads the plaintext back while the database holds something else.
func (b *bench) checkEncryption(ctx context.Context, policyAddr string) error {
	conn, err := pgconn.Connect(ctx, connString(policyAddr, appRole, appPassword))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	const want = "check@example.com|7|2000-01-02"
	if _, err := conn.Exec(ctx, "insert into "+encTable+" (id, email, score, born) values (0, 'check@example.com', 7, '2000-01-02') on conflict do nothing").ReadAll(); err != nil {
		return err
	}
	results, err := conn.Exec(ctx, "select email, score, born from "+encTable+" where id = 0").ReadAll()
	if err != nil {
		return err
	}
	if len(results) != 1 || len(results[0].Rows) != 1 {
		return fmt.Errorf("read %d results back, want one row", len(results))
	}
	var got []string
	for _, v := range results[0].Rows[0] {
		got = append(got, string(v))
	}
	if g := strings.Join(got, "|"); g != want {
		return fmt.Errorf("the cleared role read %q back, want %q", g, want)
	}
	direct, err := pgx.Connect(ctx, b.cluster.ConnString(pgtest.SuperUser, "", database))
	if err != nil {
		return err
	}
	defer direct.Close(context.Background())
	var stored []byte
	if err := direct.QueryRow(ctx, "select email from "+encTable+" where id = 0").Scan(&stored); err != nil {
		return err
	}
	if strings.Contains(string(stored), "check@example.com") {
		return errors.New("the database holds the plaintext")
	}
	return nil
}

// pgbenchRun is one pgbench invocation.
type pgbenchRun struct {
	addr, user, password string
	mode                 string // simple or prepared
	clients              int
	seconds              int
	script               string   // custom script file; "" for -S
	defines              []string // -D name=value
}

// runPgbench returns pgbench's TPS (without initial connection time). Failed transactions are errors.
func (b *bench) runPgbench(ctx context.Context, r pgbenchRun) (float64, error) {
	host, port, _ := net.SplitHostPort(r.addr)
	args := []string{"-n", "-h", host, "-p", port, "-U", r.user, "-M", r.mode,
		"-c", strconv.Itoa(r.clients), "-j", strconv.Itoa(min(r.clients, 2)), "-T", strconv.Itoa(r.seconds)}
	if r.script == "" {
		args = append(args, "-S")
	} else {
		args = append(args, "-f", r.script)
	}
	for _, d := range r.defines {
		args = append(args, "-D", d)
	}
	args = append(args, database)
	cmd := exec.CommandContext(ctx, b.pgbench, args...)
	cmd.Env = childEnv(r.password)
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		return 0, fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, tail(out, 1500))
	}
	if m := regexp.MustCompile(`number of failed transactions: (\d+)`).FindStringSubmatch(out); m != nil && m[1] != "0" {
		return 0, fmt.Errorf("pgbench %s: %s failed transactions\n%s", strings.Join(args, " "), m[1], tail(out, 1500))
	}
	m := regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench %s: no tps in its output\n%s", strings.Join(args, " "), tail(out, 1500))
	}
	return strconv.ParseFloat(m[1], 64)
}

// passThrough runs pgbench -S against every target, interleaved, BENCH_ROUNDS times.
func (b *bench) passThrough(ctx context.Context, rep *report, addrs [nTargets]string) {
	for _, mode := range []string{"simple", "prepared"} {
		for _, clients := range []int{1, 8} {
			rep.pass = append(rep.pass, passRow{mode: mode, clients: clients})
		}
	}
	b.logf("warm-up: 1 s of pgbench -S through each target")
	for t := range nTargets {
		if _, err := b.runPgbench(ctx, pgbenchRun{addr: addrs[t], user: pgtest.SuperUser, mode: "prepared", clients: 8, seconds: 1}); err != nil {
			rep.errs = append(rep.errs, fmt.Errorf("warm-up through %s: %w", targetName(t), err))
		}
	}
	for round := range b.opts.rounds {
		for i := range rep.pass {
			row := &rep.pass[i]
			for k := range nTargets {
				if ctx.Err() != nil {
					return
				}
				t := (k + round + i) % nTargets
				tps, err := b.runPgbench(ctx, pgbenchRun{addr: addrs[t], user: pgtest.SuperUser, mode: row.mode, clients: row.clients, seconds: b.opts.seconds})
				if err != nil {
					rep.errs = append(rep.errs, fmt.Errorf("pass-through %s, %d clients, %s: %w", row.mode, row.clients, targetName(t), err))
					continue
				}
				row.tps[t] = append(row.tps[t], tps)
				b.logf("round %d/%d  select-only %-8s %d client(s)  %-15s %8.0f tps", round+1, b.opts.rounds, row.mode, row.clients, targetName(t), tps)
			}
		}
	}
}

// encryption runs the insert-and-select script on the plaintext and the protected table through
// fleproxy+policy as the cleared role.
func (b *bench) encryption(ctx context.Context, rep *report, policyAddr string) {
	tables := [2]string{plainTable, encTable}
	var scripts [2]string
	for i, table := range tables {
		// Plain :variables only: the proxy refuses expressions around protected values.
		text := fmt.Sprintf(`\set id random(1, 2000000000)
\set score random(1, 1000000)
insert into %[1]s (id, email, score, born) values (:id, :email, :score, :born) on conflict (id) do nothing;
select email, score, born from %[1]s where id = :id;
`, table)
		scripts[i] = filepath.Join(b.work, table+".sql")
		if err := os.WriteFile(scripts[i], []byte(text), 0o644); err != nil {
			rep.errs = append(rep.errs, err)
			return
		}
	}
	// Under -M simple pgbench pastes a variable's value into the SQL text as it is, so the quotes
	// of a string literal belong to the value; under -M prepared the value is a parameter.
	defines := map[string][]string{
		"prepared": {"email=someone@example.com", "born=1990-05-17"},
		"simple":   {"email='someone@example.com'", "born='1990-05-17'"},
	}
	for _, mode := range []string{"prepared", "simple"} {
		rep.enc = append(rep.enc, encRow{mode: mode})
	}
	run := func(mode string, i, seconds int) (float64, error) {
		return b.runPgbench(ctx, pgbenchRun{addr: policyAddr, user: appRole, password: appPassword, mode: mode,
			clients: encClients, seconds: seconds, script: scripts[i], defines: defines[mode]})
	}
	b.logf("warm-up: 1 s of the encryption script on each table")
	for i := range tables {
		if _, err := run("prepared", i, 1); err != nil {
			rep.errs = append(rep.errs, fmt.Errorf("warm-up on %s: %w", tables[i], err))
		}
	}
	for round := range b.opts.rounds {
		for r := range rep.enc {
			row := &rep.enc[r]
			for k := range tables {
				if ctx.Err() != nil {
					return
				}
				i := (k + round + r) % len(tables)
				tps, err := run(row.mode, i, b.opts.seconds)
				if err != nil {
					rep.errs = append(rep.errs, fmt.Errorf("encryption %s on %s: %w", row.mode, tables[i], err))
					continue
				}
				row.tps[i] = append(row.tps[i], tps)
				b.logf("round %d/%d  insert+select %-8s %d clients  %-12s %8.0f tps", round+1, b.opts.rounds, row.mode, encClients, tables[i], tps)
			}
		}
	}
}

// memory opens BENCH_IDLE idle connections through a freshly started instance of each proxy and
// records its RSS before and after.
func (b *bench) memory(ctx context.Context, rep *report, c configs) {
	type subject struct {
		name  string
		start func() (*proc, error)
	}
	for _, s := range []subject{
		{"fleproxy", func() (*proc, error) { return b.startFleproxy(ctx, "fleproxy", c.plain, c.plainAddr) }},
		{"fleproxy+policy", func() (*proc, error) { return b.startFleproxy(ctx, "fleproxy+policy", c.policy, c.policyAddr) }},
		{"pgbouncer (reference)", func() (*proc, error) { return b.startBouncer(ctx, c) }},
	} {
		if ctx.Err() != nil {
			return
		}
		row := memRow{name: s.name, n: b.opts.idle}
		err := b.waitBackends(ctx)
		if err == nil {
			var p *proc
			if p, err = s.start(); err == nil {
				row.before, row.after, err = b.idleRSS(ctx, p, b.opts.idle)
				p.stop()
			}
		}
		if err != nil {
			rep.errs = append(rep.errs, fmt.Errorf("memory through %s: %w", s.name, err))
			row.failed = true
		} else {
			b.logf("memory  %-22s %d idle connections: RSS %.1f → %.1f MiB", s.name, row.n, mib(row.before), mib(row.after))
		}
		rep.mem = append(rep.mem, row)
	}
}

// idleRSS warms the proxy up with a few sessions, then measures its RSS before and after opening n
// idle connections.
func (b *bench) idleRSS(ctx context.Context, p *proc, n int) (before, after int64, err error) {
	warm, err := openIdle(ctx, p.addr, 2*idleWorkers)
	closeAll(warm)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(settleTime)
	if before, err = p.rss(); err != nil {
		return 0, 0, err
	}
	b.logf("memory  opening %d idle connections through %s", n, p.name)
	conns, err := openIdle(ctx, p.addr, n)
	defer closeAll(conns)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(settleTime)
	after, err = p.rss()
	return before, after, err
}

// openIdle opens n sessions to addr; on error it closes those it opened.
func openIdle(ctx context.Context, addr string, n int) ([]*pgconn.PgConn, error) {
	conns := make([]*pgconn.PgConn, n)
	next := make(chan int)
	errs := make([]error, idleWorkers)
	var wg sync.WaitGroup
	for w := range idleWorkers {
		wg.Go(func() {
			for i := range next {
				if errs[w] != nil {
					continue
				}
				conns[i], errs[w] = pgconn.Connect(ctx, connString(addr, pgtest.SuperUser, ""))
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		opened := slices.DeleteFunc(conns, func(c *pgconn.PgConn) bool { return c == nil })
		closeAll(opened)
		return nil, fmt.Errorf("opened %d of %d idle connections: %w", len(opened), n, err)
	}
	return conns, nil
}

func closeAll(conns []*pgconn.PgConn) {
	for _, c := range conns {
		if c != nil {
			c.Close(context.Background())
		}
	}
}

// waitBackends waits until the backends of earlier sessions are gone, so the next measurement has
// PostgreSQL's max_connections to itself.
func (b *bench) waitBackends(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, b.cluster.ConnString(pgtest.SuperUser, "", "postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(readyTimeout)
	for {
		var n int
		if err := conn.QueryRow(ctx, "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()").Scan(&n); err != nil {
			return err
		}
		if n <= 20 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d backends of earlier sessions are still there", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// report is everything measured.
type report struct {
	loadStart, loadEnd string // 1-minute load averages
	header             []string
	pass               []passRow
	enc                []encRow
	mem                []memRow
	errs               []error
}

type passRow struct {
	mode    string
	clients int
	tps     [nTargets][]float64 // per target, one value per round
}

type encRow struct {
	mode string
	tps  [2][]float64 // plaintext, encrypted
}

type memRow struct {
	name          string
	n             int
	before, after int64
	failed        bool
}

func (r *report) print(out io.Writer) {
	fmt.Fprintln(out)
	fmt.Fprintln(out, "fleproxy performance (DESIGN.md §9), all measured in this run")
	for _, h := range r.header {
		fmt.Fprintln(out, "  "+h)
	}
	met, total := 0, 0
	// judged formats a ratio with its verdict and counts it.
	judged := func(ratio, target float64) string {
		if math.IsNaN(ratio) || math.IsInf(ratio, 0) {
			return "n/a"
		}
		total++
		if ratio >= target {
			met++
			return ratioCell(ratio) + " PASS"
		}
		return ratioCell(ratio) + " FAIL"
	}
	newTable := func() *tabwriter.Writer { return tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight) }
	var spreads []float64

	fmt.Fprintf(out, "\n1. Pass-through: pgbench -S (select-only), TPS; target fleproxy/pgbouncer ≥ %.2f\n", targetPassThrough)
	tw := newTable()
	fmt.Fprintln(tw, "protocol\tclients\tdirect\tpgbouncer\tfleproxy\tfleproxy+policy\tfleproxy/pgbouncer\t+policy/pgbouncer\tfleproxy/direct\t+policy/direct\t")
	for _, row := range r.pass {
		var best [nTargets]float64
		for t := range nTargets {
			best[t] = maxOf(row.tps[t])
			if s, ok := spread(row.tps[t]); ok {
				spreads = append(spreads, s)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.mode, row.clients,
			tpsCell(best[tDirect]), tpsCell(best[tBouncer]), tpsCell(best[tFleproxy]), tpsCell(best[tPolicy]),
			judged(best[tFleproxy]/best[tBouncer], targetPassThrough), judged(best[tPolicy]/best[tBouncer], targetPassThrough),
			ratioCell(best[tFleproxy]/best[tDirect]), ratioCell(best[tPolicy]/best[tDirect]))
	}
	tw.Flush()

	fmt.Fprintf(out, "\n2. Encryption: insert 3 values + select the 3 columns by key, %d clients, through fleproxy+policy as the cleared role, TPS; target encrypted/plaintext ≥ %.2f\n", encClients, targetEncryption)
	tw = newTable()
	fmt.Fprintln(tw, "protocol\tplaintext columns\tprotected columns\tencrypted/plaintext\t")
	for _, row := range r.enc {
		plain, enc := maxOf(row.tps[0]), maxOf(row.tps[1])
		for _, x := range row.tps {
			if s, ok := spread(x); ok {
				spreads = append(spreads, s)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", row.mode, tpsCell(plain), tpsCell(enc), judged(enc/plain, targetEncryption))
	}
	tw.Flush()

	fmt.Fprintf(out, "\n3. Memory: idle client connections through a freshly started proxy, growth of its RSS (VmRSS);\n   target: bounded per connection, tens of thousands of idle connections fit (§9 gives no number)\n")
	tw = newTable()
	fmt.Fprintln(tw, "proxy\tidle conns\tRSS before\tRSS after\tbytes/conn\t10,000 idle\t50,000 idle\t")
	for _, row := range r.mem {
		if row.failed {
			fmt.Fprintf(tw, "%s\t%d\tn/a\tn/a\tn/a\tn/a\tn/a\t\n", row.name, row.n)
			continue
		}
		per := float64(row.after-row.before) / float64(row.n)
		fmt.Fprintf(tw, "%s\t%d\t%.1f MiB\t%.1f MiB\t%.0f\t%.0f MiB\t%.2f GiB\t\n", row.name, row.n, mib(row.before), mib(row.after),
			per, per*10000/(1<<20), per*50000/(1<<30))
	}
	tw.Flush()

	fmt.Fprintln(out)
	if len(spreads) > 0 {
		slices.Sort(spreads)
		median := spreads[len(spreads)/2]
		fmt.Fprintf(out, "spread between the rounds of one cell, (max−min)/max: median %.1f%%, largest %.1f%%\n", 100*median, 100*spreads[len(spreads)-1])
		if median > 0.10 {
			fmt.Fprintln(out, "WARNING: the rounds disagree by more than 10%: the machine was busy (see the load average); the verdicts are unreliable, run again on a quiet machine")
		}
	}
	if r.loadEnd != "" {
		fmt.Fprintf(out, "1-minute load average: %s at the start, %s at the end (%d CPUs)\n", r.loadStart, r.loadEnd, runtime.NumCPU())
	}
	fmt.Fprintf(out, "targets met: %d of %d\n", met, total)
	if len(r.errs) > 0 {
		fmt.Fprintf(out, "\nNOT MEASURED (%d errors):\n", len(r.errs))
		for _, err := range r.errs {
			fmt.Fprintf(out, "  - %v\n", err)
		}
	}
}

func maxOf(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return slices.Max(xs)
}

func spread(xs []float64) (float64, bool) {
	if len(xs) < 2 {
		return 0, false
	}
	hi := slices.Max(xs)
	return (hi - slices.Min(xs)) / hi, true
}

func tpsCell(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

// ratioCell truncates to two decimals, so that 0.998, which misses a target of 1.00, never reads
// "1.00".
func ratioCell(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(math.Floor(x*100)/100, 'f', 2, 64)
}

// loadAverage returns the 1-minute load average, which shows whether something else competed for
// the machine during the run.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// connString is a keyword/value connection string to the bench database through addr.
func connString(addr, user, password string) string {
	host, port, _ := net.SplitHostPort(addr)
	s := fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable connect_timeout=30", host, port, user, database)
	if password != "" {
		s += " password=" + password
	}
	return s
}

// childEnv is our environment without PG* variables, plus sslmode=disable (every hop in the
// comparison is plain TCP) and the password, if any.
func childEnv(password string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
	env = append(env, "PGSSLMODE=disable")
	if password != "" {
		env = append(env, "PGPASSWORD="+password)
	}
	return env
}

// findPgBouncer looks for pgbouncer on PATH and where Debian puts it.
func findPgBouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", errors.New("pgbouncer not found (Debian: apt-get install pgbouncer; bench/run.sh does it when run as root)")
}

// unprivilegedCredential returns nil when we are not root, and otherwise the postgres (or nobody)
// user to run PgBouncer as.
func unprivilegedCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil && uid != 0 {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("running as root, and neither the postgres nor the nobody user exists to run PgBouncer as")
}
