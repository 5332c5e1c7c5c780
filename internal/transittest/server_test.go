package transittest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

func client(t *testing.T, s *Server, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.URL()
	cfg.MaxRetries = 0
	if pem := s.CACertPEM(); pem != nil {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACertBytes: pem}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// wantStatus checks err is Vault's answer with status and an errors list
// containing msg.
func wantStatus(t *testing.T, err error, status int, msg string) {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a %d answer", err, status)
	}
	if re.StatusCode != status || (msg != "" && !slices.Contains(re.Errors, msg)) {
		t.Fatalf("answer %d %q, want %d %q", re.StatusCode, re.Errors, status, msg)
	}
}

func write(t *testing.T, c *api.Client, path string, data map[string]any) *api.Secret {
	t.Helper()
	s, err := c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}

func TestTransitLifecycle(t *testing.T) {
	s := New(t)
	c := client(t, s, s.RootToken())

	if sec, err := c.Logical().Read("transit/keys/k"); err != nil || sec != nil {
		t.Fatalf("read missing key = %v, %v; want nil, nil (a 404)", sec, err)
	}
	created := write(t, c, "transit/keys/k", nil)
	if created.Data["type"] != "aes256-gcm96" || created.Data["latest_version"] != json.Number("1") || created.Data["min_decryption_version"] != json.Number("1") {
		t.Fatalf("created key = %v", created.Data)
	}
	again := write(t, c, "transit/keys/k", nil)
	if !slices.Contains(again.Warnings, "key k already existed") {
		t.Fatalf("warnings = %q", again.Warnings)
	}

	ad := b64("fleproxy/keyring/pii")
	enc := write(t, c, "transit/encrypt/k", map[string]any{"plaintext": b64("secret"), "associated_data": ad})
	ct1 := enc.Data["ciphertext"].(string)
	if !strings.HasPrefix(ct1, "vault:v1:") || enc.Data["key_version"] != json.Number("1") {
		t.Fatalf("encrypt = %v", enc.Data)
	}
	dec := write(t, c, "transit/decrypt/k", map[string]any{"ciphertext": ct1, "associated_data": ad})
	if dec.Data["plaintext"] != b64("secret") {
		t.Fatalf("decrypt = %v", dec.Data)
	}
	_, err := c.Logical().Write("transit/decrypt/k", map[string]any{"ciphertext": ct1, "associated_data": b64("other")})
	wantStatus(t, err, 400, "cipher: message authentication failed")
	_, err = c.Logical().Write("transit/decrypt/k", map[string]any{"ciphertext": ct1})
	wantStatus(t, err, 400, "cipher: message authentication failed")

	write(t, c, "transit/keys/k/rotate", nil)
	info, _ := c.Logical().Read("transit/keys/k")
	if info.Data["latest_version"] != json.Number("2") || len(info.Data["keys"].(map[string]any)) != 2 {
		t.Fatalf("after rotate = %v", info.Data)
	}

	// Rewrap takes no associated_data in Vault 1.21: ignored with a warning,
	// and a ciphertext made with it does not decrypt (500, as Vault).
	_, err = c.Logical().Write("transit/rewrap/k", map[string]any{"ciphertext": ct1, "associated_data": ad})
	wantStatus(t, err, 500, "cipher: message authentication failed")
	plain := write(t, c, "transit/encrypt/k", map[string]any{"plaintext": b64("no ad"), "key_version": 1})
	ctPlain := plain.Data["ciphertext"].(string)
	if !strings.HasPrefix(ctPlain, "vault:v1:") {
		t.Fatalf("key_version 1: %s", ctPlain)
	}
	rw := write(t, c, "transit/rewrap/k", map[string]any{"ciphertext": ctPlain, "associated_data": ad})
	if !strings.HasPrefix(rw.Data["ciphertext"].(string), "vault:v2:") || len(rw.Warnings) != 1 || !strings.Contains(rw.Warnings[0], "associated_data") {
		t.Fatalf("rewrap = %v, warnings %q", rw.Data, rw.Warnings)
	}

	_, err = c.Logical().Write("transit/keys/k/config", map[string]any{"min_decryption_version": 3})
	wantStatus(t, err, 400, "cannot set min decryption version of 3, latest key version is 2")
	write(t, c, "transit/keys/k/config", map[string]any{"min_decryption_version": 2})
	_, err = c.Logical().Write("transit/decrypt/k", map[string]any{"ciphertext": ctPlain})
	wantStatus(t, err, 400, "ciphertext or signature version is disallowed by policy (too old)")
	dec = write(t, c, "transit/decrypt/k", map[string]any{"ciphertext": rw.Data["ciphertext"]})
	if dec.Data["plaintext"] != b64("no ad") {
		t.Fatalf("decrypt rewrapped = %v", dec.Data)
	}
	_, err = c.Logical().Write("transit/encrypt/k", map[string]any{"plaintext": b64("x"), "key_version": 3})
	wantStatus(t, err, 400, "requested version for encryption is higher than the latest key version")

	for ct, msg := range map[string]string{
		"nope":          "invalid ciphertext: no prefix",
		"vault:v1":      "invalid ciphertext: wrong number of fields",
		"vault:vX:AAAA": "invalid ciphertext: version number could not be decoded",
		"vault:v9:AAAA": "invalid ciphertext: version is too new",
		"vault:v2:!!":   "invalid ciphertext: could not decode base64",
		"vault:v2:AAAA": "invalid ciphertext length",
	} {
		_, err := c.Logical().Write("transit/decrypt/k", map[string]any{"ciphertext": ct})
		wantStatus(t, err, 400, msg)
	}
	_, err = c.Logical().Write("transit/decrypt/missing", map[string]any{"ciphertext": ct1})
	wantStatus(t, err, 400, "encryption key not found")
	_, err = c.Logical().Write("transit/decrypt/k", map[string]any{})
	wantStatus(t, err, 400, "missing ciphertext to decrypt")
	_, err = c.Logical().Write("transit/encrypt/k", map[string]any{})
	wantStatus(t, err, 400, "missing plaintext to encrypt")

	_, err = c.Logical().Delete("transit/keys/k")
	wantStatus(t, err, 400, "error deleting policy k: deletion is not allowed for this policy")
	write(t, c, "transit/keys/k/config", map[string]any{"deletion_allowed": true})
	if _, err := c.Logical().Delete("transit/keys/k"); err != nil {
		t.Fatal(err)
	}
	if sec, _ := c.Logical().Read("transit/keys/k"); sec != nil {
		t.Fatal("key still readable after delete")
	}

	// Encrypt creates a missing key (upsert).
	write(t, c, "transit/encrypt/fresh", map[string]any{"plaintext": b64("x")})
	if sec, _ := c.Logical().Read("transit/keys/fresh"); sec == nil {
		t.Fatal("encrypt did not upsert the key")
	}
	list, err := c.Logical().List("transit/keys")
	if err != nil || !slices.Equal(list.Data["keys"].([]any), []any{"fresh"}) {
		t.Fatalf("list = %v, %v", list, err)
	}
}

func TestTokens(t *testing.T) {
	s := New(t)
	anon := client(t, s, "")
	_, err := anon.Logical().Read("transit/keys/k")
	wantStatus(t, err, 403, "permission denied")

	_, err = client(t, s, "hvs.bogus").Logical().Read("transit/keys/k")
	wantStatus(t, err, 403, "invalid token")

	limited := s.CreateToken(TokenOptions{Allow: []string{"transit/decrypt/*"}})
	lc := client(t, s, limited)
	_, err = lc.Logical().Write("transit/encrypt/k", map[string]any{"plaintext": b64("x")})
	wantStatus(t, err, 403, "permission denied")
	var re *api.ResponseError
	if errors.As(err, &re) && slices.Contains(re.Errors, "invalid token") {
		t.Fatal("a policy denial must not say the token is invalid")
	}
	if _, err := lc.Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("lookup-self must be allowed to every token: %v", err)
	}

	short := s.CreateToken(TokenOptions{TTL: 2 * time.Second, MaxTTL: 3 * time.Second})
	sc := client(t, s, short)
	self, err := sc.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	if ttl, _ := self.TokenTTL(); ttl <= 0 || ttl > 2*time.Second {
		t.Fatalf("ttl = %v", ttl)
	}
	if ok, _ := self.TokenIsRenewable(); !ok {
		t.Fatal("token not renewable")
	}
	time.Sleep(1500 * time.Millisecond)
	r, err := sc.Auth().Token().RenewSelf(0)
	if err != nil {
		t.Fatal(err)
	}
	// 1.5s in, TTL 2s would pass the 3s max TTL: capped at ~1.5s.
	if r.Auth.LeaseDuration > 2 || len(r.Warnings) == 0 {
		t.Fatalf("renewal lease %d, warnings %q; want capped", r.Auth.LeaseDuration, r.Warnings)
	}

	root := client(t, s, s.RootToken())
	_, err = root.Auth().Token().RenewSelf(0)
	wantStatus(t, err, 400, "lease is not renewable")

	s.RevokeToken(limited)
	_, err = lc.Auth().Token().LookupSelf()
	wantStatus(t, err, 403, "invalid token")
}

func TestLogins(t *testing.T) {
	s := New(t)
	s.AddAppRole(AppRole{RoleID: "rid", SecretID: "sid", TokenTTL: time.Minute})
	s.AddKubernetesRole(KubernetesRole{Mount: "k8s", Role: "proxy", JWT: "header.claims.sig"})
	c := client(t, s, "")
	ctx := context.Background()

	sec := write(t, c, "auth/approle/login", map[string]any{"role_id": "rid", "secret_id": "sid"})
	if sec.Auth == nil || sec.Auth.LeaseDuration != 60 || !sec.Auth.Renewable {
		t.Fatalf("approle login = %+v", sec.Auth)
	}
	if _, err := client(t, s, sec.Auth.ClientToken).Logical().Write("transit/encrypt/k", map[string]any{"plaintext": b64("x")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": "rid", "secret_id": "wrong"})
	wantStatus(t, err, 400, "invalid role or secret ID")

	sec = write(t, c, "auth/k8s/login", map[string]any{"role": "proxy", "jwt": "header.claims.sig"})
	if sec.Auth == nil || sec.Auth.ClientToken == "" {
		t.Fatal("kubernetes login gave no token")
	}
	_, err = c.Logical().Write("auth/k8s/login", map[string]any{"role": "proxy", "jwt": "other"})
	wantStatus(t, err, 403, "permission denied")
	_, err = c.Logical().Write("auth/k8s/login", map[string]any{"role": "nope", "jwt": "x"})
	wantStatus(t, err, 400, `invalid role name "nope"`)
	if s.Calls("auth/k8s/login") != 3 {
		t.Fatalf("calls = %d", s.Calls("auth/k8s/login"))
	}
}

func TestNamespaces(t *testing.T) {
	s := New(t)
	s.EnableTransit("us", "transit")
	usTok := s.CreateToken(TokenOptions{Namespace: "us"})
	c := client(t, s, usTok)
	c.SetNamespace("us")
	ct := write(t, c, "transit/encrypt/k", map[string]any{"plaintext": b64("x")}).Data["ciphertext"]

	c.SetNamespace("")
	_, err := c.Logical().Write("transit/decrypt/k", map[string]any{"ciphertext": ct})
	wantStatus(t, err, 403, "permission denied") // a "us" token outside "us"

	root := client(t, s, s.RootToken())
	_, err = root.Logical().Write("transit/decrypt/k", map[string]any{"ciphertext": ct})
	wantStatus(t, err, 400, "encryption key not found") // the root namespace has its own keys
	root.SetNamespace("us/")
	if _, err := root.Logical().Write("transit/decrypt/k", map[string]any{"ciphertext": ct}); err != nil {
		t.Fatal(err)
	}
}

func TestDownAndSealed(t *testing.T) {
	s := New(t)
	c := client(t, s, s.RootToken())
	write(t, c, "transit/keys/k", nil)

	s.SetSealed(true)
	_, err := c.Logical().Read("transit/keys/k")
	wantStatus(t, err, 503, "Vault is sealed")
	s.SetSealed(false)

	url := s.URL()
	s.Stop()
	if _, err := c.Logical().Read("transit/keys/k"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("stopped server: err = %v, want connection refused", err)
	}
	s.Start()
	if s.URL() != url {
		t.Fatalf("URL changed from %s to %s", url, s.URL())
	}
	if sec, err := c.Logical().Read("transit/keys/k"); err != nil || sec == nil {
		t.Fatalf("after restart: %v, %v (keys must survive)", sec, err)
	}
}

func TestTLS(t *testing.T) {
	s := NewTLS(t)
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatal(s.URL())
	}
	c := client(t, s, s.RootToken())
	write(t, c, "transit/keys/k", nil)

	cfg := api.DefaultConfig()
	cfg.Address = s.URL()
	cfg.MaxRetries = 0
	if _, err := func() (*api.Secret, error) {
		c, err := api.NewClient(cfg) // system roots: the test certificate does not verify
		if err != nil {
			return nil, err
		}
		c.SetToken(s.RootToken())
		return c.Logical().Read("transit/keys/k")
	}(); err == nil {
		t.Fatal("unverified certificate accepted")
	}
	s.Stop()
	s.Start()
	if _, err := c.Logical().Read("transit/keys/k"); err != nil {
		t.Fatalf("same certificate after restart: %v", err)
	}
}
