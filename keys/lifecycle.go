package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
)

// This file holds the key administration of a [Manager] beyond creation and
// rotation: rewrapping every keyring after a KEK rotation, retiring (and
// re-enabling) single data keys, and destroying a whole keyring. Like the
// rest of the Manager, every change is a compare-and-swap on the record's
// Version, retried when another writer got there first, so no concurrent
// rotation or retirement is ever lost.

// Errors of the key lifecycle, for errors.Is.
var (
	// ErrKeyNotFound: the keyring has no data key with that ID.
	ErrKeyNotFound = errors.New("no such data key in the keyring")
	// ErrPrimaryKey: the operation does not apply to the primary key, which
	// encrypts every new value (rotate first).
	ErrPrimaryKey = errors.New("the key is the keyring's primary")
)

// Rewrapper is an optional interface of a [KEK] whose key has versions and
// which can move a wrapped value to its latest version itself, without the
// plaintext leaving the KEK service: [VaultTransitKEK] (Transit's rewrap
// endpoint, https://developer.hashicorp.com/vault/api-docs/secret/transit#rewrap-data).
// [Manager.Rewrap] uses it when the KEK has it, and unwraps and wraps again
// otherwise.
type Rewrapper interface {
	KEK
	// Rewrap re-encrypts a value made by Wrap with the latest version of the
	// key, keeping the associated data bound to it.
	Rewrap(ctx context.Context, wrapped []byte) ([]byte, error)
	// KeyVersion returns the version of the key that made wrapped, without
	// asking the KEK service.
	KeyVersion(wrapped []byte) (int, error)
}

var _ Rewrapper = (*VaultTransitKEK)(nil)

// RewrapReport is what [Manager.Rewrap] did, keyring by keyring.
type RewrapReport struct {
	// KEKID is the configured KEK's [KEK.ID].
	KEKID string
	// Versioned is true when the KEK is a [Rewrapper], whose key versions
	// the results report; false for a KEK without versions (the keysets
	// were unwrapped and wrapped again, and the versions are 0).
	Versioned bool
	// Keyrings holds one result per keyring in the store, ordered by name.
	Keyrings []RewrapResult
}

// RewrapResult is the rewrap of one keyring.
type RewrapResult struct {
	Name string
	// Before and After are the versions of the KEK's key that wrapped the
	// keyset before and after the rewrap; 0 when the KEK has no versions or
	// the keyring could not be read.
	Before, After int
	// Rewrapped is true when a new wrapping was stored.
	Rewrapped bool
	// Version is the keyring's store version after the rewrap.
	Version int64
	// Err is why this keyring was not rewrapped; nil on success.
	Err error
}

// MinVersion returns the lowest KEK key version that wraps any keyring of
// the report after the rewrap, or 0 if the KEK has no versions, some keyring
// failed, or there are no keyrings. Keyrings in this store no longer need
// any older version: raising the KEK's minimum decryption version (Vault
// Transit's min_decryption_version) up to MinVersion is safe for them.
func (r *RewrapReport) MinVersion() int {
	if !r.Versioned || len(r.Keyrings) == 0 {
		return 0
	}
	least := 0
	for _, k := range r.Keyrings {
		if k.Err != nil || k.After == 0 {
			return 0
		}
		if least == 0 || k.After < least {
			least = k.After
		}
	}
	return least
}

// Rewrap wraps every keyring in the store again with the latest version of
// the KEK, so that older versions of the KEK can be retired (after rotating
// the Transit key in Vault, before raising its min_decryption_version). The
// data keys do not change and nothing needs re-encrypting.
//
// With a KEK that is a [Rewrapper] the keyset is rewrapped inside the KEK
// service and never unwrapped by fleproxy for it; a keyring already wrapped
// by the latest version is left as it is, so running Rewrap again changes
// nothing. With another KEK each keyset is unwrapped and wrapped again.
// Either way the new wrapping is unwrapped once before it replaces the
// stored one, so a wrapping that would not open is never stored (the
// credentials need decrypt permission as well as rewrap). Each replacement
// is a compare-and-swap, retried on conflict, so a rotation made meanwhile
// is kept. Other Managers pick the new wrappings up on Refresh.
//
// A keyring wrapped by another KEK (ErrKEKMismatch) or that fails does not
// stop the others: the report holds every keyring, and the error joins the
// failures. A failure to list the store returns a nil report.
func (m *Manager) Rewrap(ctx context.Context) (*RewrapReport, error) {
	recs, err := m.store.List(ctx)
	if err != nil {
		return nil, err
	}
	_, versioned := m.kek.(Rewrapper)
	rep := &RewrapReport{KEKID: m.kek.ID(), Versioned: versioned, Keyrings: make([]RewrapResult, 0, len(recs))}
	var errs []error
	for _, rec := range recs {
		res := m.rewrapKeyring(ctx, rec)
		if res.Err != nil {
			errs = append(errs, res.Err)
		}
		rep.Keyrings = append(rep.Keyrings, res)
	}
	return rep, errors.Join(errs...)
}

// rewrapKeyring rewraps one keyring, starting from rec as listed.
func (m *Manager) rewrapKeyring(ctx context.Context, rec Record) RewrapResult {
	res := RewrapResult{Name: rec.Name, Version: rec.Version}
	for attempt := 1; ; attempt++ {
		next, before, after, err := m.rewrapRecord(ctx, rec)
		if err != nil {
			res.Err = err
			return res
		}
		res.Before, res.After, res.Version = before, after, rec.Version
		if next == nil {
			return res
		}
		kr, err := unwrapKeyset(ctx, m.kek, *next)
		if err != nil {
			res.Err = fmt.Errorf("keys: rewrap keyring %q: the new wrapping does not unwrap, so it was not stored: %w", rec.Name, err)
			return res
		}
		if next.Wrapped, err = withKeysetInfo(next.Wrapped, kr.handle); err != nil {
			res.Err = fmt.Errorf("keys: rewrap keyring %q: %w", rec.Name, err)
			return res
		}
		stored, err := m.store.Update(ctx, *next, rec.Version)
		if errors.Is(err, ErrConflict) && attempt < maxRotateAttempts {
			if rec, err = m.store.Get(ctx, rec.Name); err != nil {
				res.Err = err
				return res
			}
			continue
		}
		if err != nil {
			res.Err = err
			return res
		}
		res.Rewrapped, res.Version = true, stored.Version
		if kr, err = newKeyring(stored, kr.handle); err == nil {
			m.installIfUsed(ctx, kr)
		}
		return res
	}
}

// rewrapRecord returns rec with its keyset wrapped by the KEK's latest key
// version, or nil if a Rewrapper says it already is; before and after are
// the KEK key versions (0 for a KEK without versions).
func (m *Manager) rewrapRecord(ctx context.Context, rec Record) (next *Record, before, after int, err error) {
	if rec.KEKID != m.kek.ID() {
		return nil, 0, 0, fmt.Errorf("keys: rewrap keyring %q: wrapped by KEK %q, configured KEK is %q: %w", rec.Name, rec.KEKID, m.kek.ID(), ErrKEKMismatch)
	}
	rw, ok := m.kek.(Rewrapper)
	if !ok {
		kr, err := m.current(ctx, rec)
		if err != nil {
			return nil, 0, 0, err
		}
		wrapped, err := wrapKeyset(ctx, m.kek, rec.Name, kr.handle)
		if err != nil {
			return nil, 0, 0, err
		}
		out := cloneRecord(rec)
		out.Wrapped = wrapped
		return &out, 0, 0, nil
	}
	ek, err := keyset.NewJSONReader(bytes.NewReader(rec.Wrapped)).ReadEncrypted()
	if err != nil || len(ek.GetEncryptedKeyset()) == 0 {
		return nil, 0, 0, fmt.Errorf("keys: rewrap keyring %q: %w: malformed wrapped keyset", rec.Name, ErrUnwrap)
	}
	if before, err = rw.KeyVersion(ek.GetEncryptedKeyset()); err != nil {
		return nil, 0, 0, fmt.Errorf("keys: rewrap keyring %q: %w", rec.Name, err)
	}
	ct, err := rw.Rewrap(ctx, ek.GetEncryptedKeyset())
	if err != nil {
		return nil, before, 0, fmt.Errorf("keys: rewrap keyring %q: %w", rec.Name, err)
	}
	if after, err = rw.KeyVersion(ct); err != nil {
		return nil, before, 0, fmt.Errorf("keys: rewrap keyring %q: %w", rec.Name, err)
	}
	if after <= before {
		return nil, before, before, nil
	}
	wrapped, err := encodeEncryptedKeyset(ct, ek.GetKeysetInfo())
	if err != nil {
		return nil, before, after, fmt.Errorf("keys: rewrap keyring %q: %w", rec.Name, err)
	}
	out := cloneRecord(rec)
	out.Wrapped = wrapped
	return &out, before, after, nil
}

// encodeEncryptedKeyset serializes a wrapped keyset and its clear key
// information as Tink's JSON EncryptedKeyset.
func encodeEncryptedKeyset(ct []byte, info *tinkpb.KeysetInfo) ([]byte, error) {
	var buf bytes.Buffer
	if err := keyset.NewJSONWriter(&buf).WriteEncrypted(&tinkpb.EncryptedKeyset{EncryptedKeyset: ct, KeysetInfo: info}); err != nil {
		return nil, errors.New("cannot serialize keyset")
	}
	return buf.Bytes(), nil
}

// withKeysetInfo replaces the clear key information of a JSON
// EncryptedKeyset with the one of h, the keyset it was just verified to
// hold, so that what `keys list` shows comes from the authenticated keyset.
func withKeysetInfo(wrapped []byte, h *keyset.Handle) ([]byte, error) {
	ek, err := keyset.NewJSONReader(bytes.NewReader(wrapped)).ReadEncrypted()
	if err != nil {
		return nil, errors.New("cannot parse the wrapped keyset")
	}
	return encodeEncryptedKeyset(ek.GetEncryptedKeyset(), h.KeysetInfo())
}

// Retire disables data key keyID of keyring name: from then on it neither
// encrypts nor decrypts, so values still under it fail to decrypt with
// DecryptUnknownKey, at once in this Manager and in others when they
// Refresh. The key stays, disabled, in the wrapped keyset, so
// [Manager.Enable] undoes a retirement.
//
// Retire does not look at stored values: making sure that none is still
// under the key (re-encrypting them first) is the caller's job, as
// `fleproxy keys retire` does. It refuses the primary key (ErrPrimaryKey)
// and an ID the keyring lacks (ErrKeyNotFound); retiring a key already
// disabled changes nothing. The change is a compare-and-swap, retried on
// conflict.
func (m *Manager) Retire(ctx context.Context, name string, keyID uint32) error {
	return m.setKeyStatus(ctx, name, keyID, KeyDisabled)
}

// Enable enables data key keyID of keyring name again after [Manager.Retire],
// so values under it decrypt again (it does not become the primary).
// Enabling an enabled key changes nothing; an ID the keyring lacks fails
// with ErrKeyNotFound.
func (m *Manager) Enable(ctx context.Context, name string, keyID uint32) error {
	return m.setKeyStatus(ctx, name, keyID, KeyEnabled)
}

// setKeyStatus sets the status of one key of keyring name to want
// (KeyEnabled or KeyDisabled), decided on the unwrapped, authenticated
// keyset.
func (m *Manager) setKeyStatus(ctx context.Context, name string, keyID uint32, want KeyStatus) error {
	if err := checkName(name); err != nil {
		return err
	}
	verb := map[KeyStatus]string{KeyDisabled: "retire", KeyEnabled: "enable"}[want]
	for attempt := 1; ; attempt++ {
		rec, err := m.store.Get(ctx, name)
		if err != nil {
			return err
		}
		kr, err := m.current(ctx, rec)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(kr.info.Keys, func(k KeyInfo) bool { return k.ID == keyID })
		switch {
		case i < 0:
			return fmt.Errorf("keys: %s key %08x of keyring %q: %w", verb, keyID, name, ErrKeyNotFound)
		case kr.info.Keys[i].Primary && want == KeyDisabled:
			return fmt.Errorf("keys: retire key %08x of keyring %q: %w; rotate the keyring first", keyID, name, ErrPrimaryKey)
		case kr.info.Keys[i].Status == want:
			return nil
		}
		km := keyset.NewManagerFromHandle(kr.handle)
		if want == KeyDisabled {
			err = km.Disable(keyID)
		} else {
			err = km.Enable(keyID)
		}
		if err != nil {
			// A destroyed key, say: Tink's message names only the ID and status.
			return fmt.Errorf("keys: %s key %08x of keyring %q: %w", verb, keyID, name, err)
		}
		h, err := km.Handle()
		if err != nil {
			return fmt.Errorf("keys: %s key %08x of keyring %q: %w", verb, keyID, name, err)
		}
		wrapped, err := wrapKeyset(ctx, m.kek, name, h)
		if err != nil {
			return err
		}
		next := cloneRecord(rec)
		next.Wrapped = wrapped
		next.KEKID = m.kek.ID()
		stored, err := m.store.Update(ctx, next, rec.Version)
		if errors.Is(err, ErrConflict) && attempt < maxRotateAttempts {
			continue
		}
		if err != nil {
			return err
		}
		nk, err := newKeyring(stored, h)
		if err != nil {
			return err
		}
		m.installIfUsed(ctx, nk)
		return nil
	}
}

// Destroy deletes keyring name from the store: crypto-shredding. Once no
// copy of the wrapped keyring is left (database backups of the store hold
// one too), every value encrypted under it is unrecoverable. This Manager
// drops its unwrapped copy at once, other Managers on their next Refresh;
// from then on their ColumnCiphers for the keyring fail: Decrypt with a
// *DecryptError of reason DecryptKeyringUnavailable, Encrypt with
// ErrEncrypt. The Go runtime gives no way to wipe the key bytes held inside
// Tink's primitives, so dropping every reference to them is as far as
// "forgetting" goes in memory.
//
// Destroy needs no KEK. It fails with ErrNotFound if there is no such
// keyring; the deletion is a compare-and-swap, retried on conflict.
func (m *Manager) Destroy(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		rec, err := m.store.Get(ctx, name)
		if err != nil {
			return err
		}
		err = m.store.Delete(ctx, name, rec.Version)
		if errors.Is(err, ErrConflict) && attempt < maxRotateAttempts {
			continue
		}
		if errors.Is(err, ErrNotFound) {
			break // destroyed concurrently
		}
		if err != nil {
			return err
		}
		break
	}
	m.mu.Lock()
	s := m.slots[name]
	m.mu.Unlock()
	if s != nil {
		// Under the slot lock, so a load or refresh in flight cannot put the
		// keyring back afterwards; without it (ctx ended) the next Refresh
		// drops whatever such a load installed.
		if err := s.lock(ctx); err == nil {
			defer s.unlock()
		}
		s.cur.Store(nil)
	}
	return nil
}

// current returns the keyring of rec: the one this Manager holds if it is
// exactly rec's state, else rec unwrapped.
func (m *Manager) current(ctx context.Context, rec Record) (*Keyring, error) {
	m.mu.Lock()
	s := m.slots[rec.Name]
	m.mu.Unlock()
	if s != nil {
		if cur := s.cur.Load(); cur != nil && cur.same(rec) {
			return cur, nil
		}
	}
	return unwrapKeyset(ctx, m.kek, rec)
}

// installIfUsed makes kr current if this Manager holds its keyring (has
// handed it out), without creating a slot that Refresh would then keep
// loading.
func (m *Manager) installIfUsed(ctx context.Context, kr *Keyring) {
	m.mu.Lock()
	_, used := m.slots[kr.Name()]
	m.mu.Unlock()
	if used {
		m.install(ctx, kr, false)
	}
}
