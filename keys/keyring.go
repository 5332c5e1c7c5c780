package keys

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// wrapLabel prefixes the associated data of a wrapped keyset, so a record
// copied to another name fails to unwrap instead of lending its keys.
const wrapLabel = "fleproxy/keyring/"

func wrapAD(name string) []byte { return []byte(wrapLabel + name) }

// KeyStatus is the Tink status of a key in a keyring.
type KeyStatus string

const (
	// KeyEnabled keys decrypt; the primary key, always enabled, encrypts.
	KeyEnabled KeyStatus = "enabled"
	// KeyDisabled keys are kept but neither encrypt nor decrypt.
	KeyDisabled KeyStatus = "disabled"
	// KeyDestroyed keys have had their material removed.
	KeyDestroyed KeyStatus = "destroyed"
	// KeyStatusUnknown is any other status.
	KeyStatusUnknown KeyStatus = "unknown"
)

func keyStatusFromProto(s tinkpb.KeyStatusType) KeyStatus {
	switch s {
	case tinkpb.KeyStatusType_ENABLED:
		return KeyEnabled
	case tinkpb.KeyStatusType_DISABLED:
		return KeyDisabled
	case tinkpb.KeyStatusType_DESTROYED:
		return KeyDestroyed
	default:
		return KeyStatusUnknown
	}
}

// KeyInfo describes one key of a keyring, without secrets.
type KeyInfo struct {
	// ID is the Tink key ID, the one envelopes carry (envelope.KeyID).
	ID uint32
	// Primary is true for the key that encrypts new values.
	Primary bool
	Status  KeyStatus
	// TypeURL is Tink's key type, e.g.
	// "type.googleapis.com/google.crypto.tink.AesGcmKey".
	TypeURL string
	// Created is when the key was generated; zero if not recorded.
	Created time.Time
}

// KeyringInfo describes a keyring, without secrets.
type KeyringInfo struct {
	Name         string
	Kind         Kind
	KEKID        string
	Version      int64
	UpdatedAt    time.Time
	PrimaryKeyID uint32
	// Keys in keyset order (oldest first).
	Keys []KeyInfo
}

func newKeyringInfo(rec Record, ksi *tinkpb.KeysetInfo) KeyringInfo {
	created := make(map[uint32]time.Time, len(rec.Keys))
	for _, k := range rec.Keys {
		created[k.ID] = k.Created
	}
	info := KeyringInfo{
		Name: rec.Name, Kind: rec.Kind, KEKID: rec.KEKID, Version: rec.Version, UpdatedAt: rec.UpdatedAt,
		PrimaryKeyID: ksi.GetPrimaryKeyId(),
		Keys:         make([]KeyInfo, 0, len(ksi.GetKeyInfo())),
	}
	for _, k := range ksi.GetKeyInfo() {
		info.Keys = append(info.Keys, KeyInfo{
			ID:      k.GetKeyId(),
			Primary: k.GetKeyId() == ksi.GetPrimaryKeyId(),
			Status:  keyStatusFromProto(k.GetStatus()),
			TypeURL: k.GetTypeUrl(),
			Created: created[k.GetKeyId()],
		})
	}
	return info
}

// recordInfo describes rec from the KeysetInfo Tink stores in clear beside
// the encrypted keyset, without the KEK. That metadata is not authenticated.
func recordInfo(rec Record) (KeyringInfo, error) {
	ek, err := keyset.NewJSONReader(bytes.NewReader(rec.Wrapped)).ReadEncrypted()
	if err != nil || ek.GetKeysetInfo() == nil {
		return KeyringInfo{}, fmt.Errorf("keys: keyring %q: wrapped keyset has no readable key information", rec.Name)
	}
	return newKeyringInfo(rec, ek.GetKeysetInfo()), nil
}

// Keyring is the unwrapped keyset of one key name, held only in memory. It
// is immutable and safe for concurrent use; a rotation produces a new
// Keyring. It offers no access to key bytes: encryption goes through
// [ColumnCipher].
type Keyring struct {
	info    KeyringInfo
	wrapped []byte // the record's Wrapped, identifying this exact state
	handle  *keyset.Handle
	aead    tink.AEAD // KindAEAD only
	enabled []uint32  // IDs of keys that may decrypt
}

// newKeyring checks that h suits rec.Kind and builds its primitive. The
// key information comes from the unwrapped, authenticated keyset.
func newKeyring(rec Record, h *keyset.Handle) (*Keyring, error) {
	if err := rec.Kind.check(); err != nil {
		return nil, fmt.Errorf("keys: keyring %q: %w", rec.Name, err)
	}
	kr := &Keyring{
		info:    newKeyringInfo(rec, h.KeysetInfo()),
		wrapped: rec.Wrapped,
		handle:  h,
	}
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			return nil, fmt.Errorf("keys: keyring %q: %w", rec.Name, ErrInvalidKeyset)
		}
		if !rec.Kind.acceptsKey(e.Key()) {
			return nil, fmt.Errorf("keys: keyring %q: key %08x is not a %s key with the TINK output prefix: %w", rec.Name, e.KeyID(), rec.Kind, ErrInvalidKeyset)
		}
		if e.KeyStatus() == keyset.Enabled {
			kr.enabled = append(kr.enabled, e.KeyID())
		}
	}
	if _, err := h.Primary(); err != nil {
		return nil, fmt.Errorf("keys: keyring %q: no primary key: %w", rec.Name, ErrInvalidKeyset)
	}
	switch rec.Kind {
	case KindAEAD:
		a, err := aead.New(h)
		if err != nil {
			return nil, fmt.Errorf("keys: keyring %q: %w: %v", rec.Name, ErrInvalidKeyset, err)
		}
		kr.aead = a
	}
	return kr, nil
}

// newKeysetHandle returns a keyset with one fresh key of kind k, primary.
func newKeysetHandle(k Kind) (*keyset.Handle, uint32, error) {
	return addPrimaryKey(keyset.NewManager(), k)
}

// addPrimaryKey adds a fresh key of kind k to km, makes it primary and
// returns the resulting keyset and the new key's ID.
func addPrimaryKey(km *keyset.Manager, k Kind) (*keyset.Handle, uint32, error) {
	params, err := k.newKeyParams()
	if err != nil {
		return nil, 0, err
	}
	id, err := km.AddNewKeyFromParameters(params)
	if err != nil {
		return nil, 0, fmt.Errorf("keys: generate %s key: %w", k, err)
	}
	if err := km.SetPrimary(id); err != nil {
		return nil, 0, fmt.Errorf("keys: %w", err)
	}
	h, err := km.Handle()
	if err != nil {
		return nil, 0, fmt.Errorf("keys: %w", err)
	}
	return h, id, nil
}

// wrapKeyset encrypts h with kek under the associated data of name and
// returns the JSON EncryptedKeyset (with its clear KeysetInfo).
func wrapKeyset(ctx context.Context, kek KEK, name string, h *keyset.Handle) ([]byte, error) {
	var buf bytes.Buffer
	a := &kekAEAD{kek: kek}
	if err := h.WriteWithContext(ctx, keyset.NewJSONWriter(&buf), a, wrapAD(name)); err != nil {
		if a.err != nil {
			return nil, fmt.Errorf("keys: wrap keyring %q with KEK %q: %w", name, kek.ID(), a.err)
		}
		return nil, fmt.Errorf("keys: wrap keyring %q with KEK %q: cannot serialize keyset", name, kek.ID())
	}
	return buf.Bytes(), nil
}

// unwrapKeyset decrypts rec.Wrapped with kek and checks it against rec.Kind.
func unwrapKeyset(ctx context.Context, kek KEK, rec Record) (*Keyring, error) {
	if rec.KEKID != kek.ID() {
		return nil, fmt.Errorf("keys: keyring %q: wrapped by KEK %q, configured KEK is %q: %w", rec.Name, rec.KEKID, kek.ID(), ErrKEKMismatch)
	}
	a := &kekAEAD{kek: kek}
	h, err := keyset.ReadWithContext(ctx, keyset.NewJSONReader(bytes.NewReader(rec.Wrapped)), a, wrapAD(rec.Name))
	if err != nil {
		if a.err != nil {
			return nil, fmt.Errorf("keys: keyring %q with KEK %q: %w: %w", rec.Name, kek.ID(), ErrUnwrap, a.err)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("keys: keyring %q: %w", rec.Name, ctxErr)
		}
		return nil, fmt.Errorf("keys: keyring %q with KEK %q: %w: malformed wrapped keyset", rec.Name, kek.ID(), ErrUnwrap)
	}
	return newKeyring(rec, h)
}

// Name returns the key name.
func (k *Keyring) Name() string { return k.info.Name }

// Kind returns the keyset kind.
func (k *Keyring) Kind() Kind { return k.info.Kind }

// Version returns the store version this keyring was read at.
func (k *Keyring) Version() int64 { return k.info.Version }

// PrimaryKeyID returns the Tink ID of the key that encrypts new values.
func (k *Keyring) PrimaryKeyID() uint32 { return k.info.PrimaryKeyID }

// Info describes the keyring from its authenticated keyset.
func (k *Keyring) Info() KeyringInfo {
	info := k.info
	info.Keys = slices.Clone(k.info.Keys)
	return info
}

// canDecrypt reports whether the key with Tink ID id is enabled.
func (k *Keyring) canDecrypt(id uint32) bool {
	for _, e := range k.enabled {
		if e == id {
			return true
		}
	}
	return false
}

// same reports whether rec is the state k was built from.
func (k *Keyring) same(rec Record) bool {
	return k.info.Version == rec.Version && bytes.Equal(k.wrapped, rec.Wrapped)
}

// String describes the keyring without secrets.
func (k *Keyring) String() string {
	return fmt.Sprintf("Keyring(%s, %s, version %d, primary %08x, %d keys)", k.info.Name, k.info.Kind, k.info.Version, k.info.PrimaryKeyID, len(k.info.Keys))
}

// GoString describes the keyring without secrets, for %#v.
func (k *Keyring) GoString() string { return k.String() }
