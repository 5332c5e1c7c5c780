package keys

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/fleproxy/fleproxy/envelope"
)

// ColumnCipher encrypts and decrypts the values of one protected column with
// one keyring: the capability the proxy gets instead of key bytes. It
// always uses the keyring currently held by its [Manager], so after a
// Rotate or Refresh it encrypts with the new primary key, and it still
// decrypts values under every enabled older key. It is safe for concurrent
// use.
//
// Values are version 1 envelopes (package envelope) whose associated data
// binds the mode and the column ID, so a value copied from another column,
// or altered in any byte, fails to decrypt.
type ColumnCipher struct {
	slot     *slot
	keyName  string
	columnID string
	mode     envelope.Mode
	header   [envelope.HeaderLen]byte
	ad       []byte // envelope.AssociatedData(mode, columnID); read-only
}

// ColumnCipher returns the cipher for the column with stable policy identity
// columnID, encrypting in mode with the keyring called keyName (loaded now
// if needed; ctx bounds that). Only envelope.Randomized with a KindAEAD
// keyring is available; other modes fail with ErrUnsupportedMode.
func (m *Manager) ColumnCipher(ctx context.Context, keyName, columnID string, mode envelope.Mode) (*ColumnCipher, error) {
	if columnID == "" {
		return nil, fmt.Errorf("keys: column cipher for keyring %q: empty column ID", keyName)
	}
	if mode != envelope.Randomized {
		return nil, fmt.Errorf("keys: column %q: %s: %w", columnID, mode, ErrUnsupportedMode)
	}
	kr, err := m.Keyring(ctx, keyName)
	if err != nil {
		return nil, err
	}
	if kr.Kind() != KindAEAD {
		return nil, fmt.Errorf("keys: column %q: keyring %q of kind %s cannot encrypt %s values: %w", columnID, keyName, kr.Kind(), mode, ErrUnsupportedMode)
	}
	return &ColumnCipher{
		slot:     m.slot(keyName),
		keyName:  keyName,
		columnID: columnID,
		mode:     mode,
		header:   envelope.Header(mode),
		ad:       envelope.AssociatedData(mode, columnID),
	}, nil
}

// KeyName returns the keyring name.
func (c *ColumnCipher) KeyName() string { return c.keyName }

// ColumnID returns the column identity bound into every value.
func (c *ColumnCipher) ColumnID() string { return c.columnID }

// Mode returns the envelope mode.
func (c *ColumnCipher) Mode() envelope.Mode { return c.mode }

// Encrypt returns the raw envelope of plaintext under the current primary
// key: HeaderLen + 5 + 12 + len(plaintext) + 16 bytes (for Text storage,
// pass it to envelope.Armor). It fails, wrapping ErrEncrypt, only if the
// keyring has been deleted or is no longer of a suitable kind.
func (c *ColumnCipher) Encrypt(plaintext []byte) ([]byte, error) {
	kr := c.slot.cur.Load()
	if kr == nil || kr.aead == nil {
		return nil, fmt.Errorf("keys: encrypt for column %q: %w: keyring %q is no longer available", c.columnID, ErrEncrypt, c.keyName)
	}
	ct, err := kr.aead.Encrypt(plaintext, c.ad)
	if err != nil {
		// Tink fails only on sizes beyond 2^36 bytes; its message holds
		// no data but is not needed either.
		return nil, fmt.Errorf("keys: encrypt for column %q: %w: %d-byte value", c.columnID, ErrEncrypt, len(plaintext))
	}
	out := make([]byte, envelope.HeaderLen+len(ct))
	copy(out, c.header[:])
	copy(out[envelope.HeaderLen:], ct)
	return out, nil
}

// Decrypt returns the plaintext of a raw envelope made by Encrypt for this
// column (for Text storage, envelope.Dearmor it first). Any failure is a
// *DecryptError, which matches ErrDecrypt: a malformed value (also matching
// envelope.ErrNotCiphertext), another mode, a key this keyring does not
// have or has disabled, or failed authentication (altered, from another
// column, or bound to another key).
func (c *ColumnCipher) Decrypt(raw []byte) ([]byte, error) {
	mode, tinkCT, err := envelope.Parse(raw)
	if err != nil {
		return nil, c.decryptError(DecryptMalformed, 0, err)
	}
	keyID := binary.BigEndian.Uint32(tinkCT[1:5])
	if mode != c.mode {
		return nil, c.decryptError(DecryptWrongMode, keyID, nil)
	}
	kr := c.slot.cur.Load()
	if kr == nil || kr.aead == nil {
		return nil, c.decryptError(DecryptKeyringUnavailable, keyID, nil)
	}
	if !kr.canDecrypt(keyID) {
		return nil, c.decryptError(DecryptUnknownKey, keyID, nil)
	}
	pt, err := kr.aead.Decrypt(tinkCT, c.ad)
	if err != nil {
		return nil, c.decryptError(DecryptAuthentication, keyID, nil)
	}
	return pt, nil
}

func (c *ColumnCipher) decryptError(r DecryptReason, keyID uint32, err error) error {
	return &DecryptError{KeyName: c.keyName, ColumnID: c.columnID, KeyID: keyID, Reason: r, err: err}
}

// DecryptReason says why a value did not decrypt.
type DecryptReason int

const (
	// DecryptMalformed: the value is not a well-formed envelope.
	DecryptMalformed DecryptReason = iota + 1
	// DecryptWrongMode: the envelope's mode is not the column's.
	DecryptWrongMode
	// DecryptKeyringUnavailable: the keyring has been deleted.
	DecryptKeyringUnavailable
	// DecryptUnknownKey: the envelope names a key the keyring lacks or has
	// disabled.
	DecryptUnknownKey
	// DecryptAuthentication: the key is known but authentication failed:
	// the value was altered or belongs to another column.
	DecryptAuthentication
)

// String returns a short description of the reason.
func (r DecryptReason) String() string {
	switch r {
	case DecryptMalformed:
		return "malformed value"
	case DecryptWrongMode:
		return "value of another mode"
	case DecryptKeyringUnavailable:
		return "keyring no longer available"
	case DecryptUnknownKey:
		return "unknown or disabled data key"
	case DecryptAuthentication:
		return "authentication failed (value altered or from another column)"
	default:
		return fmt.Sprintf("reason(%d)", int(r))
	}
}

// DecryptError reports a value that did not decrypt. It matches ErrDecrypt
// with errors.Is and holds only non-secret facts: names, the key ID from the
// envelope and the reason, never the value or key material.
type DecryptError struct {
	KeyName  string
	ColumnID string
	// KeyID is the data key named by the envelope; 0 if malformed.
	KeyID  uint32
	Reason DecryptReason
	err    error // an envelope format error, for DecryptMalformed
}

func (e *DecryptError) Error() string {
	s := fmt.Sprintf("keys: cannot decrypt value of column %q with keyring %q", e.ColumnID, e.KeyName)
	if e.KeyID != 0 {
		s += fmt.Sprintf(" (key %08x)", e.KeyID)
	}
	s += ": " + e.Reason.String()
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrDecrypt) true.
func (e *DecryptError) Is(target error) bool { return target == ErrDecrypt }

// Unwrap returns the envelope format error of a malformed value, else nil.
func (e *DecryptError) Unwrap() error { return e.err }
