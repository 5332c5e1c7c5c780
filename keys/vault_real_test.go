package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"testing"

	"github.com/hashicorp/vault/api"
)

// TestRealVault runs the Transit key life cycle against a real Vault, the
// one VAULT_ADDR and VAULT_TOKEN (and VAULT_CACERT, VAULT_NAMESPACE) name.
// It needs the Transit engine at "transit" and a token that may create,
// rotate, configure and delete keys there; it makes a key with a random
// name and deletes it afterwards. To run it:
//
//	vault server -dev -dev-root-token-id=root &
//	export VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root
//	vault secrets enable transit
//	go test ./keys/ -run TestRealVault -v
func TestRealVault(t *testing.T) {
	if os.Getenv("VAULT_ADDR") == "" || os.Getenv("VAULT_TOKEN") == "" {
		t.Skip("no real Vault: set VAULT_ADDR and VAULT_TOKEN to run this test " +
			"(for example `vault server -dev -dev-root-token-id=root`, VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root, " +
			"then `vault secrets enable transit`)")
	}
	admin, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	key := "fleproxy-test-" + hex.EncodeToString(suffix)
	if _, err := admin.Logical().Write("transit/keys/"+key, map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatalf("create Transit key (is Transit enabled at transit/? `vault secrets enable transit`): %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Logical().Write("transit/keys/"+key+"/config", map[string]any{"deletion_allowed": true}); err != nil {
			t.Errorf("allow deletion of %s: %v", key, err)
			return
		}
		if _, err := admin.Logical().Delete("transit/keys/" + key); err != nil {
			t.Errorf("delete %s: %v", key, err)
		}
	})

	t.Run("wrap", func(t *testing.T) {
		kek := openVault(t, VaultConfig{Key: key})
		w, err := kek.Wrap(t.Context(), []byte("keyset"), []byte("ad"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := kek.Unwrap(t.Context(), w, []byte("ad")); err != nil || !bytes.Equal(got, []byte("keyset")) {
			t.Fatalf("Unwrap = %q, %v", got, err)
		}
		if _, err := kek.Unwrap(t.Context(), w, []byte("other")); err == nil {
			t.Fatal("Unwrap with other associated data succeeded")
		}
		if rw, err := kek.Rewrap(t.Context(), w); err != nil {
			t.Fatal(err)
		} else if got, err := kek.Unwrap(t.Context(), rw, []byte("ad")); err != nil || !bytes.Equal(got, []byte("keyset")) {
			t.Fatalf("Unwrap(Rewrap) = %q, %v", got, err)
		}
	})

	// Why the KEK binds associated data itself: Transit's rewrap cannot
	// carry associated_data (https://github.com/hashicorp/vault/issues/29532).
	// If a future Vault accepts it, this logs so; nothing depends on it.
	t.Run("rewrap ignores associated_data", func(t *testing.T) {
		ad := base64.StdEncoding.EncodeToString([]byte("ad"))
		s, err := admin.Logical().Write("transit/encrypt/"+key, map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte("x")), "associated_data": ad})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Logical().Write("transit/rewrap/"+key, map[string]any{"ciphertext": s.Data["ciphertext"], "associated_data": ad}); err == nil {
			t.Log("this Vault rewraps with associated_data")
		} else {
			t.Logf("as expected, this Vault cannot rewrap a ciphertext made with associated_data: %v", err)
		}
	})

	t.Run("life cycle", func(t *testing.T) {
		runTransitScenario(t, admin, VaultConfig{Key: key})
	})
}
