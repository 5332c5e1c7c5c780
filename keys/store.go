package keys

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Record is a keyring as a [Store] keeps it: the keyset wrapped by the KEK
// and non-secret metadata. Nothing in a Record is secret.
type Record struct {
	// Name is the key name from the policy: 1 to 128 characters from
	// A-Z a-z 0-9 . _ -, not starting with '.'.
	Name string
	// Kind is the kind of keyset in Wrapped.
	Kind Kind
	// Wrapped is a Tink EncryptedKeyset proto in Tink's JSON form
	// (https://developers.google.com/tink/wire-format#keyset_serialization):
	// "encryptedKeyset", the binary keyset encrypted by the KEK with
	// associated data "fleproxy/keyring/" + Name, and "keysetInfo", Tink's
	// clear, unauthenticated list of key IDs, statuses and type URLs (no key
	// material), which lets keyrings be listed without the KEK.
	Wrapped []byte
	// KEKID is the [KEK.ID] of the KEK that wrapped the keyset.
	KEKID string
	// Keys records when each key was added (Tink keysets carry no
	// timestamps). It is informational and not authenticated.
	Keys []KeyMeta
	// Version is the optimistic-concurrency counter: 1 after Create, +1 on
	// every Update. The caller's value is ignored by Create and Update.
	Version int64
	// UpdatedAt is when the store last wrote the record, set by the store.
	UpdatedAt time.Time
}

// KeyMeta is non-secret metadata about one key of a keyring.
type KeyMeta struct {
	// ID is the Tink key ID.
	ID uint32 `json:"id"`
	// Created is when the key was generated.
	Created time.Time `json:"created"`
}

// Store keeps wrapped keyrings. Implementations are safe for concurrent use
// (PostgresStore when its Querier is),
// and Update and Delete are compare-and-swap operations on Version, so that
// several replicas or admin commands never silently overwrite each other.
type Store interface {
	// Get returns the record called name, or an error wrapping ErrNotFound.
	Get(ctx context.Context, name string) (Record, error)
	// List returns all records, ordered by name.
	List(ctx context.Context) ([]Record, error)
	// Create stores a new record with Version 1 and returns it as stored. It
	// fails with ErrExists if the name is taken.
	Create(ctx context.Context, rec Record) (Record, error)
	// Update replaces the record called rec.Name if its stored version is
	// expectedVersion, and returns it as stored, with Version
	// expectedVersion+1. It fails with ErrConflict if the version differs,
	// ErrNotFound if there is no such record.
	Update(ctx context.Context, rec Record, expectedVersion int64) (Record, error)
	// Delete removes the record called name if its stored version is
	// expectedVersion. It fails with ErrConflict if the version differs,
	// ErrNotFound if there is no such record. Deleting the only wrapped copy
	// of a keyring destroys its keys (crypto-shredding).
	Delete(ctx context.Context, name string, expectedVersion int64) error
}

// Errors of this package, for errors.Is.
var (
	// ErrNotFound: no keyring of that name exists.
	ErrNotFound = errors.New("keyring not found")
	// ErrExists: a keyring of that name already exists.
	ErrExists = errors.New("keyring already exists")
	// ErrConflict: the keyring changed since it was read (compare-and-swap
	// failure); re-read and retry.
	ErrConflict = errors.New("keyring changed concurrently")
	// ErrInvalidName: the key name is not acceptable (see Record.Name).
	ErrInvalidName = errors.New("invalid keyring name")
	// ErrUnsupportedKind: the keyring kind is not one this build knows.
	ErrUnsupportedKind = errors.New("unsupported keyring kind")
	// ErrUnsupportedMode: the envelope mode is not available for this
	// keyring (or not implemented yet).
	ErrUnsupportedMode = errors.New("unsupported encryption mode")
	// ErrKEKMismatch: the keyring was wrapped by a KEK other than the one
	// configured.
	ErrKEKMismatch = errors.New("keyring wrapped by another KEK")
	// ErrUnwrap: the KEK could not unwrap the keyset: wrong key, altered
	// record, or a record moved to another name.
	ErrUnwrap = errors.New("cannot unwrap keyring")
	// ErrInvalidKeyset: the unwrapped keyset does not fit the keyring's kind.
	ErrInvalidKeyset = errors.New("invalid keyset")
	// ErrEncrypt: a value could not be encrypted.
	ErrEncrypt = errors.New("cannot encrypt")
	// ErrDecrypt: a value could not be decrypted; see DecryptError.
	ErrDecrypt = errors.New("cannot decrypt")
)

const maxNameLen = 128

// checkName enforces the Record.Name rule; names become file names in
// FileStore and appear in associated data, so they are kept plain.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen || name[0] == '.' {
		return fmt.Errorf("%w: %q: want 1 to %d characters from A-Z a-z 0-9 . _ -, not starting with '.'", ErrInvalidName, name, maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q: want 1 to %d characters from A-Z a-z 0-9 . _ -, not starting with '.'", ErrInvalidName, name, maxNameLen)
		}
	}
	return nil
}

// checkRecord validates what a store is asked to write.
func checkRecord(rec Record) error {
	if err := checkName(rec.Name); err != nil {
		return err
	}
	if rec.Kind == "" {
		return fmt.Errorf("keys: record %q: empty kind", rec.Name)
	}
	if len(rec.Wrapped) == 0 {
		return fmt.Errorf("keys: record %q: empty wrapped keyset", rec.Name)
	}
	if rec.KEKID == "" {
		return fmt.Errorf("keys: record %q: empty KEK ID", rec.Name)
	}
	return nil
}

// cloneRecord returns rec with its slices copied, so a store's caller and
// its cache never share memory.
func cloneRecord(rec Record) Record {
	rec.Wrapped = append([]byte(nil), rec.Wrapped...)
	rec.Keys = append([]KeyMeta(nil), rec.Keys...)
	return rec
}
