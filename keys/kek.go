package keys

import (
	"context"

	"github.com/tink-crypto/tink-go/v2/tink"
)

// A KEK (key-encryption key) encrypts data keysets so that they are stored
// only wrapped. Implementations are safe for concurrent use, honour ctx for
// cancellation (a remote KEK may block on the network), and never put key
// material or the plaintext in their errors.
type KEK interface {
	// Wrap encrypts plaintext, authenticating associatedData, and returns an
	// opaque ciphertext.
	Wrap(ctx context.Context, plaintext, associatedData []byte) ([]byte, error)
	// Unwrap reverses Wrap. It fails if wrapped was made by another KEK,
	// was altered, or associatedData differs from the one given to Wrap.
	Unwrap(ctx context.Context, wrapped, associatedData []byte) ([]byte, error)
	// ID is a stable, non-secret name of the key, such as
	// "local:1a2b3c4d" or "vault-transit:fleproxy", recorded with every
	// wrapped keyring so a mismatch is reported clearly.
	ID() string
}

// kekAEAD adapts a KEK to the tink.AEADWithContext that
// keyset.Handle.WriteWithContext and keyset.ReadWithContext expect, so the
// caller's context reaches the KEK on every call. Tink flattens the KEK's
// error into a string; kekAEAD keeps it so callers can still match it (for
// example context.DeadlineExceeded). Use one kekAEAD per operation.
type kekAEAD struct {
	kek KEK
	err error
}

var _ tink.AEADWithContext = (*kekAEAD)(nil)

func (a *kekAEAD) EncryptWithContext(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	ct, err := a.kek.Wrap(ctx, plaintext, associatedData)
	a.err = err
	return ct, err
}

func (a *kekAEAD) DecryptWithContext(ctx context.Context, ciphertext, associatedData []byte) ([]byte, error) {
	pt, err := a.kek.Unwrap(ctx, ciphertext, associatedData)
	a.err = err
	return pt, err
}
