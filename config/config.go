// Package config reads fleproxy's YAML configuration file: where to listen, which database to
// forward to, TLS on each side, limits and logging. Decoding is strict: an unknown field is an
// error naming its line, so a misspelt setting never silently falls back to a default.
//
// The policy (which columns are protected, who is cleared) lives in its own file, read by package
// policy; this file only points at it.
package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file. The zero value is not valid; use Default and then
// decode over it, or Load.
type Config struct {
	// Listen is the client-facing address, host:port.
	Listen string `yaml:"listen"`
	// Upstream is the PostgreSQL server the proxy forwards to.
	Upstream Upstream `yaml:"upstream"`
	// ClientTLS configures TLS towards clients (SSLRequest answered 'S' when set).
	ClientTLS ClientTLS `yaml:"client_tls"`
	// Limits bound what one client may make the proxy hold or wait for.
	Limits Limits `yaml:"limits"`
	// Log configures the operational log.
	Log Log `yaml:"log"`
	// Encryption names the policy and where the keys are. Without a policy the proxy only
	// forwards.
	Encryption Encryption `yaml:"encryption"`
}

// Encryption configures field-level encryption.
type Encryption struct {
	// Policy is the policy file (package policy). Empty: no encryption, pure pass-through.
	Policy string `yaml:"policy"`
	// Service is the connection the proxy itself opens to the protected database, to read the
	// catalog and the wrapped keyrings: a libpq-style connection string or URL. Its password may
	// also come from PGPASSWORD or a pgpass file, as libpq's. Clients may connect only to this
	// connection's database: the policy describes that database.
	Service string `yaml:"service"`
	// KEKFile is the local key-encryption key created by `fleproxy keys init` (development only:
	// whoever reads the file can unwrap every data key).
	KEKFile string `yaml:"kek_file"`
	// KeyStore is where wrapped keyrings live: "database" (table fleproxy.keyrings in the
	// protected database, shared by every replica; the default) or "dir:PATH" (JSON files, one
	// node only).
	KeyStore string `yaml:"key_store"`
	// RefreshInterval is how often the proxy re-reads the catalog and the keyrings, so that DDL
	// and key rotations made elsewhere are picked up (default 30s).
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// AllowMissingTables lets the proxy start while tables the policy names do not exist yet (a
	// fresh database whose schema will be created through the proxy). Their columns are
	// protected by name from the start. Missing columns of existing tables are still errors.
	AllowMissingTables bool `yaml:"allow_missing_tables"`
}

// Upstream is the database side of the proxy.
type Upstream struct {
	// Address is host:port of the PostgreSQL server.
	Address string `yaml:"address"`
	// ConnectTimeout bounds the TCP connect and TLS handshake to the server.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// TLS to the server, independent of TLS to the client.
	TLS UpstreamTLS `yaml:"tls"`
}

// Upstream TLS modes, named as libpq's sslmode values they behave like.
const (
	UpstreamTLSDisable    = "disable"     // never TLS
	UpstreamTLSRequire    = "require"     // TLS, server certificate not verified
	UpstreamTLSVerifyCA   = "verify-ca"   // TLS, chain verified against CAFile, name not checked
	UpstreamTLSVerifyFull = "verify-full" // TLS, chain and host name verified
)

// UpstreamTLS is TLS from the proxy to the PostgreSQL server.
type UpstreamTLS struct {
	// Mode is one of disable, require, verify-ca, verify-full (default disable).
	Mode string `yaml:"mode"`
	// CAFile is a PEM bundle of the CAs that may sign the server certificate (verify-ca, verify-full).
	CAFile string `yaml:"ca_file"`
	// ServerName is the name verified in verify-full mode (default: the host of Address).
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile, if set, are a client certificate presented to the server.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Client certificate modes for ClientTLS.ClientCert.
const (
	ClientCertNone     = "none"     // no client certificate requested
	ClientCertOptional = "optional" // verified against ClientCAFile if the client sends one
	ClientCertRequire  = "require"  // the client must send one that verifies
)

// ClientTLS is TLS between clients and the proxy. TLS terminates at the proxy; the verified client
// certificate becomes part of the caller's identity.
type ClientTLS struct {
	// CertFile and KeyFile are the proxy's server certificate and key (PEM). Empty: no TLS to clients.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile is a PEM bundle of CAs that sign client certificates (mTLS).
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientCert is none, optional or require (default: optional when ClientCAFile is set, else none).
	ClientCert string `yaml:"client_cert"`
	// Required refuses clients that do not negotiate TLS.
	Required bool `yaml:"required"`
}

// Limits bound per-connection resources.
type Limits struct {
	// MaxMessageBytes is the largest client message body accepted; a larger one ends the session
	// with a FATAL 08P01 error. Default 256 MiB.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// StartupTimeout bounds the start-up phase: TLS handshake, start-up packet and authentication.
	StartupTimeout time.Duration `yaml:"startup_timeout"`
	// MaxConnections caps concurrent client connections (0: no cap).
	MaxConnections int `yaml:"max_connections"`
	// ShutdownTimeout is how long a graceful shutdown waits for sessions to end before closing them.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Log configures the operational log (github.com/rs/zerolog).
type Log struct {
	// Level is trace, debug, info, warn or error (default info).
	Level string `yaml:"level"`
	// Format is json (default) or console.
	Format string `yaml:"format"`
}

// Default returns the configuration used for fields a file leaves out.
func Default() Config {
	return Config{
		Listen: "127.0.0.1:6432",
		Upstream: Upstream{
			Address:        "127.0.0.1:5432",
			ConnectTimeout: 10 * time.Second,
			TLS:            UpstreamTLS{Mode: UpstreamTLSDisable},
		},
		Limits: Limits{
			MaxMessageBytes: 256 << 20,
			StartupTimeout:  30 * time.Second,
			ShutdownTimeout: 30 * time.Second,
		},
		Log:        Log{Level: "info", Format: "json"},
		Encryption: Encryption{KeyStore: "database", RefreshInterval: 30 * time.Second},
	}
}

// Load reads and validates the file at path over Default.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes data (named source in errors) over Default and validates the result. Unknown
// fields are errors.
func Parse(data []byte, source string) (Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("config %s: %w", source, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", source, err)
	}
	return c, nil
}

// Validate checks the values that do not need the file system or the network.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port", c.Listen))
	}
	if _, _, err := net.SplitHostPort(c.Upstream.Address); err != nil {
		errs = append(errs, fmt.Errorf("upstream.address: %q is not host:port", c.Upstream.Address))
	}
	switch c.Upstream.TLS.Mode {
	case UpstreamTLSDisable, UpstreamTLSRequire:
	case UpstreamTLSVerifyCA, UpstreamTLSVerifyFull:
		if c.Upstream.TLS.CAFile == "" {
			errs = append(errs, fmt.Errorf("upstream.tls.ca_file is required for mode %s", c.Upstream.TLS.Mode))
		}
	default:
		errs = append(errs, fmt.Errorf("upstream.tls.mode: %q is not one of disable, require, verify-ca, verify-full", c.Upstream.TLS.Mode))
	}
	if (c.Upstream.TLS.CertFile == "") != (c.Upstream.TLS.KeyFile == "") {
		errs = append(errs, errors.New("upstream.tls: cert_file and key_file go together"))
	}
	ct := c.ClientTLS
	if (ct.CertFile == "") != (ct.KeyFile == "") {
		errs = append(errs, errors.New("client_tls: cert_file and key_file go together"))
	}
	if ct.CertFile == "" && (ct.Required || ct.ClientCAFile != "" || (ct.ClientCert != "" && ct.ClientCert != ClientCertNone)) {
		errs = append(errs, errors.New("client_tls: required, client_ca_file and client_cert need cert_file and key_file"))
	}
	switch ct.ClientCert {
	case "", ClientCertNone:
	case ClientCertOptional, ClientCertRequire:
		if ct.ClientCAFile == "" {
			errs = append(errs, fmt.Errorf("client_tls.client_cert %s needs client_ca_file", ct.ClientCert))
		}
	default:
		errs = append(errs, fmt.Errorf("client_tls.client_cert: %q is not one of none, optional, require", ct.ClientCert))
	}
	if c.Limits.MaxMessageBytes < 1024 {
		errs = append(errs, fmt.Errorf("limits.max_message_bytes: %d is below the minimum of 1024", c.Limits.MaxMessageBytes))
	}
	if c.Limits.StartupTimeout <= 0 {
		errs = append(errs, errors.New("limits.startup_timeout must be positive"))
	}
	if c.Upstream.ConnectTimeout <= 0 {
		errs = append(errs, errors.New("upstream.connect_timeout must be positive"))
	}
	if c.Limits.MaxConnections < 0 {
		errs = append(errs, errors.New("limits.max_connections must not be negative"))
	}
	if e := c.Encryption; e.Policy != "" {
		if e.Service == "" {
			errs = append(errs, errors.New("encryption.service is required with encryption.policy"))
		}
		if e.KEKFile == "" {
			errs = append(errs, errors.New("encryption.kek_file is required with encryption.policy"))
		}
		if e.KeyStore != "database" && !strings.HasPrefix(e.KeyStore, "dir:") {
			errs = append(errs, fmt.Errorf("encryption.key_store: %q is not \"database\" or \"dir:PATH\"", e.KeyStore))
		}
		if e.RefreshInterval < time.Second {
			errs = append(errs, errors.New("encryption.refresh_interval must be at least 1s"))
		}
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not json or console", c.Log.Format))
	}
	return errors.Join(errs...)
}

// ClientTLSConfig builds the TLS configuration for client connections, or nil when client TLS is
// not configured. It reads the certificate, key and CA files.
func (c *Config) ClientTLSConfig() (*tls.Config, error) {
	ct := c.ClientTLS
	if ct.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(ct.CertFile, ct.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("client_tls: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if ct.ClientCAFile != "" {
		pool, err := loadPool(ct.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client_tls.client_ca_file: %w", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if ct.ClientCert == ClientCertRequire {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}

// UpstreamTLSConfig builds the TLS configuration towards the server, or nil for mode disable.
func (c *Config) UpstreamTLSConfig() (*tls.Config, error) {
	ut := c.Upstream.TLS
	if ut.Mode == UpstreamTLSDisable {
		return nil, nil
	}
	host, _, _ := net.SplitHostPort(c.Upstream.Address)
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if ut.ServerName != "" {
		tc.ServerName = ut.ServerName
	}
	if ut.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(ut.CertFile, ut.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	switch ut.Mode {
	case UpstreamTLSRequire:
		// libpq's sslmode=require: encryption without verifying the server's identity.
		tc.InsecureSkipVerify = true
	case UpstreamTLSVerifyFull:
		pool, err := loadPool(ut.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.tls.ca_file: %w", err)
		}
		tc.RootCAs = pool
	case UpstreamTLSVerifyCA:
		pool, err := loadPool(ut.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.tls.ca_file: %w", err)
		}
		// Chain verification without the host name check, as libpq's verify-ca.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("upstream sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool()}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	return tc, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
