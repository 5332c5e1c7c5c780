package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// maxLocalKEKFile bounds how much OpenLocalKEK reads; a one-key JSON keyset
// is a few hundred bytes.
const maxLocalKEKFile = 64 << 10

// LocalKEK is a DEVELOPMENT-ONLY [KEK] whose key sits in cleartext in a local
// file. It is NOT FOR PRODUCTION: anyone who can read the file (or a backup
// of it) can unwrap every keyring, which defeats the point of a KEK held in
// Vault. It exists so that fleproxy runs out of the box on a laptop and in
// tests.
//
// The file is a Tink JSON keyset
// (https://developers.google.com/tink/wire-format#keyset_serialization)
// holding one AES-256-GCM key, written in the clear with Tink's
// insecurecleartextkeyset package, mode 0600. Wrapped values are Tink AEAD
// ciphertexts (TINK prefix || IV || ciphertext || tag).
//
// A LocalKEK is safe for concurrent use. Opening it logs nothing.
type LocalKEK struct {
	id   string
	aead tink.AEAD
}

var _ KEK = (*LocalKEK)(nil)

// InitLocalKEK creates a new development-only KEK file at path (see
// [LocalKEK]) and returns it opened. It refuses to overwrite an existing
// file (the error wraps fs.ErrExist): overwriting would orphan every
// keyring wrapped by the old key. The parent directory must exist. The file
// appears atomically, complete, with mode 0600.
func InitLocalKEK(path string) (*LocalKEK, error) {
	km := keyset.NewManager()
	id, err := km.AddNewKeyFromParameters(aes256GCMParams())
	if err != nil {
		return nil, fmt.Errorf("keys: local KEK: generate key: %w", err)
	}
	if err := km.SetPrimary(id); err != nil {
		return nil, fmt.Errorf("keys: local KEK: %w", err)
	}
	h, err := km.Handle()
	if err != nil {
		return nil, fmt.Errorf("keys: local KEK: %w", err)
	}
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return nil, errors.New("keys: local KEK: cannot serialize keyset")
	}
	defer clear(buf.Bytes())

	if err := writeNewFile(path, buf.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("keys: local KEK %s: %w", path, err)
	}
	return newLocalKEK(h)
}

// OpenLocalKEK opens the development-only KEK file at path made by
// [InitLocalKEK]. It refuses a file that group or others may access, as ssh
// does for private keys, and a keyset whose primary key is not an
// AES-256-GCM key with the TINK output prefix.
func OpenLocalKEK(path string) (*LocalKEK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: local KEK: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys: local KEK: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("keys: local KEK %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keys: local KEK %s: file mode %04o lets group or others access the key; run chmod 600", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxLocalKEKFile+1))
	defer clear(b)
	if err != nil {
		return nil, fmt.Errorf("keys: local KEK: %w", err)
	}
	if len(b) > maxLocalKEKFile {
		return nil, fmt.Errorf("keys: local KEK %s: file larger than %d bytes", path, maxLocalKEKFile)
	}
	// Tink's parse errors may quote the input, which is key material, so
	// they are not passed on.
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(b)))
	if err != nil {
		return nil, fmt.Errorf("keys: local KEK %s: not a Tink JSON keyset", path)
	}
	k, err := newLocalKEK(h)
	if err != nil {
		return nil, fmt.Errorf("keys: local KEK %s: %w", path, err)
	}
	return k, nil
}

func newLocalKEK(h *keyset.Handle) (*LocalKEK, error) {
	p, err := h.Primary()
	if err != nil {
		return nil, errors.New("keyset has no primary key")
	}
	if !isAES256GCMTink(p.Key()) {
		return nil, errors.New("primary key is not AES-256-GCM with the TINK output prefix")
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("cannot build AEAD: %w", err)
	}
	return &LocalKEK{id: fmt.Sprintf("local:%08x", p.KeyID()), aead: a}, nil
}

// ID returns "local:" and the Tink key ID of the primary key in hex. It
// names the key, not the file, so moving the file keeps keyrings readable.
func (k *LocalKEK) ID() string { return k.id }

// Wrap encrypts plaintext with AES-256-GCM, authenticating associatedData.
func (k *LocalKEK) Wrap(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ct, err := k.aead.Encrypt(plaintext, associatedData)
	if err != nil {
		return nil, fmt.Errorf("keys: local KEK %s: wrap failed", k.id)
	}
	return ct, nil
}

// Unwrap decrypts a value made by Wrap with the same associatedData. It
// fails if the value was wrapped by another key, altered, or bound to other
// associated data.
func (k *LocalKEK) Unwrap(ctx context.Context, wrapped, associatedData []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pt, err := k.aead.Decrypt(wrapped, associatedData)
	if err != nil {
		return nil, fmt.Errorf("keys: local KEK %s: unwrap failed (other key, altered data or other associated data)", k.id)
	}
	return pt, nil
}

// String describes the KEK without secrets.
func (k *LocalKEK) String() string { return "LocalKEK(" + k.id + ")" }

// GoString describes the KEK without secrets, for %#v.
func (k *LocalKEK) GoString() string { return k.String() }

// writeNewFile writes data to path atomically and only if path does not
// exist: it writes a temporary file in the same directory, syncs it, and
// hard-links it into place (link fails on an existing name, unlike rename).
func writeNewFile(path string, data []byte, perm fs.FileMode) (err error) {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("refusing to overwrite: %w", fs.ErrExist)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("refusing to overwrite: %w", fs.ErrExist)
		}
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
