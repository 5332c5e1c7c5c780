package config

import (
	"strings"
	"testing"
	"time"
)

const encryptionBase = `
encryption:
  policy: p.yaml
  service: postgres://fleproxy@db/app
`

func TestParseVault(t *testing.T) {
	c, err := Parse([]byte(encryptionBase+`  vault:
    address: https://vault.us.internal:8200
    namespace: us
    key: fleproxy
    timeout: 5s
    tls:
      ca_file: /etc/fleproxy/vault-ca.pem
      server_name: vault.us.internal
    auth:
      method: kubernetes
      role: fleproxy
`), "vault.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v := c.Encryption.Vault
	if v == nil || v.Address != "https://vault.us.internal:8200" || v.Namespace != "us" || v.Key != "fleproxy" ||
		v.Timeout != 5*time.Second || v.TLS.CAFile != "/etc/fleproxy/vault-ca.pem" || v.TLS.ServerName != "vault.us.internal" {
		t.Fatalf("decoded %+v", v)
	}
	if v.Mount != "transit" || v.Auth.Method != VaultAuthKubernetes || v.Auth.JWTFile != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
		t.Fatalf("defaults not applied: %+v", v)
	}

	c, err = Parse([]byte(encryptionBase+"  vault:\n    key: fleproxy\n"), "vault.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Encryption.Vault; v.Auth.Method != VaultAuthToken || v.Address != "" || v.Auth.JWTFile != "" {
		t.Fatalf("minimal vault section: %+v", v)
	}
	if c, _ := Parse([]byte(encryptionBase+"  kek_file: kek.json\n"), "local.yaml"); c.Encryption.Vault != nil {
		t.Fatal("no vault section, yet Vault is set")
	}
}

func TestParseVaultErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"neither KEK", "", "encryption.vault (or, for development, encryption.kek_file) is required"},
		{"both KEKs", "  kek_file: k.json\n  vault:\n    key: k\n", "exclusive"},
		{"no key", "  vault:\n    address: http://v:8200\n", "encryption.vault.key is required"},
		{"unknown field", "  vault:\n    key: k\n    adress: x\n", "field adress not found"},
		{"bad method", "  vault:\n    key: k\n    auth:\n      method: ldap\n", `method: "ldap" is not token, approle or kubernetes`},
		{"approle without secret", "  vault:\n    key: k\n    auth:\n      method: approle\n      role_id: r\n", "approle needs role_id and secret_id_file"},
		{"kubernetes without role", "  vault:\n    key: k\n    auth:\n      method: kubernetes\n", "kubernetes needs role"},
		{"stray field", "  vault:\n    key: k\n    auth:\n      role_id: r\n", "do not apply to method token"},
		{"negative timeout", "  vault:\n    key: k\n    timeout: -1s\n", "timeout must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(encryptionBase+tt.yaml), "bad.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
