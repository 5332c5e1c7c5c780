package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/fleproxy/fleproxy/config"
	"github.com/fleproxy/fleproxy/internal/pgtest"
	"github.com/fleproxy/fleproxy/internal/testcerts"
	"github.com/fleproxy/fleproxy/proxy"
)

// Roles of the quickstart: a U.S. service cleared for plaintext and a Singapore operator who is not.
const (
	demoUSRole          = "us_service"
	demoUSPassword      = "us-service-secret"
	demoSupportRole     = "us_support"
	demoSupportPassword = "us-support-secret"
	demoSGRole          = "sg_operator"
	demoSGPassword      = "sg-operator-secret"
	demoDatabase        = "pagila"
)

func newDemoCommand() *cobra.Command {
	var (
		logFormat string
		dir       string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the quickstart: pagila loaded through the proxy, seen by a cleared and an uncleared role",
		Long: `Run the quickstart on the pagila sample database:

  1. start a throwaway PostgreSQL 15 cluster and create the roles us_service (cleared for
     plaintext over mutual TLS by examples/quickstart/policy.yaml), us_support (masks) and
     sg_operator (not cleared);
  2. create a development key-encryption key and the "pii" keyring (fleproxy keys init);
  3. start fleproxy with the quickstart policy, which protects customer.email and
     address.address, address2, phone and postal_code;
  4. load the unmodified pagila schema and data through the proxy with psql;
  5. install the CHECK constraints that reject anything but ciphertext in those columns;
  6. print the same rows as us_service (mTLS: plaintext), us_support (masks), sg_operator and
     us_service without its certificate (ciphertext) see them through the proxy, and as they are
     stored in the database.

Everything is removed at the end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), dir, logFormat)
		},
	}
	cmd.Flags().StringVar(&logFormat, "log-format", "console", "proxy log format: json or console")
	cmd.Flags().StringVar(&dir, "examples", "examples/quickstart", "directory holding policy.yaml and pagila/")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, examples string, logFormat string) error {
	step := func(format string, args ...any) { fmt.Fprintf(out, "\n== "+format+"\n", args...) }
	policyFile := filepath.Join(examples, "policy.yaml")
	schemaFile := filepath.Join(examples, "pagila", "pagila-schema.sql")
	dataFile := filepath.Join(examples, "pagila", "pagila-data.sql")
	for _, f := range []string{policyFile, schemaFile, dataFile} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w (run the demo from the repository's top directory, or pass --examples)", err)
		}
	}

	step("starting a throwaway PostgreSQL cluster")
	cluster, err := pgtest.Start(ctx, pgtest.Options{})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	fmt.Fprintf(out, "   PostgreSQL listens on %s\n", cluster.Addr())
	if err := demoRoles(ctx, cluster); err != nil {
		return err
	}

	work, err := os.MkdirTemp("", "fleproxy-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	enc := config.Default().Encryption
	enc.Policy = policyFile
	enc.Service = cluster.ConnString(pgtest.SuperUser, "", demoDatabase)
	enc.KEKFile = filepath.Join(work, "kek.json")
	enc.AllowMissingTables = true // the schema is created through the proxy below

	step("creating the keys (fleproxy keys init)")
	if err := initKeys(ctx, enc, out); err != nil {
		return err
	}

	step("starting fleproxy with %s", policyFile)
	log, err := newLogger(os.Stderr, config.Log{Level: "warn", Format: logFormat})
	if err != nil {
		return err
	}
	e, err := openEncryption(ctx, enc, true)
	if err != nil {
		return err
	}
	defer e.close()
	pki, err := demoPKI(work)
	if err != nil {
		return err
	}
	pcfg := proxy.Config{UpstreamAddr: cluster.Addr(), ShutdownTimeout: 2 * time.Second, Logger: log, ClientTLS: pki.serverTLS}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	if _, err := e.enable(pctx, &pcfg, enc, log, zerolog.Nop()); err != nil {
		return err
	}
	srv, err := proxy.NewServer(pcfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(pctx, ln) }()
	defer func() { stop(); <-done }()
	proxyAddr := ln.Addr().String()
	fmt.Fprintf(out, "   fleproxy listens on %s; protected: ", proxyAddr)
	for i, c := range e.policy.Columns() {
		if i > 0 {
			fmt.Fprint(out, ", ")
		}
		fmt.Fprint(out, c.Name)
	}
	fmt.Fprintf(out, "; cleared: %s\n", strings.Join(e.policy.ClearedRoles(), ", "))

	step("loading the unmodified pagila schema and data through the proxy (psql -f)")
	start := time.Now()
	for _, f := range []string{schemaFile, dataFile} {
		if err := demoPsql(ctx, cluster, proxyAddr, f); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "   loaded in %.1fs\n", time.Since(start).Seconds())
	if _, err := e.pool.Exec(ctx, fmt.Sprintf("grant select, insert, update, delete on all tables in schema public to %s, %s, %s", demoUSRole, demoSupportRole, demoSGRole)); err != nil {
		return err
	}

	step("installing the CHECK constraints that admit only ciphertext (fleproxy policy constraints --apply)")
	if err := applyConstraints(ctx, e.pool, e.policy, out); err != nil {
		return err
	}

	direct := cluster.ConnString(pgtest.SuperUser, "", demoDatabase)
	viaProxy := func(role, password string) string {
		u := url.URL{Scheme: "postgres", Host: proxyAddr, Path: "/" + demoDatabase, User: url.UserPassword(role, password), RawQuery: "sslmode=disable"}
		return u.String()
	}
	viaMTLS := func(role, password string) string {
		q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {pki.caFile}, "sslcert": {pki.clientCert}, "sslkey": {pki.clientKey}}
		u := url.URL{Scheme: "postgres", Host: proxyAddr, Path: "/" + demoDatabase, User: url.UserPassword(role, password), RawQuery: q.Encode()}
		return u.String()
	}
	views := []struct{ who, conn string }{
		{demoUSRole + " through fleproxy with its U.S. client certificate (identity us-service: plaintext)", viaMTLS(demoUSRole, demoUSPassword)},
		{demoSupportRole + " through fleproxy with a U.S. certificate (identity us-support: phone masked, postal code hidden)", viaMTLS(demoSupportRole, demoSupportPassword)},
		{demoSGRole + " through fleproxy from Singapore (identity everyone-else: ciphertext)", viaProxy(demoSGRole, demoSGPassword)},
		{demoUSRole + " through fleproxy without its certificate (mTLS required for plaintext: ciphertext)", viaProxy(demoUSRole, demoUSPassword)},
		{"directly in PostgreSQL (at rest: ciphertext)", direct},
	}
	queries := []string{
		"select customer_id, first_name, last_name, email from customer order by customer_id limit 3",
		"select address_id, address, district, postal_code, phone from address where address_id between 5 and 7 order by address_id",
	}
	for _, q := range queries {
		step("%s", q)
		for _, v := range views {
			fmt.Fprintf(out, "-- %s\n", v.who)
			if err := demoQuery(ctx, out, v.conn, q); err != nil {
				return err
			}
		}
	}

	step("the quickstart's views: plain references to protected columns decrypt like the columns")
	if err := demoQuery(ctx, out, viaMTLS(demoUSRole, demoUSPassword), "select id, name, phone, city from customer_list order by id limit 2"); err != nil {
		return err
	}

	step("fail closed: what the proxy cannot map is refused, never forwarded with plaintext")
	for _, q := range []string{
		"update customer set email = upper('mary.smith@example.com') where customer_id = 1",
		"select customer_id from customer where email = 'MARY.SMITH@sakilacustomer.org'",
	} {
		err := demoQuery(ctx, io.Discard, viaMTLS(demoUSRole, demoUSPassword), q)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return fmt.Errorf("expected the proxy to refuse %q, got %v", q, err)
		}
		fmt.Fprintf(out, "%s\n   -> ERROR %s: %s\n", q, pe.Code, pe.Message)
	}
	err = demoQuery(ctx, io.Discard, direct, "update customer set email = 'plaintext@example.com' where customer_id = 1")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23514" {
		return fmt.Errorf("expected the CHECK constraint to refuse plaintext written directly, got %v", err)
	}
	fmt.Fprintf(out, "a direct write of plaintext, bypassing the proxy\n   -> ERROR %s: %s\n", pe.Code, pe.Message)

	step("done; stopping the proxy and the cluster")
	return nil
}

// demoRoles creates the quickstart's roles and database.
func demoRoles(ctx context.Context, cluster *pgtest.Cluster) error {
	conn, err := pgx.Connect(ctx, cluster.ConnString(pgtest.SuperUser, "", "postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{
		fmt.Sprintf("create role %s login password '%s'", demoUSRole, demoUSPassword),
		fmt.Sprintf("create role %s login password '%s'", demoSupportRole, demoSupportPassword),
		fmt.Sprintf("create role %s login password '%s'", demoSGRole, demoSGPassword),
		"create database " + demoDatabase,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", strings.Fields(stmt)[1], err)
		}
	}
	return nil
}

// demoPsql runs a SQL file through the proxy with psql as the database owner.
func demoPsql(ctx context.Context, cluster *pgtest.Cluster, proxyAddr, file string) error {
	host, port, _ := net.SplitHostPort(proxyAddr)
	c := exec.CommandContext(ctx, cluster.Bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", pgtest.SuperUser, "-d", demoDatabase, "-f", file)
	c.Env = append(os.Environ(), "PGSSLMODE=disable")
	outb, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("psql -f %s through the proxy: %w\n%s", file, err, outb)
	}
	return nil
}

// demoQuery prints a query's result as an aligned table.
func demoQuery(ctx context.Context, out io.Writer, connString, query string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, query, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return err
	}
	defer rows.Close()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	var header []string
	for _, fd := range rows.FieldDescriptions() {
		header = append(header, fd.Name)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for rows.Next() {
		vals := rows.RawValues()
		cells := make([]string, len(vals))
		for i, v := range vals {
			s := string(v)
			if v == nil {
				s = "NULL"
			}
			if len(s) > 44 {
				s = s[:41] + "..."
			}
			cells[i] = s
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tw.Flush()
}

// demoPKIFiles are the quickstart's certificates: a U.S. client CA that signs the proxy's server
// certificate and the billing service's client certificate (SPIFFE ID in its SAN).
type demoPKIFiles struct {
	serverTLS                     *tls.Config
	caFile, clientCert, clientKey string
}

func demoPKI(dir string) (*demoPKIFiles, error) {
	ca, err := testcerts.NewCA("pagila.example U.S. clients (demo)")
	if err != nil {
		return nil, err
	}
	server, err := ca.Issue(testcerts.Leaf{CommonName: "fleproxy", DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return nil, err
	}
	spiffe, _ := url.Parse("spiffe://pagila.example/us/billing")
	client, err := ca.Issue(testcerts.Leaf{CommonName: "us-billing", URIs: []*url.URL{spiffe}, Client: true})
	if err != nil {
		return nil, err
	}
	f := &demoPKIFiles{caFile: filepath.Join(dir, "us-ca.pem")}
	if err := os.WriteFile(f.caFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if f.clientCert, f.clientKey, err = client.WriteFiles(dir, "us-billing"); err != nil {
		return nil, err
	}
	f.serverTLS = &tls.Config{Certificates: []tls.Certificate{server.TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
	return f, nil
}
