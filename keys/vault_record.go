package keys

import (
	"bytes"
	"context"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
)

// RecordKeyVersion returns the version of the Transit key that wrapped
// rec's keyset, read from the ciphertext inside rec.Wrapped; it asks Vault
// nothing. It fails with ErrKEKMismatch if rec was wrapped by another KEK.
func (k *VaultTransitKEK) RecordKeyVersion(rec Record) (int, error) {
	ek, err := k.encryptedKeyset(rec)
	if err != nil {
		return 0, err
	}
	v, err := parseVaultVersion(ek.GetEncryptedKeyset())
	if err != nil {
		return 0, fmt.Errorf("keys: keyring %q: %w", rec.Name, err)
	}
	return v, nil
}

// RewrapRecord returns rec with its keyset rewrapped to the latest version
// of the Transit key ([VaultTransitKEK.Rewrap]) and everything else as it
// was; the keyset is never decrypted outside Vault. The caller stores it
// with Store.Update(next, rec.Version), so that a concurrent change is not
// overwritten; Managers pick the new record up on Refresh. It fails with
// ErrKEKMismatch if rec was wrapped by another KEK.
func (k *VaultTransitKEK) RewrapRecord(ctx context.Context, rec Record) (Record, error) {
	ek, err := k.encryptedKeyset(rec)
	if err != nil {
		return Record{}, err
	}
	ct, err := k.Rewrap(ctx, ek.GetEncryptedKeyset())
	if err != nil {
		return Record{}, fmt.Errorf("keys: rewrap keyring %q: %w", rec.Name, err)
	}
	next := &tinkpb.EncryptedKeyset{EncryptedKeyset: ct, KeysetInfo: ek.GetKeysetInfo()}
	var buf bytes.Buffer
	if err := keyset.NewJSONWriter(&buf).WriteEncrypted(next); err != nil {
		return Record{}, fmt.Errorf("keys: rewrap keyring %q: cannot serialize keyset", rec.Name)
	}
	out := cloneRecord(rec)
	out.Wrapped = buf.Bytes()
	return out, nil
}

// encryptedKeyset parses rec.Wrapped after checking rec belongs to k.
func (k *VaultTransitKEK) encryptedKeyset(rec Record) (*tinkpb.EncryptedKeyset, error) {
	if rec.KEKID != k.id {
		return nil, fmt.Errorf("keys: keyring %q: wrapped by KEK %q, not %q: %w", rec.Name, rec.KEKID, k.id, ErrKEKMismatch)
	}
	ek, err := keyset.NewJSONReader(bytes.NewReader(rec.Wrapped)).ReadEncrypted()
	if err != nil || len(ek.GetEncryptedKeyset()) == 0 {
		return nil, fmt.Errorf("keys: keyring %q: %w: malformed wrapped keyset", rec.Name, ErrUnwrap)
	}
	return ek, nil
}
