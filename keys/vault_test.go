package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/fleproxy/fleproxy/internal/transittest"
)

const testTransitKey = "fleproxy"

// isolateVaultEnv keeps the tests against transittest independent of a
// VAULT_* environment (the real-Vault test uses one), and turns off
// vault/api's retries so that "Vault is down" answers at once.
func isolateVaultEnv(t *testing.T) {
	t.Helper()
	for _, v := range []string{"VAULT_ADDR", "VAULT_AGENT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT",
		"VAULT_CAPATH", "VAULT_TLS_SERVER_NAME", "VAULT_SKIP_VERIFY", "VAULT_CLIENT_TIMEOUT", "VAULT_WRAP_TTL"} {
		t.Setenv(v, "")
	}
	t.Setenv("VAULT_MAX_RETRIES", "0")
}

// adminClient is a vault/api client for test set-up (creating, rotating,
// configuring keys).
func adminClient(t testing.TB, addr, token, namespace string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	c.SetNamespace(namespace)
	return c
}

func adminWrite(t testing.TB, c *api.Client, path string, data map[string]any) *api.Secret {
	t.Helper()
	s, err := c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}

// newTransit starts a transittest server with the Transit key "fleproxy".
func newTransit(t *testing.T) *transittest.Server {
	t.Helper()
	isolateVaultEnv(t)
	srv := transittest.New(t)
	adminWrite(t, adminClient(t, srv.URL(), srv.RootToken(), ""), "transit/keys/"+testTransitKey, nil)
	return srv
}

func writeSecretFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tokenConfig is a VaultConfig for srv with a token file holding token.
func tokenConfig(t *testing.T, srv *transittest.Server, token string) VaultConfig {
	return VaultConfig{
		Address: srv.URL(), Key: testTransitKey, Timeout: 2 * time.Second,
		Auth: VaultAuth{Method: VaultAuthToken, TokenFile: writeSecretFile(t, token)},
	}
}

func openVault(t *testing.T, cfg VaultConfig) *VaultTransitKEK {
	t.Helper()
	k, err := OpenVaultTransitKEK(t.Context(), cfg)
	if err != nil {
		t.Fatalf("OpenVaultTransitKEK: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func TestVaultKEKManagerEndToEnd(t *testing.T) {
	srv := newTransit(t)
	token := srv.CreateToken(TokenOptionsHour())
	runTransitScenario(t, adminClient(t, srv.URL(), srv.RootToken(), ""), tokenConfig(t, srv, token))
}

// TokenOptionsHour is a renewable one-hour token.
func TokenOptionsHour() transittest.TokenOptions {
	return transittest.TokenOptions{TTL: time.Hour}
}

// runTransitScenario is the key life cycle through a Manager against a Vault
// (transittest or real) whose Transit key cfg.Key exists at version 1;
// admin may rotate and configure it. It creates keyrings, rotates the
// Transit key, rewraps the stored keyrings to the new version, raises
// min_decryption_version, and checks that everything rewrapped still
// unwraps while a keyring left behind fails with Vault's reason.
func runTransitScenario(t *testing.T, admin *api.Client, cfg VaultConfig) {
	ctx := t.Context()
	mount := cfg.Mount
	if mount == "" {
		mount = DefaultVaultMount
	}
	kek := openVault(t, cfg)
	if want := "vault-transit:" + mount + "/" + cfg.Key; kek.ID() != want {
		t.Fatalf("ID = %q, want %q", kek.ID(), want)
	}
	store, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(kek, store)
	mustCreate(t, m, "pii")
	mustCreate(t, m, "left-behind")
	c := mustCipher(t, m, "pii", colEmail)
	ct, err := c.Encrypt([]byte("alice@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := store.Get(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	if rec.KEKID != kek.ID() {
		t.Fatalf("record KEK %q", rec.KEKID)
	}
	if v, err := kek.RecordKeyVersion(rec); err != nil || v != 1 {
		t.Fatalf("RecordKeyVersion = %d, %v", v, err)
	}

	// Rotate the Transit key in Vault: new wraps use version 2, version 1
	// keeps unwrapping.
	adminWrite(t, admin, mount+"/keys/"+cfg.Key+"/rotate", nil)
	mustCreate(t, m, "after-rotation")
	fresh, _ := store.Get(ctx, "after-rotation")
	if v, _ := kek.RecordKeyVersion(fresh); v != 2 {
		t.Fatalf("keyring made after the rotation wrapped with version %d", v)
	}
	if back, err := mustCipher(t, NewManager(kek, store), "pii", colEmail).Decrypt(ct); err != nil || string(back) != "alice@example.com" {
		t.Fatalf("version 1 after rotation: %q, %v", back, err)
	}

	// Rewrap moves the stored keyset to version 2 inside Vault; Managers
	// pick the new record up.
	next, err := kek.RewrapRecord(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := kek.RecordKeyVersion(next); v != 2 || next.Name != rec.Name || next.KEKID != rec.KEKID || next.Kind != rec.Kind {
		t.Fatalf("rewrapped record: version %d, %+v", v, next)
	}
	if _, err := store.Update(ctx, next, rec.Version); err != nil {
		t.Fatal(err)
	}
	if err := m.Refresh(ctx); err != nil {
		t.Fatalf("Refresh after rewrap: %v", err)
	}

	// Retire version 1.
	adminWrite(t, admin, mount+"/keys/"+cfg.Key+"/config", map[string]any{"min_decryption_version": 2})
	other := NewManager(kek, store)
	for _, name := range []string{"pii", "after-rotation"} {
		if _, err := other.Keyring(ctx, name); err != nil {
			t.Fatalf("keyring %s after min_decryption_version=2: %v", name, err)
		}
	}
	if back, err := mustCipher(t, other, "pii", colEmail).Decrypt(ct); err != nil || string(back) != "alice@example.com" {
		t.Fatalf("decrypt after rewrap and retirement: %q, %v", back, err)
	}
	if back, err := c.Decrypt(ct); err != nil || string(back) != "alice@example.com" {
		t.Fatalf("the first Manager's cipher: %q, %v", back, err)
	}
	_, err = other.Keyring(ctx, "left-behind")
	var ve *VaultError
	if !errors.Is(err, ErrUnwrap) || !errors.As(err, &ve) || ve.StatusCode != 400 ||
		!strings.Contains(err.Error(), "disallowed by policy (too old)") || errors.Is(err, ErrKEKUnavailable) {
		t.Fatalf("keyring not rewrapped: %v", err)
	}
}

func TestVaultKEKWrapUnwrap(t *testing.T) {
	srv := newTransit(t)
	kek := openVault(t, tokenConfig(t, srv, srv.RootToken()))
	ctx := t.Context()
	pt := []byte("keyset bytes")
	w, err := kek.Wrap(ctx, pt, []byte("fleproxy/keyring/a"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := kek.KeyVersion(w); err != nil || v != 1 {
		t.Fatalf("KeyVersion = %d, %v", v, err)
	}
	if got, err := kek.Unwrap(ctx, w, []byte("fleproxy/keyring/a")); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Unwrap = %q, %v", got, err)
	}
	if _, err := kek.Unwrap(ctx, w, []byte("fleproxy/keyring/b")); err == nil || !strings.Contains(err.Error(), "other associated data") {
		t.Fatalf("Unwrap with other associated data: %v", err)
	}
	if _, err := kek.Unwrap(ctx, w, nil); err == nil {
		t.Fatal("Unwrap without associated data succeeded")
	}
	if w2, err := kek.Wrap(ctx, pt, nil); err != nil {
		t.Fatal(err)
	} else if got, err := kek.Unwrap(ctx, w2, nil); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("empty associated data: %q, %v", got, err)
	}

	// A Transit ciphertext made by another application under the same key.
	admin := adminClient(t, srv.URL(), srv.RootToken(), "")
	foreign := adminWrite(t, admin, "transit/encrypt/"+testTransitKey, map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)}).Data["ciphertext"].(string)
	if _, err := kek.Unwrap(ctx, []byte(foreign), nil); err == nil || !strings.Contains(err.Error(), "not wrapped by fleproxy") {
		t.Fatalf("foreign ciphertext: %v", err)
	}

	// A tampered value: Vault refuses it.
	tampered := bytes.Clone(w)
	tampered[len("vault:v1:")+4] ^= 'A' ^ 'B' // a base64 digit in the nonce
	_, err = kek.Unwrap(ctx, tampered, []byte("fleproxy/keyring/a"))
	var ve *VaultError
	if !errors.As(err, &ve) || ve.StatusCode != 400 || ve.Op != "unwrap" || ve.Path != "transit/decrypt/fleproxy" {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := kek.Unwrap(ctx, []byte("local:xyz"), nil); err == nil {
		t.Fatal("non-Transit value accepted")
	}

	// Rewrap keeps the binding to the associated data.
	adminWrite(t, admin, "transit/keys/"+testTransitKey+"/rotate", nil)
	rw, err := kek.Rewrap(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := kek.KeyVersion(rw); v != 2 {
		t.Fatalf("rewrapped to version %d", v)
	}
	if got, err := kek.Unwrap(ctx, rw, []byte("fleproxy/keyring/a")); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Unwrap(Rewrap) = %q, %v", got, err)
	}
	if _, err := kek.Unwrap(ctx, rw, []byte("fleproxy/keyring/b")); err == nil {
		t.Fatal("rewrapped value lost its associated data")
	}

	info, err := kek.KeyInfo(ctx)
	if err != nil || info.LatestVersion != 2 || info.MinDecryptionVersion != 1 || info.Type != "aes256-gcm96" {
		t.Fatalf("KeyInfo = %+v, %v", info, err)
	}
	if s := kek.String(); !strings.Contains(s, "vault-transit:transit/fleproxy") || strings.Contains(s, srv.RootToken()) {
		t.Fatalf("String = %s", s)
	}
}

func TestVaultKeyVersion(t *testing.T) {
	for in, want := range map[string]int{"vault:v1:abc": 1, "vault:v12:abc": 12, "vault:v0:abc": 1} {
		if v, err := parseVaultVersion([]byte(in)); err != nil || v != want {
			t.Errorf("%s: %d, %v", in, v, err)
		}
	}
	for _, in := range []string{"", "vault:", "vault:v1", "vault:v1:", "vault:vx:abc", "vault:v-1:abc", "AAAA"} {
		if _, err := parseVaultVersion([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestVaultAuthMethods(t *testing.T) {
	srv := newTransit(t)
	srv.AddAppRole(transittest.AppRole{RoleID: "fleproxy-role", SecretID: "s3cret-id", TokenTTL: time.Hour})
	srv.AddKubernetesRole(transittest.KubernetesRole{Mount: "k8s-us", Role: "fleproxy", JWT: "eyJhbGciOi.pod.sig", TokenTTL: time.Hour})
	envToken := srv.CreateToken(TokenOptionsHour())

	cases := []struct {
		name  string
		auth  VaultAuth
		setup func(t *testing.T)
		login string // the path a login calls
	}{
		{name: "token file", auth: VaultAuth{TokenFile: writeSecretFile(t, srv.CreateToken(TokenOptionsHour()))}, login: "auth/token/lookup-self"},
		{name: "VAULT_TOKEN", setup: func(t *testing.T) { t.Setenv("VAULT_TOKEN", envToken) }, login: "auth/token/lookup-self"},
		{name: "approle", auth: VaultAuth{Method: VaultAuthAppRole, RoleID: "fleproxy-role", SecretIDFile: writeSecretFile(t, "s3cret-id")}, login: "auth/approle/login"},
		{name: "kubernetes", auth: VaultAuth{Method: VaultAuthKubernetes, Role: "fleproxy", Mount: "k8s-us", JWTFile: writeSecretFile(t, "eyJhbGciOi.pod.sig")}, login: "auth/k8s-us/login"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			before := srv.Calls(tc.login)
			kek := openVault(t, VaultConfig{Address: srv.URL(), Key: testTransitKey, Auth: tc.auth})
			if srv.Calls(tc.login) != before+1 {
				t.Fatalf("%s called %d times", tc.login, srv.Calls(tc.login)-before)
			}
			w, err := kek.Wrap(t.Context(), []byte("k"), []byte("ad"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := kek.Unwrap(t.Context(), w, []byte("ad")); err != nil {
				t.Fatal(err)
			}
		})
	}

	refused := []struct {
		name string
		auth VaultAuth
		want func(error) bool
	}{
		{"approle wrong secret", VaultAuth{Method: VaultAuthAppRole, RoleID: "fleproxy-role", SecretIDFile: writeSecretFile(t, "wrong-secret-id")},
			func(err error) bool { return strings.Contains(err.Error(), "invalid role or secret ID") }},
		{"kubernetes wrong JWT", VaultAuth{Method: VaultAuthKubernetes, Role: "fleproxy", Mount: "k8s-us", JWTFile: writeSecretFile(t, "wrong.jwt.sig")},
			func(err error) bool { return errors.Is(err, ErrKEKPermissionDenied) }},
		{"unknown token", VaultAuth{TokenFile: writeSecretFile(t, "hvs.not-a-token")},
			func(err error) bool {
				return errors.Is(err, ErrKEKPermissionDenied) && strings.Contains(err.Error(), "invalid token")
			}},
		{"missing JWT file", VaultAuth{Method: VaultAuthKubernetes, Role: "fleproxy", JWTFile: filepath.Join(t.TempDir(), "none")},
			func(err error) bool { return errors.Is(err, os.ErrNotExist) }},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenVaultTransitKEK(t.Context(), VaultConfig{Address: srv.URL(), Key: testTransitKey, Auth: tc.auth})
			if err == nil || !tc.want(err) || errors.Is(err, ErrKEKUnavailable) {
				t.Fatalf("err = %v", err)
			}
			for _, secret := range []string{"wrong-secret-id", "wrong.jwt.sig", "hvs.not-a-token", "s3cret-id"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error shows a credential: %v", err)
				}
			}
		})
	}

	for _, bad := range []VaultConfig{
		{Address: srv.URL()},
		{Address: srv.URL(), Key: "a/b"},
		{Address: srv.URL(), Key: "k", Auth: VaultAuth{Method: "ldap"}},
		{Address: srv.URL(), Key: "k", Auth: VaultAuth{Method: VaultAuthAppRole, RoleID: "r"}},
		{Address: srv.URL(), Key: "k", Auth: VaultAuth{Method: VaultAuthKubernetes}},
		{Address: srv.URL(), Key: "k"}, // no token at all
	} {
		if _, err := OpenVaultTransitKEK(t.Context(), bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestVaultRenewalAndRelogin runs an AppRole token with a 2s TTL and a 3s
// max TTL for 4.5s: the watcher renews it, then logs in again before it
// expires, and every wrap in between succeeds.
func TestVaultRenewalAndRelogin(t *testing.T) {
	srv := newTransit(t)
	srv.AddAppRole(transittest.AppRole{RoleID: "r", SecretID: "s", TokenTTL: 2 * time.Second, TokenMaxTTL: 3 * time.Second})
	kek := openVault(t, VaultConfig{Address: srv.URL(), Key: testTransitKey, Timeout: time.Second,
		Auth: VaultAuth{Method: VaultAuthAppRole, RoleID: "r", SecretIDFile: writeSecretFile(t, "s")}})
	first := kek.client.Token()
	deadline := time.Now().Add(4500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := kek.Wrap(t.Context(), []byte("k"), nil); err != nil {
			t.Fatalf("wrap during renewal: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := srv.Calls("auth/token/renew-self"); n < 1 {
		t.Errorf("renew-self called %d times", n)
	}
	if n := srv.Calls("auth/approle/login"); n < 2 {
		t.Errorf("login called %d times; want a re-login after the max TTL", n)
	}
	if kek.client.Token() == first {
		t.Error("still using the first token after its max TTL")
	}
	if _, ok := srv.TokenTTL(first); ok {
		t.Error("the first token should have expired by now")
	}
	kek.Close()
	select {
	case <-kek.done:
	default:
		t.Fatal("renewal goroutine still running after Close")
	}
}

// TestVaultTokenFileRotation: a short non-renewable token in a file that
// Vault Agent rewrites; the KEK reads the new token when the old one ends.
func TestVaultTokenFileRotation(t *testing.T) {
	srv := newTransit(t)
	old := srv.CreateToken(transittest.TokenOptions{TTL: 2 * time.Second, NotRenewable: true})
	cfg := tokenConfig(t, srv, old)
	kek := openVault(t, cfg)
	if err := os.WriteFile(cfg.Auth.TokenFile, []byte(srv.CreateToken(TokenOptionsHour())), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, ok := srv.TokenTTL(old); ok {
		t.Fatal("old token still valid")
	}
	if _, err := kek.Wrap(t.Context(), []byte("k"), nil); err != nil {
		t.Fatalf("wrap after the old token expired: %v", err)
	}
	if n := srv.Calls("auth/token/lookup-self"); n < 2 {
		t.Errorf("lookup-self called %d times; the token file was not read again", n)
	}
}

// TestVaultReloginOnInvalidToken: a revoked token is replaced by a new
// login on the request that meets it.
func TestVaultReloginOnInvalidToken(t *testing.T) {
	srv := newTransit(t)
	srv.AddAppRole(transittest.AppRole{RoleID: "r", SecretID: "s", TokenTTL: time.Hour})
	kek := openVault(t, VaultConfig{Address: srv.URL(), Key: testTransitKey,
		Auth: VaultAuth{Method: VaultAuthAppRole, RoleID: "r", SecretIDFile: writeSecretFile(t, "s")}})
	w, err := kek.Wrap(t.Context(), []byte("k"), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.RevokeToken(kek.client.Token())
	if _, err := kek.Unwrap(t.Context(), w, nil); err != nil {
		t.Fatalf("unwrap after revocation: %v", err)
	}
	if n := srv.Calls("auth/approle/login"); n != 2 {
		t.Fatalf("%d logins, want 2", n)
	}

	// A static token cannot be replaced: the 403 comes back as is.
	tok := srv.CreateToken(TokenOptionsHour())
	static := openVault(t, tokenConfig(t, srv, tok))
	srv.RevokeToken(tok)
	_, err = static.Wrap(t.Context(), []byte("k"), nil)
	if !errors.Is(err, ErrKEKPermissionDenied) || errors.Is(err, ErrKEKUnavailable) || strings.Contains(err.Error(), tok) {
		t.Fatalf("revoked static token: %v", err)
	}
}

func TestVaultPermissionDenied(t *testing.T) {
	srv := newTransit(t)
	tok := srv.CreateToken(transittest.TokenOptions{TTL: time.Hour, Allow: []string{"transit/decrypt/*"}})
	kek := openVault(t, tokenConfig(t, srv, tok)) // the key check is skipped without read permission
	_, err := kek.Wrap(t.Context(), []byte("plaintext-key-bytes"), []byte("ad"))
	var ve *VaultError
	if !errors.Is(err, ErrKEKPermissionDenied) || errors.Is(err, ErrKEKUnavailable) || !errors.As(err, &ve) ||
		ve.StatusCode != 403 || ve.Path != "transit/encrypt/fleproxy" {
		t.Fatalf("wrap without permission: %v", err)
	}
	msg := err.Error()
	for _, secret := range []string{tok, "plaintext-key-bytes", base64.StdEncoding.EncodeToString([]byte("plaintext-key-bytes"))} {
		if strings.Contains(msg, secret) {
			t.Fatalf("error %q contains a secret", msg)
		}
	}
	if !strings.Contains(msg, "wrap") || !strings.Contains(msg, "transit/encrypt/fleproxy") || !strings.Contains(msg, "403") {
		t.Fatalf("error does not say what failed: %q", msg)
	}
	// Through the Manager too.
	store, _ := NewFileStore(t.TempDir())
	if _, err := NewManager(kek, store).Create(t.Context(), "pii", KindAEAD); !errors.Is(err, ErrKEKPermissionDenied) {
		t.Fatalf("Create: %v", err)
	}
}

func TestVaultKeyChecks(t *testing.T) {
	srv := newTransit(t)
	cfg := tokenConfig(t, srv, srv.RootToken())
	cfg.Key = "missing"
	_, err := OpenVaultTransitKEK(t.Context(), cfg)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "vault write -f transit/keys/missing") {
		t.Fatalf("missing key: %v", err)
	}
	cfg.Key, cfg.Mount = testTransitKey, "elsewhere"
	if _, err := OpenVaultTransitKEK(t.Context(), cfg); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing mount: %v", err)
	}
}

func TestVaultDownAtStart(t *testing.T) {
	srv := newTransit(t)
	cfg := tokenConfig(t, srv, srv.RootToken())

	srv.Stop()
	_, err := OpenVaultTransitKEK(t.Context(), cfg)
	if !errors.Is(err, ErrKEKUnavailable) || !strings.Contains(err.Error(), "unreachable at "+srv.URL()) {
		t.Fatalf("Vault down: %v", err)
	}
	srv.Start()

	srv.SetSealed(true)
	_, err = OpenVaultTransitKEK(t.Context(), cfg)
	if !errors.Is(err, ErrKEKUnavailable) || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "Vault is sealed") {
		t.Fatalf("Vault sealed: %v", err)
	}
	srv.SetSealed(false)

	// A Vault that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 16)
	defer func() {
		ln.Close()
		for len(conns) > 0 {
			(<-conns).Close()
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case conns <- c:
			default:
				c.Close()
			}
		}
	}()
	cfg.Address, cfg.Timeout = "http://"+ln.Addr().String(), 300*time.Millisecond
	start := time.Now()
	_, err = OpenVaultTransitKEK(t.Context(), cfg)
	if !errors.Is(err, ErrKEKUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not answer within 300ms") {
		t.Fatalf("hung Vault: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the timeout did not bound the call: %v", d)
	}
}

// TestVaultLostAfterLoad: keyrings in memory keep working while Vault is
// down; operations that need Vault fail with ErrKEKUnavailable and work
// again once it is back, with no restart.
func TestVaultLostAfterLoad(t *testing.T) {
	srv := newTransit(t)
	kek := openVault(t, tokenConfig(t, srv, srv.CreateToken(TokenOptionsHour())))
	store, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	mustCreate(t, NewManager(kek, store), "pii")

	for _, outage := range []struct {
		name       string
		down, back func()
	}{
		{"connection refused", srv.Stop, srv.Start},
		{"sealed", func() { srv.SetSealed(true) }, func() { srv.SetSealed(false) }},
	} {
		t.Run(outage.name, func(t *testing.T) {
			m := NewManager(kek, store) // a proxy replica, started while Vault was up
			c := mustCipher(t, m, "pii", colEmail)
			before, err := c.Encrypt([]byte("bob@example.com"))
			if err != nil {
				t.Fatal(err)
			}
			// Another replica rotates the keyring; m has not seen it yet.
			rotated, err := NewManager(kek, store).Rotate(ctx, "pii")
			if err != nil {
				t.Fatal(err)
			}

			outage.down()
			ct, err := c.Encrypt([]byte("carol@example.com"))
			if err != nil {
				t.Fatalf("encrypt with Vault down: %v", err)
			}
			if back, err := c.Decrypt(before); err != nil || string(back) != "bob@example.com" {
				t.Fatalf("decrypt with Vault down: %q, %v", back, err)
			}
			if err := m.Refresh(ctx); !errors.Is(err, ErrKEKUnavailable) || !errors.Is(err, ErrUnwrap) {
				t.Fatalf("Refresh with Vault down: %v", err)
			}
			if _, err := m.Create(ctx, "new", KindAEAD); !errors.Is(err, ErrKEKUnavailable) {
				t.Fatalf("Create with Vault down: %v", err)
			}
			if back, err := c.Decrypt(ct); err != nil || string(back) != "carol@example.com" {
				t.Fatalf("cipher after the failed refresh: %q, %v", back, err)
			}

			outage.back()
			if err := m.Refresh(ctx); err != nil {
				t.Fatalf("Refresh after Vault came back: %v", err)
			}
			after, err := c.Encrypt([]byte("dave@example.com"))
			if err != nil || keyIDOf(t, after) != rotated.PrimaryKeyID() {
				t.Fatalf("cipher did not move to the rotated primary key after recovery (%v)", err)
			}
			if back, err := c.Decrypt(ct); err != nil || string(back) != "carol@example.com" {
				t.Fatalf("decrypt after recovery: %q, %v", back, err)
			}
			kr, err := m.Create(ctx, "new", KindAEAD)
			if err != nil {
				t.Fatalf("Create after Vault came back: %v", err)
			}
			if err := store.Delete(ctx, "new", kr.Version()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestVaultTLSAndNamespace(t *testing.T) {
	isolateVaultEnv(t)
	srv := transittest.NewTLS(t)
	srv.EnableTransit("us/west", "kek")
	tok := srv.CreateToken(transittest.TokenOptions{Namespace: "us", TTL: time.Hour})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := api.DefaultConfig()
	admin.Address = srv.URL()
	if err := admin.ConfigureTLS(&api.TLSConfig{CACert: ca}); err != nil {
		t.Fatal(err)
	}
	ac, err := api.NewClient(admin)
	if err != nil {
		t.Fatal(err)
	}
	ac.SetToken(srv.RootToken())
	ac.SetNamespace("us/west")
	adminWrite(t, ac, "kek/keys/"+testTransitKey, nil)

	// The certificate names 127.0.0.1 and example.com; server_name picks the
	// name checked.
	port := srv.URL()[strings.LastIndex(srv.URL(), ":"):]
	cfg := VaultConfig{
		Address: "https://localhost" + port, Namespace: "us/west", Mount: "/kek/", Key: testTransitKey,
		TLS:  VaultTLS{CAFile: ca, ServerName: "example.com"},
		Auth: VaultAuth{TokenFile: writeSecretFile(t, tok)},
	}
	kek := openVault(t, cfg)
	if kek.ID() != "vault-transit:kek/fleproxy" {
		t.Fatalf("ID = %s", kek.ID())
	}
	if _, err := kek.Wrap(t.Context(), []byte("k"), nil); err != nil {
		t.Fatal(err)
	}

	// VAULT_CACERT works as well as tls.ca_file.
	t.Setenv("VAULT_CACERT", ca)
	cfg.TLS.CAFile = ""
	openVault(t, cfg)

	// Without the CA the certificate does not verify: a configuration error,
	// not "Vault unavailable".
	t.Setenv("VAULT_CACERT", "")
	_, err = OpenVaultTransitKEK(t.Context(), cfg)
	if err == nil || errors.Is(err, ErrKEKUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unverified certificate: %v", err)
	}
	cfg.TLS = VaultTLS{CAFile: ca}
	if _, err := OpenVaultTransitKEK(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "localhost") {
		t.Fatalf("wrong server name accepted: %v", err)
	}
}

func TestVaultRecordChecks(t *testing.T) {
	srv := newTransit(t)
	kek := openVault(t, tokenConfig(t, srv, srv.RootToken()))
	local := newTestKEK(t)
	store, _ := NewFileStore(t.TempDir())
	mustCreate(t, NewManager(local, store), "pii")
	rec, _ := store.Get(t.Context(), "pii")
	if _, err := kek.RewrapRecord(t.Context(), rec); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("RewrapRecord of a local-KEK record: %v", err)
	}
	if _, err := kek.RecordKeyVersion(rec); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("RecordKeyVersion of a local-KEK record: %v", err)
	}
	rec.KEKID = kek.ID()
	rec.Wrapped = []byte("{}")
	if _, err := kek.RewrapRecord(t.Context(), rec); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("RewrapRecord of a malformed record: %v", err)
	}
}

// TestVaultConcurrentRelogin: requests in flight when the token is revoked
// share one new login.
func TestVaultConcurrentRelogin(t *testing.T) {
	srv := newTransit(t)
	srv.AddAppRole(transittest.AppRole{RoleID: "r", SecretID: "s", TokenTTL: time.Hour})
	kek := openVault(t, VaultConfig{Address: srv.URL(), Key: testTransitKey,
		Auth: VaultAuth{Method: VaultAuthAppRole, RoleID: "r", SecretIDFile: writeSecretFile(t, "s")}})
	w, err := kek.Wrap(t.Context(), []byte("k"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	revoke := make(chan struct{})
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			<-revoke
			for range 10 {
				if _, err := kek.Unwrap(t.Context(), w, []byte("ad")); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	srv.RevokeToken(kek.client.Token())
	close(revoke)
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Calls("auth/approle/login"); n != 2 {
		t.Fatalf("%d logins, want 2 (one at open, one after the revocation)", n)
	}
}
