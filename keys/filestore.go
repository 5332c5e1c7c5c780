package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// FileStore is a [Store] kept as a directory of JSON files, one per keyring
// (<name>.json, mode 0600), for tests and single-node development. Writes
// replace files atomically (write, fsync, rename), so readers never see a
// partial record. Mutations hold an exclusive lock (an in-process mutex and,
// where the OS supports flock, a lock on <dir>/.lock), so compare-and-swap
// holds across processes sharing the directory on one machine, such as
// "fleproxy serve" and a "fleproxy keys rotate" run beside it. It is not
// meant for directories shared over a network file system.
type FileStore struct {
	dir string
	mu  sync.Mutex
}

var _ Store = (*FileStore)(nil)

// fileRecord is the JSON form of a Record; Wrapped is base64 (standard
// alphabet, padded), as encoding/json writes []byte.
type fileRecord struct {
	Name      string    `json:"name"`
	Kind      Kind      `json:"kind"`
	KEKID     string    `json:"kek_id"`
	Wrapped   []byte    `json:"wrapped"`
	Keys      []KeyMeta `json:"keys"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewFileStore returns a FileStore in dir, creating the directory (mode
// 0700) if needed.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys: file store: %w", err)
	}
	return &FileStore{dir: dir}, nil
}

func (s *FileStore) path(name string) string { return filepath.Join(s.dir, name+".json") }

// Get implements [Store].
func (s *FileStore) Get(ctx context.Context, name string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	if err := checkName(name); err != nil {
		return Record{}, err
	}
	return s.read(name)
}

func (s *FileStore) read(name string) (Record, error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, fmt.Errorf("keys: %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("keys: file store: %w", err)
	}
	var fr fileRecord
	if err := json.Unmarshal(b, &fr); err != nil {
		return Record{}, fmt.Errorf("keys: file store: %s: malformed record: %w", s.path(name), err)
	}
	if fr.Name != name {
		return Record{}, fmt.Errorf("keys: file store: %s holds keyring %q, not %q", s.path(name), fr.Name, name)
	}
	return Record{
		Name: fr.Name, Kind: fr.Kind, KEKID: fr.KEKID, Wrapped: fr.Wrapped, Keys: fr.Keys,
		Version: fr.Version, UpdatedAt: fr.UpdatedAt,
	}, nil
}

// List implements [Store].
func (s *FileStore) List(ctx context.Context) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("keys: file store: %w", err)
	}
	var names []string
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || checkName(n) != nil {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	recs := make([]Record, 0, len(names))
	for _, n := range names {
		rec, err := s.read(n)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// Create implements [Store].
func (s *FileStore) Create(ctx context.Context, rec Record) (Record, error) {
	if err := checkRecord(rec); err != nil {
		return Record{}, err
	}
	var out Record
	err := s.locked(ctx, func() error {
		if _, err := os.Lstat(s.path(rec.Name)); err == nil {
			return fmt.Errorf("keys: %q: %w", rec.Name, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("keys: file store: %w", err)
		}
		rec = cloneRecord(rec)
		rec.Version = 1
		rec.UpdatedAt = time.Now().UTC()
		out = rec
		return s.write(rec)
	})
	return out, err
}

// Update implements [Store].
func (s *FileStore) Update(ctx context.Context, rec Record, expectedVersion int64) (Record, error) {
	if err := checkRecord(rec); err != nil {
		return Record{}, err
	}
	var out Record
	err := s.locked(ctx, func() error {
		cur, err := s.read(rec.Name)
		if err != nil {
			return err
		}
		if cur.Version != expectedVersion {
			return fmt.Errorf("keys: %q: stored version %d, expected %d: %w", rec.Name, cur.Version, expectedVersion, ErrConflict)
		}
		rec = cloneRecord(rec)
		rec.Version = expectedVersion + 1
		rec.UpdatedAt = time.Now().UTC()
		out = rec
		return s.write(rec)
	})
	return out, err
}

// Delete implements [Store].
func (s *FileStore) Delete(ctx context.Context, name string, expectedVersion int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	return s.locked(ctx, func() error {
		cur, err := s.read(name)
		if err != nil {
			return err
		}
		if cur.Version != expectedVersion {
			return fmt.Errorf("keys: %q: stored version %d, expected %d: %w", name, cur.Version, expectedVersion, ErrConflict)
		}
		if err := os.Remove(s.path(name)); err != nil {
			return fmt.Errorf("keys: file store: %w", err)
		}
		return s.syncDir()
	})
}

// locked runs fn holding the store's exclusive lock.
func (s *FileStore) locked(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("keys: file store: %w", err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return fmt.Errorf("keys: file store: lock: %w", err)
	}
	defer unlockFile(f)
	return fn()
}

func (s *FileStore) write(rec Record) error {
	b, err := json.MarshalIndent(fileRecord{
		Name: rec.Name, Kind: rec.Kind, KEKID: rec.KEKID, Wrapped: rec.Wrapped, Keys: rec.Keys,
		Version: rec.Version, UpdatedAt: rec.UpdatedAt,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("keys: file store: %w", err)
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(s.dir, "."+rec.Name+".tmp*")
	if err != nil {
		return fmt.Errorf("keys: file store: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path(rec.Name))
	}
	if err != nil {
		return fmt.Errorf("keys: file store: %w", err)
	}
	return s.syncDir()
}

func (s *FileStore) syncDir() error {
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("keys: file store: %w", err)
	}
	return nil
}
