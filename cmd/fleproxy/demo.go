package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleproxy/fleproxy/config"
	"github.com/fleproxy/fleproxy/internal/pgtest"
	"github.com/fleproxy/fleproxy/proxy"
)

func newDemoCommand() *cobra.Command {
	var logFormat string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a throwaway PostgreSQL and the proxy, and run a psql session through it",
		Long: `Start a throwaway PostgreSQL cluster (Debian's PostgreSQL 15 binaries), start the proxy in
front of it, run a psql session through the proxy, print what it showed, and clean up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), logFormat)
		},
	}
	cmd.Flags().StringVar(&logFormat, "log-format", "console", "proxy log format: json or console")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, logFormat string) error {
	fmt.Fprintln(out, "== starting a throwaway PostgreSQL cluster")
	cluster, err := pgtest.Start(ctx, pgtest.Options{})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	fmt.Fprintf(out, "   PostgreSQL listens on %s (data in %s)\n", cluster.Addr(), cluster.Dir)

	log, err := newLogger(os.Stderr, config.Log{Level: "info", Format: logFormat})
	if err != nil {
		return err
	}
	srv, err := proxy.NewServer(proxy.Config{UpstreamAddr: cluster.Addr(), ShutdownTimeout: 2 * time.Second, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(pctx, ln) }()
	defer func() { stop(); <-done }()
	fmt.Fprintf(out, "== fleproxy listens on %s and forwards to %s\n", ln.Addr(), cluster.Addr())

	host, port, _ := net.SplitHostPort(ln.Addr().String())
	script := `\echo connected through fleproxy as :USER
select version();
create table greeting (id int primary key, word text);
insert into greeting values (1, 'hello'), (2, 'world');
select string_agg(word, ' ' order by id) as message from greeting;
select 1/0;
\echo the error above came from PostgreSQL, through the proxy
`
	c := exec.CommandContext(ctx, cluster.Bin("psql"), "-X", "-h", host, "-p", port, "-U", pgtest.AppUser, "-d", pgtest.AppDatabase)
	c.Env = append(os.Environ(), "PGPASSWORD="+pgtest.AppPassword, "PGSSLMODE=disable")
	c.Stdin = strings.NewReader(script)
	c.Stdout, c.Stderr = out, out
	fmt.Fprintf(out, "== psql -h %s -p %s -U %s %s\n", host, port, pgtest.AppUser, pgtest.AppDatabase)
	if err := c.Run(); err != nil {
		return fmt.Errorf("psql through the proxy: %w", err)
	}
	fmt.Fprintln(out, "== done; stopping the proxy and the cluster")
	return nil
}
