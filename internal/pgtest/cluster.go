package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleproxy/fleproxy/internal/testcerts"
)

const (
	// readyTimeout bounds the wait for a started server to accept
	// connections.
	readyTimeout = 30 * time.Second
	// portAttempts is how often Start picks a new port after losing the
	// race for a free one to another process.
	portAttempts = 5
	// stopTimeout is how long Stop waits at each escalation step.
	stopTimeout = 10 * time.Second
)

// Options tunes a cluster; the zero value is fine.
type Options struct {
	// Settings are extra postgresql.conf lines (name -> value). Values are
	// quoted for the file; they override the defaults Start writes.
	Settings map[string]string
	// Log, if non-nil, receives the server's log output (default: written
	// to <Dir>/postgres.log only). It is written from another goroutine.
	Log io.Writer
}

// Cluster is a running throwaway PostgreSQL cluster. Its methods are safe
// for concurrent use.
type Cluster struct {
	// Host is always "127.0.0.1"; the server listens on no other address.
	Host string
	// Port is the server's TCP port.
	Port int
	// Dir is the temporary directory holding data, sockets, certificates
	// and the server log; Stop removes it.
	Dir string
	// CA signed the server certificate (DNS "localhost", IP 127.0.0.1).
	CA *testcerts.CA
	// CAFile is CA's certificate as a PEM file, for sslrootcert with
	// sslmode=verify-full.
	CAFile string
	// BinDir is the directory of the PostgreSQL binaries used.
	BinDir string
	// SocketDir holds the server's Unix-domain socket.
	SocketDir string
	// LogFile is the server log, <Dir>/postgres.log.
	LogFile string

	logFile *os.File
	srv     *server

	mu      sync.Mutex
	stopped bool
}

// Start creates and starts a cluster with the roles and the database
// described by the package's constants. Call Stop when done, even if ctx is
// cancelled; ctx bounds only the start-up.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	return start(ctx, opts, freePort)
}

// start is Start with the port chooser replaceable, so tests can make the
// first choice collide.
func start(ctx context.Context, opts Options, pickPort func() (int, error)) (*Cluster, error) {
	for name := range opts.Settings {
		if !settingName.MatchString(name) {
			return nil, fmt.Errorf("pgtest: invalid setting name %q", name)
		}
	}
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	u, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fleproxy-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{
		Host:      "127.0.0.1",
		Dir:       dir,
		CAFile:    filepath.Join(dir, "certs", "ca.crt"),
		BinDir:    binDir,
		SocketDir: filepath.Join(dir, "sock"),
		LogFile:   filepath.Join(dir, "postgres.log"),
	}
	if err := c.setUp(ctx, opts, u, pickPort); err != nil {
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }

func (c *Cluster) setUp(ctx context.Context, opts Options, u osUser, pickPort func() (int, error)) error {
	certDir := filepath.Join(c.Dir, "certs")
	if err := os.Mkdir(c.SocketDir, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := os.Mkdir(certDir, 0o755); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := u.chown(c.Dir, c.SocketDir); err != nil {
		return err
	}
	certFile, keyFile, err := c.writeCerts(certDir, u)
	if err != nil {
		return err
	}
	if err := c.initdb(ctx, u); err != nil {
		return err
	}
	if err := c.configure(opts.Settings, certFile, keyFile); err != nil {
		return err
	}

	c.logFile, err = os.OpenFile(c.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	var serverLog io.Writer = c.logFile
	if opts.Log != nil {
		serverLog = io.MultiWriter(c.logFile, opts.Log)
	}
	for attempt := 1; ; attempt++ {
		port, err := pickPort()
		if err != nil {
			return err
		}
		err = c.launch(ctx, u, port, serverLog)
		if err == nil {
			c.Port = port
			break
		}
		if !errors.Is(err, errPortInUse) || attempt == portAttempts {
			return err
		}
	}
	return c.createRoles(ctx)
}

// writeCerts issues the server certificate. PostgreSQL accepts a key file
// owned by the server's OS user only with mode 0600 or stricter.
func (c *Cluster) writeCerts(certDir string, u osUser) (certFile, keyFile string, err error) {
	c.CA, err = testcerts.NewCA("fleproxy pgtest CA")
	if err != nil {
		return "", "", err
	}
	leaf, err := c.CA.Issue(testcerts.Leaf{
		CommonName:  "localhost",
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		return "", "", err
	}
	certFile, keyFile, err = leaf.WriteFiles(certDir, "server")
	if err != nil {
		return "", "", err
	}
	if err := u.chown(certFile, keyFile); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(c.CAFile, c.CA.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("pgtest: write CA file: %w", err)
	}
	return certFile, keyFile, nil
}

func (c *Cluster) initdb(ctx context.Context, u osUser) error {
	cmd := u.command(ctx, c.Dir, c.Bin("initdb"),
		"-D", c.dataDir(),
		"-A", "trust",
		"--username="+SuperUser,
		"-E", "UTF8",
		"--locale=C",
		"--no-sync",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		hint := ""
		if u.switched {
			hint = fmt.Sprintf(" (as OS user %s, which must be able to reach %s; set TMPDIR if not)", u.name, c.Dir)
		}
		return fmt.Errorf("pgtest: initdb%s: %w\n%s", hint, err, out)
	}
	return nil
}

// settingName matches what may appear left of "=" in postgresql.conf,
// including custom "extension.name" settings.
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$`)

// configure appends to postgresql.conf (later lines win, so user settings
// come last) and replaces pg_hba.conf. The port is given on the command
// line instead, since it may change between attempts.
func (c *Cluster) configure(settings map[string]string, certFile, keyFile string) error {
	var b strings.Builder
	b.WriteString("\n# Added by fleproxy internal/pgtest.\n")
	add := func(name, value string) { fmt.Fprintf(&b, "%s = %s\n", name, confQuote(value)) }
	add("listen_addresses", c.Host)
	add("unix_socket_directories", c.SocketDir)
	add("ssl", "on")
	add("ssl_cert_file", certFile)
	add("ssl_key_file", keyFile)
	// Durability is worthless for a cluster deleted after the test.
	add("fsync", "off")
	add("synchronous_commit", "off")
	add("full_page_writes", "off")
	add("shared_buffers", "64MB")
	add("max_connections", "200")
	add("log_line_prefix", "%m [%p] %q%u@%d ")
	if len(settings) > 0 {
		b.WriteString("# Options.Settings\n")
		for _, name := range slices.Sorted(maps.Keys(settings)) {
			add(name, settings[name])
		}
	}
	conf, err := os.OpenFile(filepath.Join(c.dataDir(), "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if _, err := conf.WriteString(b.String()); err != nil {
		conf.Close()
		return fmt.Errorf("pgtest: write postgresql.conf: %w", err)
	}
	if err := conf.Close(); err != nil {
		return fmt.Errorf("pgtest: write postgresql.conf: %w", err)
	}
	// WriteFile keeps the owner and mode initdb gave the file.
	if err := os.WriteFile(filepath.Join(c.dataDir(), "pg_hba.conf"), []byte(hbaConf), 0o600); err != nil {
		return fmt.Errorf("pgtest: write pg_hba.conf: %w", err)
	}
	return nil
}

// confQuote quotes a postgresql.conf value. Inside quotes the file's parser
// (GUC_scanstr) treats backslash as an escape and a doubled quote as a
// quote; see "Parameter Interaction via the Configuration File".
func confQuote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`, "\n", `\n`, "\r", `\r`)
	return "'" + r.Replace(v) + "'"
}

// errPortInUse marks a start attempt that lost its port to another process.
var errPortInUse = errors.New("port already in use")

// launch starts the postmaster on port and waits until it accepts
// connections on its socket.
func (c *Cluster) launch(ctx context.Context, u osUser, port int, serverLog io.Writer) error {
	logStart := fileSize(c.LogFile)
	cmd := u.command(context.Background(), c.Dir, c.Bin("postgres"), "-D", c.dataDir(), "-p", strconv.Itoa(port))
	cmd.Stdout = serverLog
	cmd.Stderr = serverLog
	// Backends inherit the log pipe when serverLog is not a file; do not
	// let a straggler hold up Stop.
	cmd.WaitDelay = 2 * time.Second
	setParentDeathSignal(cmd.SysProcAttr)
	srv, err := startServer(cmd)
	if err != nil {
		return err
	}
	c.srv = srv

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		pingCtx, pingCancel := context.WithTimeout(ctx, 2*time.Second)
		lastErr = c.ping(pingCtx, port)
		pingCancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-srv.exited:
			if strings.Contains(c.logSince(logStart), "Address already in use") {
				return fmt.Errorf("pgtest: 127.0.0.1:%d: %w", port, errPortInUse)
			}
			return fmt.Errorf("pgtest: postgres exited during start-up (%v); server log:\n%s", srv.err, c.logTail())
		case <-ctx.Done():
			return fmt.Errorf("pgtest: postgres did not accept connections: %w (last attempt: %v); server log:\n%s",
				ctx.Err(), lastErr, c.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ping connects through the Unix-domain socket, which only our server can
// own, so a foreign server that took the TCP port cannot answer for it.
func (c *Cluster) ping(ctx context.Context, port int) error {
	conn, err := pgx.Connect(ctx, c.socketConnString(port, "postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// socketConnString is a superuser keyword/value connection string for the
// Unix-domain socket (URLs cannot carry a socket path in the host part).
func (c *Cluster) socketConnString(port int, database string) string {
	return strings.Join([]string{
		kv("host", c.SocketDir),
		kv("port", strconv.Itoa(port)),
		kv("user", SuperUser),
		kv("dbname", database),
		kv("sslmode", "disable"),
	}, " ")
}

func kv(key, value string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return key + "='" + r.Replace(value) + "'"
}

// createRoles makes the roles of roles.go and the database AppDatabase.
func (c *Cluster) createRoles(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.socketConnString(c.Port, "postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: connect as %s: %w", SuperUser, err)
	}
	defer conn.Close(context.Background())
	stmts := []string{
		// The default before PostgreSQL 14 was md5.
		"SET password_encryption = 'scram-sha-256'",
		"CREATE ROLE " + TrustUser + " LOGIN",
		"CREATE ROLE " + PasswordUser + " LOGIN PASSWORD " + quoteLiteral(PasswordUserPassword),
		"CREATE ROLE " + SCRAMUser + " LOGIN PASSWORD " + quoteLiteral(SCRAMUserPassword),
		"CREATE ROLE " + AppUser + " LOGIN PASSWORD " + quoteLiteral(AppPassword),
		// With a SCRAM verifier stored, the md5 method silently runs SCRAM
		// instead ("Password Authentication" in the manual), so store an
		// MD5 hash.
		"SET password_encryption = 'md5'",
		"CREATE ROLE " + MD5User + " LOGIN PASSWORD " + quoteLiteral(MD5UserPassword),
		"RESET password_encryption",
	}
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("pgtest: %s: %w", strings.SplitN(stmt, " PASSWORD ", 2)[0], err)
		}
	}
	return c.CreateDatabase(ctx, AppDatabase)
}

// quoteLiteral quotes s as an SQL string literal, relying on
// standard_conforming_strings (on by default since PostgreSQL 9.1).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// CreateDatabase creates database name set up like AppDatabase: owned by
// AppUser, with the other test roles allowed to connect and to create
// tables in schema public (PostgreSQL 15 no longer lets PUBLIC create
// there).
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	ident := pgx.Identifier{name}.Sanitize()
	conn, err := pgx.Connect(ctx, c.socketConnString(c.Port, "postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: connect as %s: %w", SuperUser, err)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+ident+" OWNER "+AppUser)
	conn.Close(context.Background())
	if err != nil {
		return fmt.Errorf("pgtest: create database %s: %w", ident, err)
	}

	db, err := pgx.Connect(ctx, c.socketConnString(c.Port, name))
	if err != nil {
		return fmt.Errorf("pgtest: connect to new database %s: %w", ident, err)
	}
	defer db.Close(context.Background())
	for _, stmt := range []string{
		"GRANT CONNECT ON DATABASE " + ident + " TO " + grantees,
		"GRANT CREATE ON SCHEMA public TO " + grantees,
	} {
		if _, err := db.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("pgtest: %s: %w", stmt, err)
		}
	}
	return nil
}

// Stop shuts the server down immediately and removes Dir. Calling it again
// does nothing and returns nil.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	var errs []error
	if c.srv != nil {
		if err := c.srv.stop(stopTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	if c.logFile != nil {
		c.logFile.Close()
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("pgtest: %w", err))
	}
	return errors.Join(errs...)
}

// Addr returns the server's TCP address, "127.0.0.1:PORT".
func (c *Cluster) Addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// ConnString returns a postgres:// URL for user on database over TCP with
// sslmode=disable. An empty password is left out.
func (c *Cluster) ConnString(user, password, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(user),
		Host:     c.Addr(),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}

// Bin returns the full path of a PostgreSQL program such as psql or
// pgbench.
func (c *Cluster) Bin(name string) string {
	return filepath.Join(c.BinDir, name)
}

func fileSize(name string) int64 {
	fi, err := os.Stat(name)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (c *Cluster) logSince(offset int64) string {
	data, err := os.ReadFile(c.LogFile)
	if err != nil || offset > int64(len(data)) {
		return ""
	}
	return string(data[offset:])
}

// logTail returns the last lines of the server log, for error messages.
func (c *Cluster) logTail() string {
	const maxLines = 40
	lines := strings.Split(strings.TrimRight(c.logSince(0), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}

// freePort asks the kernel for an unused port. Another process may take it
// before postgres binds it; Start then tries again.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	return port, nil
}
