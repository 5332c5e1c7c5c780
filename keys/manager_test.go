package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleproxy/fleproxy/envelope"
	"github.com/tink-crypto/tink-go/v2/aead"
)

const colEmail = "col-customer-email"

type fixture struct {
	kek   *LocalKEK
	store *FileStore
	m     *Manager
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	store, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kek := newTestKEK(t)
	return &fixture{kek: kek, store: store, m: NewManager(kek, store)}
}

// peer returns another Manager on the same KEK and store: another replica.
func (f *fixture) peer() *Manager { return NewManager(f.kek, f.store) }

func mustCipher(t testing.TB, m *Manager, key, col string) *ColumnCipher {
	t.Helper()
	c, err := m.ColumnCipher(context.Background(), key, col, envelope.Randomized)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustCreate(t testing.TB, m *Manager, name string) *Keyring {
	t.Helper()
	kr, err := m.Create(context.Background(), name, KindAEAD)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func keyIDOf(t testing.TB, raw []byte) uint32 {
	t.Helper()
	id, err := envelope.KeyID(raw)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func wantDecryptError(t testing.TB, err error, reason DecryptReason) {
	t.Helper()
	var de *DecryptError
	if !errors.Is(err, ErrDecrypt) || !errors.As(err, &de) {
		t.Fatalf("error %v is not a DecryptError", err)
	}
	if de.Reason != reason {
		t.Fatalf("reason = %v, want %v (%v)", de.Reason, reason, err)
	}
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	kr := mustCreate(t, f.m, "pii")
	c := mustCipher(t, f.m, "pii", colEmail)
	if c.KeyName() != "pii" || c.ColumnID() != colEmail || c.Mode() != envelope.Randomized {
		t.Fatal("accessors")
	}
	for _, pt := range [][]byte{nil, []byte("alice@example.com"), bytes.Repeat([]byte{0}, 5000)} {
		raw, err := c.Encrypt(pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != len(pt)+envelope.MinLength(envelope.Randomized) {
			t.Fatalf("envelope of %d bytes is %d bytes", len(pt), len(raw))
		}
		mode, _, err := envelope.Parse(raw)
		if err != nil || mode != envelope.Randomized {
			t.Fatalf("Parse = %v, %v", mode, err)
		}
		if id := keyIDOf(t, raw); id != kr.PrimaryKeyID() {
			t.Fatalf("key ID %08x, primary %08x", id, kr.PrimaryKeyID())
		}
		if len(pt) > 0 && bytes.Contains(raw, pt) {
			t.Fatal("plaintext visible in envelope")
		}
		back, err := c.Decrypt(raw)
		if err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("Decrypt = %q, %v", back, err)
		}
		armoured, err := envelope.Dearmor(envelope.Armor(raw))
		if err != nil {
			t.Fatal(err)
		}
		if back, err := c.Decrypt(armoured); err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("Decrypt(Dearmor(Armor)) = %q, %v", back, err)
		}
	}
	a, _ := c.Encrypt([]byte("same"))
	b, _ := c.Encrypt([]byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("randomized encryption repeated a ciphertext")
	}

	// A fresh Manager (a restarted proxy) unwraps the stored keyring and
	// decrypts.
	if back, err := mustCipher(t, f.peer(), "pii", colEmail).Decrypt(a); err != nil || string(back) != "same" {
		t.Fatalf("Decrypt after restart = %q, %v", back, err)
	}
}

// TestTinkCompatible checks that bytes 5.. of an envelope are a plain Tink
// AEAD ciphertext of the keyset with the documented associated data.
func TestTinkCompatible(t *testing.T) {
	f := newFixture(t)
	kr := mustCreate(t, f.m, "pii")
	raw, err := mustCipher(t, f.m, "pii", colEmail).Encrypt([]byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := aead.New(kr.handle)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := a.Decrypt(raw[5:], []byte("FLE\x01\x01fleproxy/column/"+colEmail))
	if err != nil || string(pt) != "v" {
		t.Fatalf("Tink Decrypt = %q, %v", pt, err)
	}
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	first := mustCreate(t, f.m, "pii")
	c := mustCipher(t, f.m, "pii", colEmail)
	old, _ := c.Encrypt([]byte("old"))

	rotated, err := f.m.Rotate(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	if rotated.PrimaryKeyID() == first.PrimaryKeyID() || rotated.Version() != 2 {
		t.Fatalf("after Rotate: %v (was %v)", rotated, first)
	}
	info := rotated.Info()
	if len(info.Keys) != 2 || info.Keys[0].ID != first.PrimaryKeyID() || info.Keys[0].Primary ||
		!info.Keys[1].Primary || info.Keys[1].ID != rotated.PrimaryKeyID() {
		t.Fatalf("keys after Rotate: %+v", info.Keys)
	}
	for _, k := range info.Keys {
		if k.Status != KeyEnabled || k.Created.IsZero() || !strings.HasSuffix(k.TypeURL, "AesGcmKey") {
			t.Fatalf("key info %+v", k)
		}
	}

	// The cipher made before the rotation follows it.
	fresh, _ := c.Encrypt([]byte("new"))
	if id := keyIDOf(t, fresh); id != rotated.PrimaryKeyID() {
		t.Fatalf("new value under key %08x, want new primary %08x", id, rotated.PrimaryKeyID())
	}
	for raw, want := range map[string]string{string(old): "old", string(fresh): "new"} {
		if got, err := c.Decrypt([]byte(raw)); err != nil || string(got) != want {
			t.Fatalf("Decrypt = %q, %v; want %q", got, err, want)
		}
	}
	if kr, _ := f.m.Keyring(ctx, "pii"); kr != rotated {
		t.Fatal("Keyring does not return the rotated keyring")
	}
}

func TestRefreshPicksUpRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	replica := f.peer()
	rc := mustCipher(t, replica, "pii", colEmail)
	before, _ := rc.Encrypt(nil)

	rotated, err := f.m.Rotate(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	fromAdmin, _ := mustCipher(t, f.m, "pii", colEmail).Encrypt([]byte("x"))

	// Until Refresh the replica still uses its old primary and does not
	// know the new key.
	stale, _ := rc.Encrypt(nil)
	if keyIDOf(t, stale) != keyIDOf(t, before) {
		t.Fatal("replica switched keys without Refresh")
	}
	_, err = rc.Decrypt(fromAdmin)
	wantDecryptError(t, err, DecryptUnknownKey)

	if err := replica.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := rc.Encrypt(nil)
	if keyIDOf(t, after) != rotated.PrimaryKeyID() {
		t.Fatal("replica did not switch to the new primary after Refresh")
	}
	if got, err := rc.Decrypt(fromAdmin); err != nil || string(got) != "x" {
		t.Fatalf("Decrypt after Refresh = %q, %v", got, err)
	}
	if err := replica.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestColumnBinding(t *testing.T) {
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	mustCreate(t, f.m, "other")
	a := mustCipher(t, f.m, "pii", "col-a")
	b := mustCipher(t, f.m, "pii", "col-b")
	raw, _ := a.Encrypt([]byte("alice@example.com"))
	_, err := b.Decrypt(raw)
	wantDecryptError(t, err, DecryptAuthentication)
	if strings.Contains(err.Error(), "alice") {
		t.Fatalf("error reveals plaintext: %v", err)
	}
	// Same column ID under another keyring: the key is unknown there.
	_, err = mustCipher(t, f.m, "other", "col-a").Decrypt(raw)
	wantDecryptError(t, err, DecryptUnknownKey)
}

func TestTamperAnyByte(t *testing.T) {
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	c := mustCipher(t, f.m, "pii", colEmail)
	raw, _ := c.Encrypt([]byte("secret-value-123"))
	for i := range raw {
		for _, mask := range []byte{0x01, 0x80} {
			bad := bytes.Clone(raw)
			bad[i] ^= mask
			pt, err := c.Decrypt(bad)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("flip %#x at byte %d: Decrypt = %q, %v", mask, i, pt, err)
			}
			if strings.Contains(err.Error(), "secret-value") {
				t.Fatalf("error reveals plaintext: %v", err)
			}
		}
	}
	for _, bad := range [][]byte{raw[:len(raw)-1], append(bytes.Clone(raw), 0), raw[:5], nil, []byte("plain")} {
		_, err := c.Decrypt(bad)
		if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Decrypt of %d bytes: %v", len(bad), err)
		}
	}
	_, err := c.Decrypt([]byte("alice@example.com"))
	wantDecryptError(t, err, DecryptMalformed)
	if !errors.Is(err, envelope.ErrNotCiphertext) {
		t.Fatalf("malformed value error %v does not match envelope.ErrNotCiphertext", err)
	}
	det := bytes.Clone(raw)
	det[4] = byte(envelope.Deterministic)
	_, err = c.Decrypt(det)
	wantDecryptError(t, err, DecryptWrongMode)
}

func TestWrongKEK(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	other := newTestKEK(t)

	_, err := NewManager(other, f.store).Keyring(ctx, "pii")
	if !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("Keyring with another KEK: %v", err)
	}
	// Even when the record claims the other KEK's ID, unwrapping fails.
	rec, _ := f.store.Get(ctx, "pii")
	rec.KEKID = other.ID()
	if _, err := f.store.Update(ctx, rec, rec.Version); err != nil {
		t.Fatal(err)
	}
	_, err = NewManager(other, f.store).Keyring(ctx, "pii")
	if !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Keyring with another KEK and forged ID: %v", err)
	}
	if _, err := NewManager(other, f.store).ColumnCipher(ctx, "pii", colEmail, envelope.Randomized); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("ColumnCipher with another KEK: %v", err)
	}
}

func TestRenamedKeysetFails(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustCreate(t, f.m, "a")
	rec, _ := f.store.Get(ctx, "a")
	rec.Name = "b"
	if _, err := f.store.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := f.peer().Keyring(ctx, "b"); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Keyring of a record copied to another name: %v", err)
	}
	if _, err := f.peer().Keyring(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

func TestTamperedRecordFails(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	rec, _ := f.store.Get(ctx, "pii")
	rec.Wrapped[len(rec.Wrapped)-1] ^= 1
	if _, err := f.store.Update(ctx, rec, rec.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := f.peer().Keyring(ctx, "pii"); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Keyring of tampered record: %v", err)
	}
	// A replica that already holds the keyring keeps serving with it and
	// reports the refresh failure.
	if err := f.m.Refresh(ctx); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Refresh: %v", err)
	}
	if _, err := mustCipher(t, f.m, "pii", colEmail).Encrypt(nil); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentRotations(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	first := mustCreate(t, f.m, "pii")
	managers := []*Manager{f.m, f.peer(), f.peer()}
	const perManager = 2
	var wg sync.WaitGroup
	errs := make(chan error, len(managers)*perManager)
	for _, m := range managers {
		for range perManager {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := m.Rotate(ctx, "pii")
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	fresh := f.peer()
	kr, err := fresh.Keyring(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	info := kr.Info()
	want := 1 + len(managers)*perManager
	if len(info.Keys) != want || kr.Version() != int64(want) {
		t.Fatalf("%d keys at version %d after %d rotations, want %d", len(info.Keys), kr.Version(), want-1, want)
	}
	seen := map[uint32]bool{}
	for _, k := range info.Keys {
		seen[k.ID] = true
	}
	if len(seen) != want || !seen[first.PrimaryKeyID()] {
		t.Fatalf("keys %+v", info.Keys)
	}
	rec, _ := f.store.Get(ctx, "pii")
	if len(rec.Keys) != want {
		t.Fatalf("record has %d key timestamps, want %d", len(rec.Keys), want)
	}
}

func TestDeletedKeyringStopsWorking(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	kr := mustCreate(t, f.m, "pii")
	c := mustCipher(t, f.m, "pii", colEmail)
	raw, _ := c.Encrypt([]byte("x"))
	if err := f.store.Delete(ctx, "pii", kr.Version()); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Encrypt([]byte("y")); !errors.Is(err, ErrEncrypt) {
		t.Fatalf("Encrypt after delete: %v", err)
	}
	_, err := c.Decrypt(raw)
	wantDecryptError(t, err, DecryptKeyringUnavailable)
	if _, err := f.m.Keyring(ctx, "pii"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Keyring after delete: %v", err)
	}
	// A keyring created again under the name is a new keyring: the old
	// cipher works with it again but the old value stays unreadable.
	mustCreate(t, f.m, "pii")
	if _, err := c.Encrypt([]byte("z")); err != nil {
		t.Fatal(err)
	}
	_, err = c.Decrypt(raw)
	wantDecryptError(t, err, DecryptUnknownKey)
}

func TestConcurrentUseDuringRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	replica := f.peer()
	c := mustCipher(t, replica, "pii", colEmail)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ops atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pt := []byte(fmt.Sprintf("value-%d", g))
			for {
				select {
				case <-stop:
					return
				default:
				}
				raw, err := c.Encrypt(pt)
				if err != nil {
					t.Error(err)
					return
				}
				back, err := c.Decrypt(raw)
				if err != nil || !bytes.Equal(back, pt) {
					t.Errorf("Decrypt = %q, %v", back, err)
					return
				}
				ops.Add(1)
			}
		}()
	}
	for range 5 {
		if _, err := f.m.Rotate(ctx, "pii"); err != nil {
			t.Fatal(err)
		}
		if err := replica.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if ops.Load() == 0 {
		t.Fatal("no operations ran")
	}
}

// countingKEK counts calls and can be switched off, like an unreachable
// Vault.
type countingKEK struct {
	KEK
	calls atomic.Int64
	down  atomic.Bool
}

var errKEKDown = errors.New("KEK unavailable")

func (k *countingKEK) Wrap(ctx context.Context, pt, ad []byte) ([]byte, error) {
	k.calls.Add(1)
	if k.down.Load() {
		return nil, errKEKDown
	}
	return k.KEK.Wrap(ctx, pt, ad)
}

func (k *countingKEK) Unwrap(ctx context.Context, ct, ad []byte) ([]byte, error) {
	k.calls.Add(1)
	if k.down.Load() {
		return nil, errKEKDown
	}
	return k.KEK.Unwrap(ctx, ct, ad)
}

func TestKEKUnavailable(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	kek := &countingKEK{KEK: f.kek}
	m := NewManager(kek, f.store)
	mustCreate(t, m, "pii")
	mustCreate(t, m, "other")
	c := mustCipher(t, m, "pii", colEmail)

	// Concurrent first uses on a fresh Manager unwrap once.
	fresh := NewManager(kek, f.store)
	kek.calls.Store(0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fresh.Keyring(ctx, "pii"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := kek.calls.Load(); n != 1 {
		t.Fatalf("%d KEK calls for concurrent first use, want 1", n)
	}

	kek.down.Store(true)
	if _, err := c.Encrypt([]byte("x")); err != nil {
		t.Fatalf("Encrypt with KEK down: %v", err)
	}
	infos, err := m.List(ctx)
	if err != nil {
		t.Fatalf("List with KEK down: %v", err)
	}
	if len(infos) != 2 || infos[0].Name != "other" || infos[1].Name != "pii" ||
		len(infos[1].Keys) != 1 || !infos[1].Keys[0].Primary || infos[1].PrimaryKeyID != infos[1].Keys[0].ID ||
		infos[1].KEKID != f.kek.ID() || infos[1].Kind != KindAEAD || infos[1].Keys[0].Created.IsZero() {
		t.Fatalf("List = %+v", infos)
	}
	if _, err := m.Rotate(ctx, "pii"); !errors.Is(err, errKEKDown) {
		t.Fatalf("Rotate with KEK down: %v", err)
	}
	if _, err := NewManager(kek, f.store).Keyring(ctx, "pii"); !errors.Is(err, ErrUnwrap) || !errors.Is(err, errKEKDown) {
		t.Fatalf("Keyring with KEK down: %v", err)
	}
}

// slowKEK blocks until its context ends, like a hung Vault.
type slowKEK struct{ KEK }

func (k slowKEK) Unwrap(ctx context.Context, _, _ []byte) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestContextCancelsUnwrap(t *testing.T) {
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := NewManager(slowKEK{f.kek}, f.store).Keyring(ctx, "pii")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Keyring with hung KEK: %v", err)
	}
}

func TestArgumentErrors(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	if _, err := f.m.Create(ctx, "pii", KindAEAD); !errors.Is(err, ErrExists) {
		t.Errorf("Create existing: %v", err)
	}
	if _, err := f.m.Create(ctx, "x", Kind("prf")); !errors.Is(err, ErrUnsupportedKind) {
		t.Errorf("Create unsupported kind: %v", err)
	}
	if _, err := f.m.Create(ctx, "../x", KindAEAD); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Create bad name: %v", err)
	}
	if _, err := f.m.Rotate(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Rotate missing: %v", err)
	}
	if _, err := f.m.ColumnCipher(ctx, "missing", colEmail, envelope.Randomized); !errors.Is(err, ErrNotFound) {
		t.Errorf("ColumnCipher of missing keyring: %v", err)
	}
	if _, err := f.m.ColumnCipher(ctx, "pii", colEmail, envelope.Deterministic); !errors.Is(err, ErrUnsupportedMode) {
		t.Errorf("ColumnCipher deterministic: %v", err)
	}
	if _, err := f.m.ColumnCipher(ctx, "pii", colEmail, envelope.Mode(7)); !errors.Is(err, ErrUnsupportedMode) {
		t.Errorf("ColumnCipher mode 7: %v", err)
	}
	if _, err := f.m.ColumnCipher(ctx, "pii", "", envelope.Randomized); err == nil {
		t.Error("ColumnCipher with empty column ID succeeded")
	}
	kr, _ := f.m.Keyring(ctx, "pii")
	for _, s := range []string{kr.String(), fmt.Sprintf("%v %+v %#v", kr, kr, kr)} {
		if !strings.HasPrefix(s, "Keyring(pii") {
			t.Errorf("keyring formats as %q", s)
		}
	}
}

func benchCipher(b *testing.B) *ColumnCipher {
	f := newFixture(b)
	mustCreate(b, f.m, "pii")
	return mustCipher(b, f.m, "pii", colEmail)
}

func BenchmarkEncrypt32(b *testing.B) {
	c := benchCipher(b)
	pt := bytes.Repeat([]byte{'a'}, 32)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Encrypt(pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt32(b *testing.B) {
	c := benchCipher(b)
	pt := bytes.Repeat([]byte{'a'}, 32)
	raw, _ := c.Encrypt(pt)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decrypt(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncrypt32Parallel(b *testing.B) {
	c := benchCipher(b)
	pt := bytes.Repeat([]byte{'a'}, 32)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Encrypt(pt); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestRecreateWithoutRefresh(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustCreate(t, f.m, "pii")
	rotated, err := f.m.Rotate(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	c := mustCipher(t, f.m, "pii", colEmail)
	if err := f.store.Delete(ctx, "pii", rotated.Version()); err != nil {
		t.Fatal(err)
	}
	again := mustCreate(t, f.m, "pii")
	raw, _ := c.Encrypt(nil)
	if keyIDOf(t, raw) != again.PrimaryKeyID() {
		t.Fatal("cipher kept the deleted keyring after the name was created again")
	}
}
