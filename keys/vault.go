package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// Defaults of [VaultConfig].
const (
	DefaultVaultMount   = "transit"
	DefaultVaultTimeout = 10 * time.Second
	// DefaultVaultJWTFile is where Kubernetes mounts a pod's service-account
	// token.
	DefaultVaultJWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// Vault auth methods for [VaultAuth].Method.
const (
	VaultAuthToken      = "token"
	VaultAuthAppRole    = "approle"
	VaultAuthKubernetes = "kubernetes"
)

// VaultConfig configures a [VaultTransitKEK]. Empty fields fall back to the
// environment variables vault/api's DefaultConfig and NewClient read
// (VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT, VAULT_TLS_SERVER_NAME,
// VAULT_SKIP_VERIFY, VAULT_CLIENT_TIMEOUT, VAULT_MAX_RETRIES, VAULT_TOKEN),
// then to the defaults named below. VAULT_WRAP_TTL is ignored: wrapped
// responses would hide the ciphertexts.
type VaultConfig struct {
	// Address is Vault's URL, e.g. "https://vault.us.internal:8200"
	// (default VAULT_ADDR, else https://127.0.0.1:8200).
	Address string
	// Namespace is the Vault Enterprise namespace (default VAULT_NAMESPACE).
	Namespace string
	// Mount is the path of the Transit secrets engine (default "transit").
	Mount string
	// Key is the name of the Transit key that wraps the keyrings. Required.
	// It must exist, be a symmetric AEAD key (aes256-gcm96, Transit's
	// default, is the one to use) and not be derived.
	Key string
	// Timeout bounds every request to Vault, retries included (default
	// VAULT_CLIENT_TIMEOUT, else 10s).
	Timeout time.Duration
	// TLS configures HTTPS to Vault.
	TLS VaultTLS
	// Auth chooses how fleproxy gets its Vault token.
	Auth VaultAuth
}

// VaultTLS configures how Vault's certificate is verified.
type VaultTLS struct {
	// CAFile is a PEM bundle of the CAs that sign Vault's certificate
	// (default VAULT_CACERT, else the system roots).
	CAFile string
	// ServerName is the name verified in Vault's certificate and sent as SNI
	// (default VAULT_TLS_SERVER_NAME, else the host of Address).
	ServerName string
	// InsecureSkipVerify turns certificate verification off (also
	// VAULT_SKIP_VERIFY). Only for tests: anyone on the path can then read
	// the keys fleproxy sends to Vault.
	InsecureSkipVerify bool
}

// VaultAuth chooses the Vault auth method. The token it yields is renewed
// while it may be, and replaced by a new login when it cannot.
type VaultAuth struct {
	// Method is "token" (the default), "approle" or "kubernetes".
	Method string
	// TokenFile (method token) is a file holding the token, re-read at each
	// re-login so that a token rotated by Vault Agent is picked up
	// (default: VAULT_TOKEN).
	TokenFile string
	// RoleID and SecretIDFile (method approle) are the AppRole credentials;
	// the secret ID is read from the file at each login.
	RoleID       string
	SecretIDFile string
	// Role (method kubernetes) is the Vault role bound to the pod's service
	// account; JWTFile is the service-account token, read at each login
	// (default /var/run/secrets/kubernetes.io/serviceaccount/token).
	Role    string
	JWTFile string
	// Mount is the path of the auth method (default: "approle" or
	// "kubernetes", as the method).
	Mount string
}

// VaultTransitKEK is a [KEK] held in Vault's Transit secrets engine: the
// key never leaves Vault; fleproxy sends keysets to be encrypted or
// decrypted (https://developer.hashicorp.com/vault/api-docs/secret/transit).
// It talks to Vault only through github.com/hashicorp/vault/api.
//
// Wrapped values are Transit ciphertexts, "vault:vN:BASE64", where N is the
// version of the Transit key that made them. Rotating the key in Vault
// (transit/keys/:name/rotate) keeps older values decrypting;
// [VaultTransitKEK.Rewrap] moves
// one to the latest version without the plaintext leaving Vault, and
// [VaultTransitKEK.KeyVersion] tells which version made one.
//
// Associated data is bound inside the encrypted plaintext, not passed as
// Transit's associated_data parameter: Transit's rewrap endpoint takes no
// associated_data (https://github.com/hashicorp/vault/issues/29532), so a
// value wrapped with it could never be rewrapped. What Transit encrypts is
//
//	"fleproxy.kek.v1:" || uint16 big-endian len(ad) || ad || plaintext
//
// and AES-256-GCM authenticates all of it, so Unwrap still fails for other
// associated data, and for any Transit ciphertext that fleproxy did not
// make.
//
// Opening it logs in (or checks the token), checks the key, and starts a
// goroutine that renews the token with vault/api's LifetimeWatcher and logs
// in again when renewal ends (max TTL reached, token not renewable, renewal
// refused); a request that Vault refuses with "invalid token" also triggers
// one new login and is retried once. Nothing is logged, and no error carries
// a token, a plaintext or a wrapped value. A VaultTransitKEK is safe for
// concurrent use.
type VaultTransitKEK struct {
	client  *api.Client
	addr    string
	mount   string
	key     string
	id      string
	timeout time.Duration
	auth    vaultAuthMethod

	loginMu   sync.Mutex       // serializes logins
	newSecret chan *api.Secret // capacity 1: the latest login, for the renewal goroutine

	stop      context.CancelFunc
	done      chan struct{} // closed when the renewal goroutine has ended
	closeOnce sync.Once
}

var _ KEK = (*VaultTransitKEK)(nil)

// vaultFrameMagic starts every plaintext sent to Transit (see
// [VaultTransitKEK]).
const vaultFrameMagic = "fleproxy.kek.v1:"

// vaultPrefix starts every Transit ciphertext (keysutil's "vault:v" + N +
// ":" template).
const vaultPrefix = "vault:v"

// OpenVaultTransitKEK connects to Vault as cfg says, logs in, checks that
// the Transit key exists and can encrypt and decrypt (when the token may
// read transit/keys/:name; without that permission the check is skipped),
// and starts the token renewal goroutine, which runs until ctx ends or
// [VaultTransitKEK.Close] is called. ctx also bounds the opening.
//
// Errors: one matching [ErrKEKUnavailable] if Vault cannot be reached, is
// sealed or does not answer in time; a [*VaultError] naming the login path
// if Vault refuses the credentials (403, matching [ErrKEKPermissionDenied],
// for a bad token or Kubernetes JWT; 400 "invalid role or secret ID" for
// AppRole); one matching [ErrNotFound] if the Transit key does not exist;
// a plain error for an invalid configuration, an unreadable credential
// file or an unsuitable key.
func OpenVaultTransitKEK(ctx context.Context, cfg VaultConfig) (*VaultTransitKEK, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	client, timeout, err := newVaultClient(cfg)
	if err != nil {
		return nil, err
	}
	auth, err := newVaultAuth(cfg.Auth, client.Token())
	if err != nil {
		return nil, err
	}
	client.ClearToken() // the auth method supplies the token from here on
	k := &VaultTransitKEK{
		client:    client,
		addr:      redactedURL(client.Address()),
		mount:     cfg.Mount,
		key:       cfg.Key,
		id:        "vault-transit:" + cfg.Mount + "/" + cfg.Key,
		timeout:   timeout,
		auth:      auth,
		newSecret: make(chan *api.Secret, 1),
		done:      make(chan struct{}),
	}
	secret, err := k.login(ctx, "")
	if err != nil {
		return nil, err
	}
	<-k.newSecret // the renewal goroutine starts from secret
	if err := k.checkKey(ctx); err != nil {
		return nil, err
	}
	rctx, stop := context.WithCancel(ctx)
	k.stop = stop
	go k.maintain(rctx, secret)
	return k, nil
}

func (cfg VaultConfig) withDefaults() (VaultConfig, error) {
	cfg.Mount = strings.Trim(cfg.Mount, "/")
	if cfg.Mount == "" {
		cfg.Mount = DefaultVaultMount
	}
	if cfg.Key == "" || strings.ContainsAny(cfg.Key, "/ ") {
		return cfg, fmt.Errorf("keys: Vault Transit KEK: key %q: want the name of a Transit key", cfg.Key)
	}
	if cfg.Timeout < 0 {
		return cfg, errors.New("keys: Vault Transit KEK: negative timeout")
	}
	a := &cfg.Auth
	if a.Method == "" {
		a.Method = VaultAuthToken
	}
	switch a.Method {
	case VaultAuthToken:
	case VaultAuthAppRole:
		if a.RoleID == "" || a.SecretIDFile == "" {
			return cfg, errors.New("keys: Vault auth approle needs role_id and secret_id_file")
		}
	case VaultAuthKubernetes:
		if a.Role == "" {
			return cfg, errors.New("keys: Vault auth kubernetes needs role")
		}
		if a.JWTFile == "" {
			a.JWTFile = DefaultVaultJWTFile
		}
	default:
		return cfg, fmt.Errorf("keys: Vault auth method %q: want token, approle or kubernetes", a.Method)
	}
	if a.Method != VaultAuthToken && a.Mount == "" {
		a.Mount = a.Method
	}
	a.Mount = strings.Trim(a.Mount, "/")
	return cfg, nil
}

// newVaultClient builds the vault/api client: DefaultConfig (which reads
// the environment), then the explicit settings of cfg.
func newVaultClient(cfg VaultConfig) (*api.Client, time.Duration, error) {
	vc := api.DefaultConfig()
	if vc.Error != nil {
		return nil, 0, fmt.Errorf("keys: Vault client settings from the environment: %w", vc.Error)
	}
	if cfg.Address != "" {
		vc.Address = cfg.Address
		vc.AgentAddress = ""
	}
	switch {
	case cfg.Timeout > 0:
		vc.Timeout = cfg.Timeout
	case os.Getenv(api.EnvVaultClientTimeout) == "":
		vc.Timeout = DefaultVaultTimeout
	}
	if t := cfg.TLS; t.CAFile != "" || t.ServerName != "" || t.InsecureSkipVerify {
		err := vc.ConfigureTLS(&api.TLSConfig{CACert: t.CAFile, TLSServerName: t.ServerName, Insecure: t.InsecureSkipVerify})
		if err != nil {
			return nil, 0, fmt.Errorf("keys: Vault TLS settings: %w", err)
		}
	}
	c, err := api.NewClient(vc)
	if err != nil {
		return nil, 0, fmt.Errorf("keys: Vault client: %w", err)
	}
	c.SetWrappingLookupFunc(noWrapping)
	if cfg.Namespace != "" {
		c.SetNamespace(cfg.Namespace)
	}
	return c, vc.Timeout, nil
}

// redactedURL is addr for messages, without a password it might carry.
func redactedURL(addr string) string {
	u, err := url.Parse(addr)
	if err != nil {
		return "(unparsable address)"
	}
	return u.Redacted()
}

// noWrapping keeps VAULT_WRAP_TTL from wrapping Vault's answers in
// single-use tokens.
func noWrapping(string, string) string { return "" }

// ID returns "vault-transit:MOUNT/KEY", which names the Transit key, not
// one of its versions: rotating the key in Vault keeps it.
func (k *VaultTransitKEK) ID() string { return k.id }

// String describes the KEK without secrets.
func (k *VaultTransitKEK) String() string {
	return "VaultTransitKEK(" + k.id + " at " + k.addr + ")"
}

// GoString describes the KEK without secrets, for %#v.
func (k *VaultTransitKEK) GoString() string { return k.String() }

// Close stops the token renewal goroutine and waits for it to end (at most
// the KEK's timeout, if a renewal is in flight). The KEK keeps working with
// its current token until that expires. Close always returns nil.
func (k *VaultTransitKEK) Close() error {
	k.closeOnce.Do(func() {
		k.stop()
		<-k.done
	})
	return nil
}

func (k *VaultTransitKEK) path(op string) string { return k.mount + "/" + op + "/" + k.key }

// Wrap encrypts plaintext bound to associatedData with the latest version
// of the Transit key (POST /v1/:mount/encrypt/:name) and returns Vault's
// ciphertext, "vault:vN:…". associatedData may be up to 65535 bytes.
func (k *VaultTransitKEK) Wrap(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	if len(associatedData) > 0xffff {
		return nil, fmt.Errorf("keys: %s: wrap: associated data longer than 65535 bytes", k.id)
	}
	framed := make([]byte, 0, len(vaultFrameMagic)+2+len(associatedData)+len(plaintext))
	framed = append(framed, vaultFrameMagic...)
	framed = binary.BigEndian.AppendUint16(framed, uint16(len(associatedData)))
	framed = append(framed, associatedData...)
	framed = append(framed, plaintext...)
	defer clear(framed)
	// encoding/json writes a []byte as standard base64, the form Transit
	// takes, so no base64 copy of the plaintext is left in a string here.
	s, err := k.write(ctx, "wrap", k.path("encrypt"), map[string]any{"plaintext": framed})
	if err != nil {
		return nil, err
	}
	return k.ciphertext("wrap", s)
}

// Unwrap decrypts a value made by Wrap (POST /v1/:mount/decrypt/:name) and
// checks its associated data. It fails with a [VaultError] if Vault
// refuses (a version below the key's min_decryption_version gets 400
// "ciphertext or signature version is disallowed by policy (too old)"),
// and with a plain error if the value was not made by fleproxy or was bound
// to other associated data.
func (k *VaultTransitKEK) Unwrap(ctx context.Context, wrapped, associatedData []byte) ([]byte, error) {
	if !bytes.HasPrefix(wrapped, []byte(vaultPrefix)) {
		return nil, fmt.Errorf("keys: %s: unwrap: not a Vault Transit ciphertext", k.id)
	}
	s, err := k.write(ctx, "unwrap", k.path("decrypt"), map[string]any{"ciphertext": string(wrapped)})
	if err != nil {
		return nil, err
	}
	b64, _ := s.Data["plaintext"].(string)
	framed, err := base64.StdEncoding.DecodeString(b64)
	defer clear(framed)
	if err != nil || s.Data["plaintext"] == nil {
		return nil, fmt.Errorf("keys: %s: unwrap: Vault answered without a plaintext", k.id)
	}
	rest, ok := bytes.CutPrefix(framed, []byte(vaultFrameMagic))
	if !ok || len(rest) < 2 || len(rest)-2 < int(binary.BigEndian.Uint16(rest)) {
		return nil, fmt.Errorf("keys: %s: unwrap: the value was not wrapped by fleproxy", k.id)
	}
	n := int(binary.BigEndian.Uint16(rest))
	if !bytes.Equal(rest[2:2+n], associatedData) {
		return nil, fmt.Errorf("keys: %s: unwrap: the value was wrapped for other associated data", k.id)
	}
	return bytes.Clone(rest[2+n:]), nil
}

// Rewrap re-encrypts a value made by Wrap with the latest version of the
// Transit key (POST /v1/:mount/rewrap/:name), inside Vault: the plaintext
// never reaches fleproxy, and the token needs only the rewrap permission.
// The associated data bound into the value is kept. Use it after rotating
// the key in Vault, before raising min_decryption_version.
func (k *VaultTransitKEK) Rewrap(ctx context.Context, wrapped []byte) ([]byte, error) {
	if !bytes.HasPrefix(wrapped, []byte(vaultPrefix)) {
		return nil, fmt.Errorf("keys: %s: rewrap: not a Vault Transit ciphertext", k.id)
	}
	s, err := k.write(ctx, "rewrap", k.path("rewrap"), map[string]any{"ciphertext": string(wrapped)})
	if err != nil {
		return nil, err
	}
	return k.ciphertext("rewrap", s)
}

func (k *VaultTransitKEK) ciphertext(op string, s *api.Secret) ([]byte, error) {
	ct, _ := s.Data["ciphertext"].(string)
	if _, err := parseVaultVersion([]byte(ct)); err != nil {
		return nil, fmt.Errorf("keys: %s: %s: Vault answered without a Transit ciphertext", k.id, op)
	}
	return []byte(ct), nil
}

// KeyVersion returns the version of the Transit key that made wrapped,
// from its "vault:vN:" prefix. It asks Vault nothing.
func (k *VaultTransitKEK) KeyVersion(wrapped []byte) (int, error) {
	v, err := parseVaultVersion(wrapped)
	if err != nil {
		return 0, fmt.Errorf("keys: %s: %w", k.id, err)
	}
	return v, nil
}

// parseVaultVersion reads N from "vault:vN:…". Version 0 means 1, as in
// keysutil (compatibility with Transit's first key numbering).
func parseVaultVersion(wrapped []byte) (int, error) {
	rest, ok := bytes.CutPrefix(wrapped, []byte(vaultPrefix))
	if !ok {
		return 0, errors.New("not a Vault Transit ciphertext (no \"vault:v\" prefix)")
	}
	num, body, ok := bytes.Cut(rest, []byte(":"))
	if !ok || len(body) == 0 {
		return 0, errors.New("not a Vault Transit ciphertext (no version field)")
	}
	v, err := strconv.Atoi(string(num))
	if err != nil || v < 0 {
		return 0, errors.New("not a Vault Transit ciphertext (bad version number)")
	}
	return max(v, 1), nil
}

// VaultKeyInfo describes a Transit key as GET /v1/:mount/keys/:name reads
// it.
type VaultKeyInfo struct {
	Name                 string
	Type                 string
	LatestVersion        int
	MinDecryptionVersion int
	MinEncryptionVersion int
	Derived              bool
	SupportsEncryption   bool
	SupportsDecryption   bool
}

// KeyInfo reads the Transit key's versions (GET /v1/:mount/keys/:name);
// the token needs read permission on that path. It fails with ErrNotFound
// if Vault has no such key.
func (k *VaultTransitKEK) KeyInfo(ctx context.Context) (VaultKeyInfo, error) {
	path := k.mount + "/keys/" + k.key
	var s *api.Secret
	err := k.retryLogin(ctx, "read key", path, func(cctx context.Context) (err error) {
		s, err = k.client.Logical().ReadWithContext(cctx, path)
		return err
	})
	if err != nil {
		return VaultKeyInfo{}, err
	}
	if s == nil || s.Data == nil {
		// vault/api turns Vault's 404 into no secret and no error.
		return VaultKeyInfo{}, fmt.Errorf("keys: Vault Transit key %q not found at %s in mount %q (create it with `vault write -f %s/keys/%s`): %w", k.key, k.addr, k.mount, k.mount, k.key, ErrNotFound)
	}
	num := func(name string) int {
		n, _ := s.Data[name].(json.Number)
		i, _ := n.Int64()
		return int(i)
	}
	flag := func(name string) bool { b, _ := s.Data[name].(bool); return b }
	typ, _ := s.Data["type"].(string)
	return VaultKeyInfo{
		Name: k.key, Type: typ,
		LatestVersion:        num("latest_version"),
		MinDecryptionVersion: num("min_decryption_version"),
		MinEncryptionVersion: num("min_encryption_version"),
		Derived:              flag("derived"),
		SupportsEncryption:   flag("supports_encryption"),
		SupportsDecryption:   flag("supports_decryption"),
	}, nil
}

// vaultAEADKeyType reports whether Transit keys of type t are fit for a
// KEK: symmetric AEADs, so that only Vault can make a ciphertext that
// decrypts (with an RSA key, whoever has the public key could wrap a keyset
// of their choosing).
func vaultAEADKeyType(t string) bool {
	switch t {
	case "aes256-gcm96", "aes128-gcm96", "chacha20-poly1305":
		return true
	}
	return false
}

// checkKey refuses a key fleproxy cannot use. A token without read
// permission on the key skips the check: the first wrap or unwrap then
// tells.
func (k *VaultTransitKEK) checkKey(ctx context.Context) error {
	info, err := k.KeyInfo(ctx)
	if errors.Is(err, ErrKEKPermissionDenied) {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case !vaultAEADKeyType(info.Type) || !info.SupportsEncryption || !info.SupportsDecryption:
		return fmt.Errorf("keys: Vault Transit key %s/%s is of type %s; a KEK needs a symmetric AEAD key: use aes256-gcm96", k.mount, k.key, info.Type)
	case info.Derived:
		return fmt.Errorf("keys: Vault Transit key %s/%s is derived (it needs a context fleproxy does not send); use a key created without derived=true", k.mount, k.key)
	}
	return nil
}

// write is a Transit write with the KEK's timeout and one re-login on an
// invalid token.
func (k *VaultTransitKEK) write(ctx context.Context, op, path string, data map[string]any) (*api.Secret, error) {
	var s *api.Secret
	err := k.retryLogin(ctx, op, path, func(cctx context.Context) (err error) {
		s, err = k.client.Logical().WriteWithContext(cctx, path, data)
		return err
	})
	if err != nil {
		return nil, err
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("keys: Vault %s (%s): Vault answered with no data", op, path)
	}
	return s, nil
}

// retryLogin runs call with the KEK's timeout. If Vault refuses the token
// as invalid (revoked, expired) it logs in once more and repeats call; a
// denial by policy is not retried.
func (k *VaultTransitKEK) retryLogin(ctx context.Context, op, path string, call func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		token := k.client.Token()
		cctx, cancel := context.WithTimeout(ctx, k.timeout)
		err := call(cctx)
		if err == nil {
			cancel()
			return nil
		}
		verr := newVaultError(ctx, cctx, op, path, k.addr, k.timeout, err)
		cancel()
		if attempt > 0 || !invalidToken(err) || ctx.Err() != nil {
			return verr
		}
		if _, lerr := k.login(ctx, token); lerr != nil {
			return fmt.Errorf("%w (and logging in again failed: %w)", verr, lerr)
		}
	}
}
