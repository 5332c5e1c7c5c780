package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newTestKEK(t testing.TB) *LocalKEK {
	t.Helper()
	k, err := InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLocalKEKInitAndOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "kek.json")
	k, err := InitLocalKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %04o, want 0600", st.Mode().Perm())
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ks struct {
		PrimaryKeyID uint32 `json:"primaryKeyId"`
		Key          []struct {
			KeyData struct {
				TypeURL string `json:"typeUrl"`
			} `json:"keyData"`
			OutputPrefixType string `json:"outputPrefixType"`
		} `json:"key"`
	}
	if err := json.Unmarshal(content, &ks); err != nil {
		t.Fatalf("KEK file is not JSON: %v", err)
	}
	if len(ks.Key) != 1 || ks.Key[0].KeyData.TypeURL != "type.googleapis.com/google.crypto.tink.AesGcmKey" || ks.Key[0].OutputPrefixType != "TINK" {
		t.Errorf("KEK file is not a one-key AES-GCM Tink keyset: %+v", ks)
	}
	if !strings.HasPrefix(k.ID(), "local:") || len(k.ID()) != len("local:")+8 {
		t.Errorf("ID = %q", k.ID())
	}
	if strings.Contains(k.String(), string(content)) || strings.Contains(k.GoString(), "value") {
		t.Error("String leaks")
	}

	if _, err := InitLocalKEK(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second InitLocalKEK error = %v, want fs.ErrExist", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, content) {
		t.Fatal("InitLocalKEK overwrote the file")
	}

	wrapped, err := k.Wrap(ctx, []byte("data key"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	// The ID names the key, not the path: it survives a move.
	moved := filepath.Join(dir, "moved.json")
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	k2, err := OpenLocalKEK(moved)
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID() != k.ID() {
		t.Errorf("ID after move = %q, want %q", k2.ID(), k.ID())
	}
	pt, err := k2.Unwrap(ctx, wrapped, []byte("ad"))
	if err != nil || string(pt) != "data key" {
		t.Fatalf("Unwrap = %q, %v", pt, err)
	}
	if _, err := k2.Unwrap(ctx, wrapped, []byte("other ad")); err == nil {
		t.Fatal("Unwrap with other associated data succeeded")
	}
	if _, err := newTestKEK(t).Unwrap(ctx, wrapped, []byte("ad")); err == nil {
		t.Fatal("Unwrap with another KEK succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := k2.Wrap(cctx, []byte("x"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wrap with cancelled context: %v", err)
	}
}

func TestOpenLocalKEKRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek.json")
	if _, err := InitLocalKEK(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocalKEK(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("OpenLocalKEK of a 0644 file: %v", err)
	}

	// A parse error must not echo the file, which would be key material.
	garbage := filepath.Join(dir, "garbage.json")
	secret := `{"primaryKeyId": "SECRETSECRET", "key": [{"keyData": {"value": "SECRETSECRET"}}]}`
	if err := os.WriteFile(garbage, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenLocalKEK(garbage)
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("OpenLocalKEK of garbage: %v", err)
	}

	if _, err := OpenLocalKEK(filepath.Join(dir, "missing.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenLocalKEK of a missing file: %v", err)
	}
	if _, err := InitLocalKEK(filepath.Join(dir, "no", "such", "dir", "kek.json")); err == nil {
		t.Fatal("InitLocalKEK in a missing directory succeeded")
	}
}
