package keys

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// testStoreContract checks the Store contract on a fresh, empty store.
// newStore returns instances on the same backing storage, as separate
// replicas would have; concurrent writers each get their own.
func testStoreContract(t *testing.T, newStore func() Store) {
	ctx := context.Background()
	s := newStore()
	rec := Record{Name: "pii", Kind: KindAEAD, Wrapped: []byte{1, 2, 3}, KEKID: "local:00000001",
		Keys: []KeyMeta{{ID: 7, Created: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}}, Version: 99}

	if _, err := s.Get(ctx, "pii"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of missing: %v", err)
	}
	created, err := s.Create(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if created.Version != 1 || created.UpdatedAt.IsZero() {
		t.Fatalf("Create returned version %d, updated %v", created.Version, created.UpdatedAt)
	}
	if _, err := s.Create(ctx, rec); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: %v", err)
	}
	got, err := s.Get(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "pii" || got.Kind != KindAEAD || string(got.Wrapped) != "\x01\x02\x03" || got.KEKID != rec.KEKID ||
		got.Version != 1 || len(got.Keys) != 1 || got.Keys[0].ID != 7 || !got.Keys[0].Created.Equal(rec.Keys[0].Created) ||
		!got.UpdatedAt.Equal(created.UpdatedAt) {
		t.Fatalf("Get = %+v, created %+v", got, created)
	}

	next := got
	next.Wrapped = []byte{4, 5}
	next.Keys = append(next.Keys, KeyMeta{ID: 8, Created: time.Now()})
	updated, err := s.Update(ctx, next, 1)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Version != 2 {
		t.Fatalf("Update returned version %d", updated.Version)
	}
	if _, err := s.Update(ctx, next, 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Update: %v", err)
	}
	missing := next
	missing.Name = "nope"
	if _, err := s.Update(ctx, missing, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update of missing: %v", err)
	}
	if got, _ := s.Get(ctx, "pii"); got.Version != 2 || string(got.Wrapped) != "\x04\x05" || len(got.Keys) != 2 {
		t.Fatalf("after Update: %+v", got)
	}

	b := rec
	b.Name = "analytics"
	if _, err := s.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	all, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Name != "analytics" || all[1].Name != "pii" {
		t.Fatalf("List = %+v", all)
	}

	if err := s.Delete(ctx, "pii", 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Delete: %v", err)
	}
	if err := s.Delete(ctx, "pii", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "pii", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete of missing: %v", err)
	}
	if _, err := s.Get(ctx, "pii"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}

	for _, bad := range []string{"", ".hidden", "a/b", "../x", "white space", string(make([]byte, 200))} {
		if _, err := s.Get(ctx, bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Get(%q): %v", bad, err)
		}
		r := rec
		r.Name = bad
		if _, err := s.Create(ctx, r); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Create(%q): %v", bad, err)
		}
	}

	// Compare-and-swap: of concurrent updates from the same version,
	// exactly one wins.
	const writers = 8
	cur, _ := s.Get(ctx, "analytics")
	var wg sync.WaitGroup
	results := make(chan error, writers)
	for range writers {
		s := newStore()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update(ctx, cur, cur.Version)
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	wins := 0
	for err := range results {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrConflict):
			t.Errorf("concurrent Update: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent updates won, want 1", wins)
	}
	if got, _ := s.Get(ctx, "analytics"); got.Version != cur.Version+1 {
		t.Fatalf("version after race = %d, want %d", got.Version, cur.Version+1)
	}
}

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	testStoreContract(t, func() Store {
		s, err := NewFileStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestFileStoreCrossInstance(t *testing.T) {
	// Two FileStores on one directory stand in for two processes.
	ctx := context.Background()
	dir := t.TempDir()
	a, _ := NewFileStore(dir)
	b, _ := NewFileStore(dir)
	rec, err := a.Create(ctx, Record{Name: "k", Kind: KindAEAD, Wrapped: []byte{1}, KEKID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, rec, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, rec, 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Update through another instance: %v", err)
	}
}
