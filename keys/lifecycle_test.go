package keys

import (
	"context"
	"errors"
	"testing"
)

// conflictStore makes the first Update (or Delete) lose a compare-and-swap
// race: before it, another replica rotates the keyring.
type conflictStore struct {
	Store
	rival *Manager
	fired bool
}

func (s *conflictStore) race(ctx context.Context, name string) error {
	if s.fired {
		return nil
	}
	s.fired = true
	_, err := s.rival.Rotate(ctx, name)
	return err
}

func (s *conflictStore) Update(ctx context.Context, rec Record, expected int64) (Record, error) {
	if err := s.race(ctx, rec.Name); err != nil {
		return Record{}, err
	}
	return s.Store.Update(ctx, rec, expected)
}

func (s *conflictStore) Delete(ctx context.Context, name string, expected int64) error {
	if err := s.race(ctx, name); err != nil {
		return err
	}
	return s.Store.Delete(ctx, name, expected)
}

func TestRetireAndEnable(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	first := mustCreate(t, f.m, "pii").PrimaryKeyID()
	c := mustCipher(t, f.m, "pii", colEmail)
	old, err := c.Encrypt([]byte("alice@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.m.Rotate(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	peer := f.peer()
	pc := mustCipher(t, peer, "pii", colEmail)

	if err := f.m.Retire(ctx, "pii", second.PrimaryKeyID()); !errors.Is(err, ErrPrimaryKey) {
		t.Fatalf("retiring the primary: %v, want ErrPrimaryKey", err)
	}
	if err := f.m.Retire(ctx, "pii", 12345); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("retiring an unknown key: %v, want ErrKeyNotFound", err)
	}
	if err := f.m.Retire(ctx, "nope", first); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retiring in a missing keyring: %v, want ErrNotFound", err)
	}

	if err := f.m.Retire(ctx, "pii", first); err != nil {
		t.Fatal(err)
	}
	_, err = c.Decrypt(old)
	wantDecryptError(t, err, DecryptUnknownKey)
	if _, err := pc.Decrypt(old); err != nil {
		t.Fatalf("the peer stopped decrypting before its Refresh: %v", err)
	}
	if err := peer.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = pc.Decrypt(old)
	wantDecryptError(t, err, DecryptUnknownKey)
	fresh, err := c.Encrypt([]byte("bob@example.com"))
	if err != nil || keyIDOf(t, fresh) != second.PrimaryKeyID() {
		t.Fatalf("encrypt after retire: key %08x, %v", keyIDOf(t, fresh), err)
	}
	rec, err := f.store.Get(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	info, err := recordInfo(rec)
	if err != nil {
		t.Fatal(err)
	}
	if info.Keys[0].Status != KeyDisabled || info.Keys[1].Status != KeyEnabled || len(rec.Keys) != 2 {
		t.Fatalf("stored keyring after retire: %+v", info)
	}

	// Retiring again writes nothing.
	if err := f.m.Retire(ctx, "pii", first); err != nil {
		t.Fatal(err)
	}
	if again, _ := f.store.Get(ctx, "pii"); again.Version != rec.Version {
		t.Fatalf("second retire wrote version %d (was %d)", again.Version, rec.Version)
	}

	if err := f.m.Enable(ctx, "pii", first); err != nil {
		t.Fatal(err)
	}
	if pt, err := c.Decrypt(old); err != nil || string(pt) != "alice@example.com" {
		t.Fatalf("decrypt after enable: %v", err)
	}
	if err := f.m.Enable(ctx, "pii", 12345); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("enabling an unknown key: %v", err)
	}
}

// TestRetireKeepsConcurrentRotation: a rotation that lands between Retire's
// read and its write is kept, and the retirement applies on top of it.
func TestRetireKeepsConcurrentRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	first := mustCreate(t, f.m, "pii").PrimaryKeyID()
	if _, err := f.m.Rotate(ctx, "pii"); err != nil {
		t.Fatal(err)
	}
	cs := &conflictStore{Store: f.store, rival: f.peer()}
	m := NewManager(f.kek, cs)
	if err := m.Retire(ctx, "pii", first); err != nil {
		t.Fatal(err)
	}
	kr, err := f.peer().Keyring(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	info := kr.Info()
	if len(info.Keys) != 3 || info.Keys[0].Status != KeyDisabled || info.PrimaryKeyID != info.Keys[2].ID {
		t.Fatalf("after a retire that raced a rotation: %+v", info)
	}
}

func TestRewrapLocalKEK(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	creator := f.peer()
	mustCreate(t, creator, "a")
	mustCreate(t, creator, "b")
	c := mustCipher(t, f.m, "a", colEmail)
	ct, err := c.Encrypt([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.m.Rewrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Versioned || rep.KEKID != f.kek.ID() || len(rep.Keyrings) != 2 || rep.MinVersion() != 0 {
		t.Fatalf("report: %+v", rep)
	}
	for _, k := range rep.Keyrings {
		if !k.Rewrapped || k.Version != 2 || k.Err != nil {
			t.Errorf("keyring %s: %+v", k.Name, k)
		}
	}
	peer := f.peer()
	if pt, err := mustCipher(t, peer, "a", colEmail).Decrypt(ct); err != nil || string(pt) != "x" {
		t.Fatalf("decrypt with the rewrapped keyring: %v", err)
	}
	if pt, err := c.Decrypt(ct); err != nil || string(pt) != "x" {
		t.Fatalf("decrypt in the Manager that rewrapped: %v", err)
	}
	// A Manager that had handed out a cipher switches at once; one that had
	// not is not made to load every keyring.
	if kr, _ := f.m.Keyring(ctx, "a"); kr.Version() != 2 {
		t.Errorf("cached keyring a at version %d after rewrap", kr.Version())
	}
	if len(f.m.slots) != 1 {
		t.Errorf("Rewrap created slots: %d", len(f.m.slots))
	}
}

func TestRewrapKeepsConcurrentRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	cs := &conflictStore{Store: f.store, rival: f.peer()}
	rep, err := NewManager(f.kek, cs).Rewrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Keyrings[0]; !r.Rewrapped || r.Version != 3 {
		t.Fatalf("rewrap after a lost race: %+v", r)
	}
	kr, err := f.peer().Keyring(ctx, "pii")
	if err != nil || len(kr.Info().Keys) != 2 {
		t.Fatalf("the concurrent rotation was lost: %v %v", kr, err)
	}
}

func TestRewrapOtherKEK(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustCreate(t, f.m, "mine")
	other := NewManager(newTestKEK(t), f.store)
	mustCreate(t, other, "theirs")
	rep, err := f.m.Rewrap(ctx)
	if !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("rewrap with a foreign keyring: %v", err)
	}
	if len(rep.Keyrings) != 2 || !rep.Keyrings[0].Rewrapped || !errors.Is(rep.Keyrings[1].Err, ErrKEKMismatch) || rep.Keyrings[1].Rewrapped {
		t.Fatalf("report: %+v", rep)
	}
}

// TestRewrapVault follows a Transit key rotation: rewrap moves every keyring
// to the new version inside Vault, a second rewrap changes nothing, and once
// min_decryption_version is raised everything still unwraps while a copy of
// a record from before the rewrap (a backup) no longer does.
func TestRewrapVault(t *testing.T) {
	ctx := context.Background()
	srv := newTransit(t)
	admin := adminClient(t, srv.URL(), srv.RootToken(), "")
	kek := openVault(t, tokenConfig(t, srv, srv.RootToken()))
	store, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(kek, store)
	mustCreate(t, m, "a")
	mustCreate(t, m, "b")
	c := mustCipher(t, m, "a", colEmail)
	ct, err := c.Encrypt([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	backup, err := store.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}

	rep, err := m.Rewrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range rep.Keyrings {
		if k.Before != 1 || k.After != 1 || k.Rewrapped || k.Version != 1 {
			t.Errorf("rewrap before any Transit rotation: %+v", k)
		}
	}

	adminWrite(t, admin, "transit/keys/"+testTransitKey+"/rotate", nil)
	rewraps := srv.Calls("transit/rewrap/" + testTransitKey)
	if rep, err = m.Rewrap(ctx); err != nil {
		t.Fatal(err)
	}
	if !rep.Versioned || rep.MinVersion() != 2 {
		t.Fatalf("report: %+v", rep)
	}
	for _, k := range rep.Keyrings {
		if k.Before != 1 || k.After != 2 || !k.Rewrapped || k.Version != 2 {
			t.Errorf("rewrap after the Transit rotation: %+v", k)
		}
	}
	if n := srv.Calls("transit/rewrap/"+testTransitKey) - rewraps; n != 2 {
		t.Errorf("%d rewrap calls for 2 keyrings", n)
	}
	if rep, err = m.Rewrap(ctx); err != nil || rep.Keyrings[0].Rewrapped || rep.Keyrings[0].Version != 2 || rep.MinVersion() != 2 {
		t.Fatalf("second rewrap: %+v, %v", rep, err)
	}

	adminWrite(t, admin, "transit/keys/"+testTransitKey+"/config", map[string]any{"min_decryption_version": 2})
	fresh := NewManager(kek, store)
	for _, name := range []string{"a", "b"} {
		if _, err := fresh.Keyring(ctx, name); err != nil {
			t.Fatalf("keyring %s after min_decryption_version=2: %v", name, err)
		}
	}
	if pt, err := mustCipher(t, fresh, "a", colEmail).Decrypt(ct); err != nil || string(pt) != "x" {
		t.Fatalf("decrypt after the rewrap: %v", err)
	}
	if _, err := unwrapKeyset(ctx, kek, backup); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("a record from before the rewrap still unwraps: %v", err)
	}
	info, err := NewManager(kek, store).List(ctx)
	if err != nil || len(info) != 2 || len(info[0].Keys) != 1 || info[0].Keys[0].Status != KeyEnabled {
		t.Fatalf("list after rewrap: %+v, %v", info, err)
	}
}

func TestDestroy(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	mustCreate(t, f.m, "other")
	c := mustCipher(t, f.m, "pii", colEmail)
	ct, err := c.Encrypt([]byte("alice@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	peer := f.peer()
	pc := mustCipher(t, peer, "pii", colEmail)
	oc := mustCipher(t, peer, "other", colEmail)

	// Destroy needs no KEK.
	if err := NewManager(absentKEK{}, f.store).Destroy(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("destroying a missing keyring: %v", err)
	}
	if err := f.m.Destroy(ctx, "pii"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Decrypt(ct)
	wantDecryptError(t, err, DecryptKeyringUnavailable)
	if _, err := c.Encrypt([]byte("x")); !errors.Is(err, ErrEncrypt) {
		t.Fatalf("encrypt after destroy: %v", err)
	}
	if _, err := f.store.Get(ctx, "pii"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("store after destroy: %v", err)
	}
	if _, err := f.m.Keyring(ctx, "pii"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("keyring after destroy: %v", err)
	}
	if err := peer.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = pc.Decrypt(ct)
	wantDecryptError(t, err, DecryptKeyringUnavailable)
	if _, err := oc.Encrypt([]byte("x")); err != nil {
		t.Fatalf("another keyring stopped working: %v", err)
	}
	if err := f.m.Destroy(ctx, "pii"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second destroy: %v", err)
	}
}

func TestDestroyAfterConcurrentRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	cs := &conflictStore{Store: f.store, rival: f.peer()}
	if err := NewManager(f.kek, cs).Destroy(ctx, "pii"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Get(ctx, "pii"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("store after destroy: %v", err)
	}
}

// absentKEK is a KEK that cannot be used.
type absentKEK struct{}

func (absentKEK) Wrap(context.Context, []byte, []byte) ([]byte, error) {
	return nil, errors.New("no KEK")
}
func (absentKEK) Unwrap(context.Context, []byte, []byte) ([]byte, error) {
	return nil, errors.New("no KEK")
}
func (absentKEK) ID() string { return "absent" }
