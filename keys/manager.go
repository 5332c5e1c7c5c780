package keys

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/keyset"
)

// maxRotateAttempts bounds how often Rotate retries after losing a
// compare-and-swap race to another writer.
const maxRotateAttempts = 8

// Manager creates, rotates, unwraps and caches keyrings, and hands out
// [ColumnCipher] capabilities. It also runs the rest of the key life cycle
// (lifecycle.go): [Manager.Rewrap] after a KEK rotation, [Manager.Retire]
// and [Manager.Enable] for single data keys, and [Manager.Destroy] for
// crypto-shredding a keyring. It reads and writes keyrings through a
// [Store] and wraps them with a [KEK]. Unwrapped keyrings live only in the
// Manager's memory; call [Manager.Refresh] periodically so rotations made by
// other replicas or admin commands take effect (and deleted keyrings stop
// working) without a restart. If the KEK or the store becomes unavailable,
// keyrings already loaded keep working.
//
// A Manager is safe for concurrent use.
type Manager struct {
	kek   KEK
	store Store
	now   func() time.Time

	mu    sync.Mutex
	slots map[string]*slot
}

// slot holds the current keyring of one name. ColumnCiphers keep a pointer to
// the slot, not to a keyring, so they follow rotations. Slots are never
// removed, so a cipher's slot stays the one the Manager updates.
type slot struct {
	name string
	sem  chan struct{} // capacity 1: serializes loads and replacements
	cur  atomic.Pointer[Keyring]
}

func (s *slot) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slot) unlock() { <-s.sem }

// NewManager returns a Manager that wraps keyrings with kek and keeps them
// in store. It panics if either is nil.
func NewManager(kek KEK, store Store) *Manager {
	if kek == nil || store == nil {
		panic("keys: NewManager needs a KEK and a Store")
	}
	return &Manager{kek: kek, store: store, now: time.Now, slots: make(map[string]*slot)}
}

func (m *Manager) slot(name string) *slot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.slots[name]
	if s == nil {
		s = &slot{name: name, sem: make(chan struct{}, 1)}
		m.slots[name] = s
	}
	return s
}

// install makes kr current. Unless replace is set, it keeps a later
// version already installed (by a concurrent Refresh), since a rotation only
// moves forward. It returns the keyring now current.
func (m *Manager) install(ctx context.Context, kr *Keyring, replace bool) *Keyring {
	s := m.slot(kr.Name())
	if err := s.lock(ctx); err != nil {
		return kr // cache left as is; the next Refresh catches up
	}
	defer s.unlock()
	if cur := s.cur.Load(); !replace && cur != nil && cur.Version() > kr.Version() {
		return cur
	}
	s.cur.Store(kr)
	return kr
}

// Create makes a new keyring called name of the given kind, with one fresh
// key as primary, wraps it with the KEK and stores it. It fails with
// ErrExists if the name is taken, ErrInvalidName or ErrUnsupportedKind for
// bad arguments, or with the KEK's or store's error.
func (m *Manager) Create(ctx context.Context, name string, kind Kind) (*Keyring, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := kind.check(); err != nil {
		return nil, fmt.Errorf("keys: keyring %q: %w", name, err)
	}
	h, id, err := newKeysetHandle(kind)
	if err != nil {
		return nil, err
	}
	wrapped, err := wrapKeyset(ctx, m.kek, name, h)
	if err != nil {
		return nil, err
	}
	rec, err := m.store.Create(ctx, Record{
		Name: name, Kind: kind, Wrapped: wrapped, KEKID: m.kek.ID(),
		Keys: []KeyMeta{{ID: id, Created: m.now().UTC()}},
	})
	if err != nil {
		return nil, err
	}
	kr, err := newKeyring(rec, h)
	if err != nil {
		return nil, err
	}
	// A new keyring replaces whatever an earlier keyring of the same name
	// left in the cache.
	return m.install(ctx, kr, true), nil
}

// Rotate adds a fresh key to the keyring called name and makes it the
// primary: new values are encrypted with it, values under older keys keep
// decrypting. The change is written with compare-and-swap and retried on
// conflict, so concurrent rotations from several replicas each add exactly
// one key and none is lost. The keyset is re-wrapped with the configured
// KEK. Rotate returns the new keyring, also made current in this Manager;
// other Managers pick it up on Refresh.
func (m *Manager) Rotate(ctx context.Context, name string) (*Keyring, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		rec, err := m.store.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		cur := m.slot(name).cur.Load()
		if cur == nil || !cur.same(rec) {
			if cur, err = unwrapKeyset(ctx, m.kek, rec); err != nil {
				return nil, err
			}
		}
		h, id, err := addPrimaryKey(keyset.NewManagerFromHandle(cur.handle), rec.Kind)
		if err != nil {
			return nil, err
		}
		wrapped, err := wrapKeyset(ctx, m.kek, name, h)
		if err != nil {
			return nil, err
		}
		next := rec
		next.Wrapped = wrapped
		next.KEKID = m.kek.ID()
		next.Keys = append(slices.Clone(rec.Keys), KeyMeta{ID: id, Created: m.now().UTC()})
		stored, err := m.store.Update(ctx, next, rec.Version)
		if errors.Is(err, ErrConflict) && attempt < maxRotateAttempts {
			continue
		}
		if err != nil {
			return nil, err
		}
		kr, err := newKeyring(stored, h)
		if err != nil {
			return nil, err
		}
		return m.install(ctx, kr, false), nil
	}
}

// Keyring returns the keyring called name, reading and unwrapping it on
// first use and caching it in memory afterwards. Concurrent first uses of a
// name share one unwrap. Errors: ErrNotFound, ErrKEKMismatch, ErrUnwrap,
// ErrInvalidKeyset, or the store's or context's error.
func (m *Manager) Keyring(ctx context.Context, name string) (*Keyring, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s := m.slot(name)
	if kr := s.cur.Load(); kr != nil {
		return kr, nil
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	if kr := s.cur.Load(); kr != nil {
		return kr, nil
	}
	rec, err := m.store.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	kr, err := unwrapKeyset(ctx, m.kek, rec)
	if err != nil {
		return nil, err
	}
	s.cur.Store(kr)
	return kr, nil
}

// Refresh re-reads the store and brings every keyring this Manager has been
// asked for up to date: a rotated keyring is unwrapped again and becomes
// current (ColumnCiphers switch to its primary key), a deleted one is dropped
// (its ColumnCiphers fail from then on). A keyring that cannot be re-read
// keeps its current state and its error is returned, joined with the others;
// a store failure changes nothing.
func (m *Manager) Refresh(ctx context.Context) error {
	recs, err := m.store.List(ctx)
	if err != nil {
		return err
	}
	byName := make(map[string]Record, len(recs))
	for _, r := range recs {
		byName[r.Name] = r
	}
	m.mu.Lock()
	slots := make([]*slot, 0, len(m.slots))
	for _, s := range m.slots {
		slots = append(slots, s)
	}
	m.mu.Unlock()

	var errs []error
	for _, s := range slots {
		cur := s.cur.Load()
		rec, ok := byName[s.name]
		if (cur == nil && !ok) || (cur != nil && ok && cur.same(rec)) {
			continue
		}
		if err := m.refreshSlot(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// refreshSlot re-reads one keyring under its slot lock, so that what it
// installs is the store's state at that moment, not the List snapshot.
func (m *Manager) refreshSlot(ctx context.Context, s *slot) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	rec, err := m.store.Get(ctx, s.name)
	if errors.Is(err, ErrNotFound) {
		s.cur.Store(nil)
		return nil
	}
	if err != nil {
		return err
	}
	if cur := s.cur.Load(); cur != nil && cur.same(rec) {
		return nil
	}
	kr, err := unwrapKeyset(ctx, m.kek, rec)
	if err != nil {
		return err
	}
	s.cur.Store(kr)
	return nil
}

// List describes every keyring in the store, ordered by name, without
// unwrapping anything (it works while the KEK is unavailable). Key IDs,
// primary and statuses come from the KeysetInfo Tink keeps in clear beside
// each encrypted keyset, which is not authenticated: it is for display, and
// operations that act on keys (rotate, retire) use the unwrapped keyset.
func (m *Manager) List(ctx context.Context) ([]KeyringInfo, error) {
	recs, err := m.store.List(ctx)
	if err != nil {
		return nil, err
	}
	infos := make([]KeyringInfo, 0, len(recs))
	for _, r := range recs {
		info, err := recordInfo(r)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}
