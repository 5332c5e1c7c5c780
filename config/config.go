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
	// Audit configures the audit stream (identities, plaintext revealed, refusals).
	Audit Audit `yaml:"audit"`
}

// Audit configures the audit log: a zerolog JSON stream separate from the operational log, with
// one record per session identity, per result that revealed plaintext, and per refused or denied
// statement; never a value.
type Audit struct {
	// Output is stdout (default), stderr, or a file path (appended, created with mode 0600).
	Output string `yaml:"output"`
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
	// whoever reads the file can unwrap every data key). Exclusive with Vault.
	KEKFile string `yaml:"kek_file"`
	// Vault makes a key of Vault's Transit engine the key-encryption key, for production: it
	// never leaves Vault. Exclusive with KEKFile.
	Vault *Vault `yaml:"vault"`
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

// Vault is the Vault Transit KEK (package keys, VaultTransitKEK). Fields left empty fall back to
// the environment variables the Vault CLI reads: VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT,
// VAULT_TLS_SERVER_NAME, VAULT_SKIP_VERIFY, VAULT_CLIENT_TIMEOUT, VAULT_MAX_RETRIES and, for the
// token method without token_file, VAULT_TOKEN.
type Vault struct {
	// Address is Vault's URL (default VAULT_ADDR, else https://127.0.0.1:8200).
	Address string `yaml:"address"`
	// Namespace is the Vault Enterprise namespace (default VAULT_NAMESPACE).
	Namespace string `yaml:"namespace"`
	// Mount is where the Transit engine is mounted (default "transit").
	Mount string `yaml:"mount"`
	// Key is the Transit key (type aes256-gcm96, not derived) that wraps the keyrings. Required.
	Key string `yaml:"key"`
	// Timeout bounds every request to Vault (default VAULT_CLIENT_TIMEOUT, else 10s).
	Timeout time.Duration `yaml:"timeout"`
	// TLS verifies Vault's certificate.
	TLS VaultTLS `yaml:"tls"`
	// Auth is how the proxy gets its Vault token.
	Auth VaultAuth `yaml:"auth"`
}

// VaultTLS configures HTTPS to Vault.
type VaultTLS struct {
	// CAFile is a PEM bundle of the CAs that sign Vault's certificate (default VAULT_CACERT).
	CAFile string `yaml:"ca_file"`
	// ServerName is the name verified in Vault's certificate (default: the host of Address).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify turns verification off: tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Vault auth methods.
const (
	VaultAuthToken      = "token"
	VaultAuthAppRole    = "approle"
	VaultAuthKubernetes = "kubernetes"
)

// VaultAuth is the Vault auth method. The token is renewed while Vault allows, and a new login
// is made when it cannot be.
type VaultAuth struct {
	// Method is token (default), approle or kubernetes.
	Method string `yaml:"method"`
	// TokenFile (token) holds the token, re-read at each re-login (default: VAULT_TOKEN).
	TokenFile string `yaml:"token_file"`
	// RoleID and SecretIDFile (approle) are the AppRole credentials.
	RoleID       string `yaml:"role_id"`
	SecretIDFile string `yaml:"secret_id_file"`
	// Role (kubernetes) is the Vault role; JWTFile the service-account token (default
	// /var/run/secrets/kubernetes.io/serviceaccount/token).
	Role    string `yaml:"role"`
	JWTFile string `yaml:"jwt_file"`
	// Mount is the auth method's path (default: approle or kubernetes, as the method).
	Mount string `yaml:"mount"`
}

// setDefaults fills the defaults that do not depend on the environment.
func (v *Vault) setDefaults() {
	if v.Mount == "" {
		v.Mount = "transit"
	}
	if v.Auth.Method == "" {
		v.Auth.Method = VaultAuthToken
	}
	if v.Auth.Method == VaultAuthKubernetes && v.Auth.JWTFile == "" {
		v.Auth.JWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	}
}

// validate checks the Vault section; errors name the fields as the file does.
func (v *Vault) validate() []error {
	var errs []error
	if v.Key == "" {
		errs = append(errs, errors.New("encryption.vault.key is required: the Transit key that wraps the keyrings"))
	}
	if v.Timeout < 0 {
		errs = append(errs, errors.New("encryption.vault.timeout must not be negative"))
	}
	a := v.Auth
	var stray []string
	switch a.Method {
	case "", VaultAuthToken:
		if a.RoleID != "" || a.SecretIDFile != "" || a.Role != "" || a.JWTFile != "" || a.Mount != "" {
			stray = append(stray, "role_id, secret_id_file, role, jwt_file and mount")
		}
	case VaultAuthAppRole:
		if a.RoleID == "" || a.SecretIDFile == "" {
			errs = append(errs, errors.New("encryption.vault.auth: method approle needs role_id and secret_id_file"))
		}
		if a.TokenFile != "" || a.Role != "" || a.JWTFile != "" {
			stray = append(stray, "token_file, role and jwt_file")
		}
	case VaultAuthKubernetes:
		if a.Role == "" {
			errs = append(errs, errors.New("encryption.vault.auth: method kubernetes needs role"))
		}
		if a.TokenFile != "" || a.RoleID != "" || a.SecretIDFile != "" {
			stray = append(stray, "token_file, role_id and secret_id_file")
		}
	default:
		errs = append(errs, fmt.Errorf("encryption.vault.auth.method: %q is not token, approle or kubernetes", a.Method))
	}
	if stray != nil {
		errs = append(errs, fmt.Errorf("encryption.vault.auth: %s do not apply to method %s", stray[0], a.Method))
	}
	return errs
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
	// with a FATAL 08P01 error. Default 64 MiB. A message that carries protected values is held
	// and converted in memory, a few times its size, so this bounds the proxy's memory per
	// session.
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
			MaxMessageBytes: 64 << 20,
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
	if c.Encryption.Vault != nil {
		c.Encryption.Vault.setDefaults()
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
		switch {
		case e.KEKFile == "" && e.Vault == nil:
			errs = append(errs, errors.New("encryption.vault (or, for development, encryption.kek_file) is required with encryption.policy"))
		case e.KEKFile != "" && e.Vault != nil:
			errs = append(errs, errors.New("encryption.kek_file and encryption.vault are exclusive: the local file KEK is for development, Vault for production"))
		}
		if e.KeyStore != "database" && !strings.HasPrefix(e.KeyStore, "dir:") {
			errs = append(errs, fmt.Errorf("encryption.key_store: %q is not \"database\" or \"dir:PATH\"", e.KeyStore))
		}
		if e.RefreshInterval < time.Second {
			errs = append(errs, errors.New("encryption.refresh_interval must be at least 1s"))
		}
	}
	if v := c.Encryption.Vault; v != nil {
		errs = append(errs, v.validate()...)
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
