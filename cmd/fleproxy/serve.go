package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/fleproxy/fleproxy/config"
	"github.com/fleproxy/fleproxy/proxy"
)

func newServeCommand() *cobra.Command {
	var (
		configFile string
		listen     string
		upstream   string
		logFormat  string
		logLevel   string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy",
		Long: `Run the proxy: accept PostgreSQL clients on --listen and forward them to --upstream.

Flags override the configuration file, which also holds TLS and limits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Default()
			if configFile != "" {
				var err error
				if cfg, err = config.Load(configFile); err != nil {
					return err
				}
			}
			flags := cmd.Flags()
			if flags.Changed("listen") {
				cfg.Listen = listen
			}
			if flags.Changed("upstream") {
				cfg.Upstream.Address = upstream
			}
			if flags.Changed("log-format") {
				cfg.Log.Format = logFormat
			}
			if flags.Changed("log-level") {
				cfg.Log.Level = logLevel
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log, err := newLogger(cmd.ErrOrStderr(), cfg.Log)
			if err != nil {
				return err
			}
			pcfg, err := proxyConfig(cfg, log)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if cfg.Encryption.Policy != "" {
				enc, err := openEncryption(ctx, cfg.Encryption, true)
				if err != nil {
					return err
				}
				defer enc.close()
				audit, closeAudit, err := newAuditLogger(cfg.Audit)
				if err != nil {
					return err
				}
				defer closeAudit()
				reload, err := enc.enable(ctx, &pcfg, cfg.Encryption, log, audit)
				if err != nil {
					return err
				}
				hup := make(chan os.Signal, 1)
				signal.Notify(hup, syscall.SIGHUP)
				defer signal.Stop(hup)
				go func() {
					for {
						select {
						case <-ctx.Done():
							return
						case <-hup:
							log.Info().Msg("SIGHUP: reloading the policy")
							reload()
						}
					}
				}()
			} else {
				log.Warn().Msg("no encryption.policy configured: forwarding only, nothing is encrypted")
			}
			srv, err := proxy.NewServer(pcfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			err = srv.Serve(ctx, ln)
			log.Info().Msg("stopped")
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML configuration file")
	f.StringVar(&listen, "listen", "", "client-facing address host:port (default 127.0.0.1:6432)")
	f.StringVar(&upstream, "upstream", "", "PostgreSQL server host:port (default 127.0.0.1:5432)")
	f.StringVar(&logFormat, "log-format", "json", "log format: json or console")
	f.StringVar(&logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	return cmd
}

// proxyConfig turns the file configuration into the proxy's, loading certificates.
func proxyConfig(cfg config.Config, log zerolog.Logger) (proxy.Config, error) {
	clientTLS, err := cfg.ClientTLSConfig()
	if err != nil {
		return proxy.Config{}, err
	}
	upstreamTLS, err := cfg.UpstreamTLSConfig()
	if err != nil {
		return proxy.Config{}, err
	}
	return proxy.Config{
		UpstreamAddr:     cfg.Upstream.Address,
		UpstreamTLS:      upstreamTLS,
		ConnectTimeout:   cfg.Upstream.ConnectTimeout,
		ClientTLS:        clientTLS,
		RequireClientTLS: cfg.ClientTLS.Required,
		MaxMessageBytes:  cfg.Limits.MaxMessageBytes,
		StartupTimeout:   cfg.Limits.StartupTimeout,
		MaxConnections:   cfg.Limits.MaxConnections,
		ShutdownTimeout:  cfg.Limits.ShutdownTimeout,
		Logger:           log,
	}, nil
}

// newAuditLogger opens the audit stream: JSON lines to stdout, stderr or a file (appended, mode
// 0600). The returned function closes the file.
func newAuditLogger(c config.Audit) (zerolog.Logger, func(), error) {
	var w io.Writer
	closeFn := func() {}
	switch c.Output {
	case "", "stdout":
		w = os.Stdout
	case "stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(c.Output, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return zerolog.Logger{}, nil, fmt.Errorf("audit.output: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	return zerolog.New(w).With().Timestamp().Str("stream", "audit").Logger(), closeFn, nil
}

// newLogger builds the operational logger: JSON lines by default, a human console format on
// request.
func newLogger(w io.Writer, c config.Log) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(strings.ToLower(c.Level))
	if err != nil || c.Level == "" {
		return zerolog.Logger{}, fmt.Errorf("log level %q: use trace, debug, info, warn or error", c.Level)
	}
	if c.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	// Sessions log from many goroutines; w need not be safe for that (a test's buffer is not).
	return zerolog.New(zerolog.SyncWriter(w)).Level(level).With().Timestamp().Logger(), nil
}
