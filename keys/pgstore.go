package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is the part of *pgxpool.Pool, *pgx.Conn and pgx.Tx that
// [PostgresStore] uses. A *pgxpool.Pool is safe for concurrent use; a
// *pgx.Conn or pgx.Tx is not, and neither is a PostgresStore built on one.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// PostgresStore is a [Store] that keeps records in the table
// fleproxy.keyrings of the protected database itself (see
// [PostgresStore.EnsureSchema] for the DDL).
//
// Why there: every proxy replica already reaches that database, so all
// replicas read the same keyrings with no extra service to run or make
// highly available, and a rotation written by one replica or an admin
// command is seen by the others on their next Refresh. The Version column
// makes every change a compare-and-swap (UPDATE ... WHERE version = $n), so
// concurrent writers cannot silently overwrite each other: there is one
// current keyset per name. The table holds only keysets wrapped by the KEK,
// which stays in Vault, so backups, replicas and WAL of that database carry
// nothing that decrypts data without the KEK, and dump/restore moves data
// and (wrapped) keys together.
//
// Connect it to the database directly, not through the proxy. The role needs
// CREATE on the database for EnsureSchema, then SELECT, INSERT, UPDATE,
// DELETE on the table.
type PostgresStore struct {
	db Querier
}

var _ Store = (*PostgresStore)(nil)

// NewPostgresStore returns a store using db, typically a *pgxpool.Pool. The
// store is safe for concurrent use if db is.
func NewPostgresStore(db Querier) *PostgresStore { return &PostgresStore{db: db} }

// schemaLockID is the pg_advisory_xact_lock key that serializes
// EnsureSchema across replicas starting together (CREATE ... IF NOT EXISTS
// can still fail with a unique violation when two run at once). It is the
// ASCII of "fleprox" as a big-endian integer.
const schemaLockID int64 = 0x666c6570726f78

const schemaDDL = `
CREATE SCHEMA IF NOT EXISTS fleproxy;
CREATE TABLE IF NOT EXISTS fleproxy.keyrings (
	name       text        PRIMARY KEY,
	kind       text        NOT NULL,
	kek_id     text        NOT NULL,
	wrapped    bytea       NOT NULL,
	keys       jsonb       NOT NULL DEFAULT '[]',
	version    bigint      NOT NULL CHECK (version > 0),
	updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE fleproxy.keyrings IS
	'fleproxy data keysets, wrapped by the KEK (Tink EncryptedKeyset). Managed by fleproxy; do not edit.'`

// EnsureSchema creates the schema fleproxy and the table fleproxy.keyrings
// if they do not exist. It is safe to run from several replicas at once.
func (s *PostgresStore) EnsureSchema(ctx context.Context) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("keys: postgres store: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", schemaLockID); err != nil {
		return fmt.Errorf("keys: postgres store: %w", err)
	}
	// Several statements need the simple protocol, which takes no arguments.
	if _, err := tx.Exec(ctx, schemaDDL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("keys: postgres store: create schema: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("keys: postgres store: %w", err)
	}
	return nil
}

const selectColumns = `name, kind, kek_id, wrapped, keys, version, updated_at`

func scanRecord(row pgx.Row) (Record, error) {
	var (
		rec       Record
		kind      string
		keysJSON  []byte
		updatedAt time.Time
	)
	if err := row.Scan(&rec.Name, &kind, &rec.KEKID, &rec.Wrapped, &keysJSON, &rec.Version, &updatedAt); err != nil {
		return Record{}, err
	}
	rec.Kind = Kind(kind)
	rec.UpdatedAt = updatedAt.UTC()
	if err := json.Unmarshal(keysJSON, &rec.Keys); err != nil {
		return Record{}, fmt.Errorf("keys: postgres store: keyring %q: malformed keys column: %w", rec.Name, err)
	}
	return rec, nil
}

// Get implements [Store].
func (s *PostgresStore) Get(ctx context.Context, name string) (Record, error) {
	if err := checkName(name); err != nil {
		return Record{}, err
	}
	rec, err := scanRecord(s.db.QueryRow(ctx, `SELECT `+selectColumns+` FROM fleproxy.keyrings WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, fmt.Errorf("keys: %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("keys: postgres store: get %q: %w", name, err)
	}
	return rec, nil
}

// List implements [Store].
func (s *PostgresStore) List(ctx context.Context) ([]Record, error) {
	rows, err := s.db.Query(ctx, `SELECT `+selectColumns+` FROM fleproxy.keyrings ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("keys: postgres store: list: %w", err)
	}
	defer rows.Close()
	var recs []Record
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("keys: postgres store: list: %w", err)
		}
		recs = append(recs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys: postgres store: list: %w", err)
	}
	return recs, nil
}

// Create implements [Store].
func (s *PostgresStore) Create(ctx context.Context, rec Record) (Record, error) {
	if err := checkRecord(rec); err != nil {
		return Record{}, err
	}
	keysJSON, err := json.Marshal(nonNilKeys(rec.Keys))
	if err != nil {
		return Record{}, fmt.Errorf("keys: postgres store: %w", err)
	}
	out, err := scanRecord(s.db.QueryRow(ctx, `
		INSERT INTO fleproxy.keyrings (name, kind, kek_id, wrapped, keys, version, updated_at)
		VALUES ($1, $2, $3, $4, $5, 1, now())
		ON CONFLICT (name) DO NOTHING
		RETURNING `+selectColumns,
		rec.Name, string(rec.Kind), rec.KEKID, rec.Wrapped, keysJSON))
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, fmt.Errorf("keys: %q: %w", rec.Name, ErrExists)
	}
	if err != nil {
		return Record{}, fmt.Errorf("keys: postgres store: create %q: %w", rec.Name, err)
	}
	return out, nil
}

// Update implements [Store].
func (s *PostgresStore) Update(ctx context.Context, rec Record, expectedVersion int64) (Record, error) {
	if err := checkRecord(rec); err != nil {
		return Record{}, err
	}
	keysJSON, err := json.Marshal(nonNilKeys(rec.Keys))
	if err != nil {
		return Record{}, fmt.Errorf("keys: postgres store: %w", err)
	}
	out, err := scanRecord(s.db.QueryRow(ctx, `
		UPDATE fleproxy.keyrings
		SET kind = $2, kek_id = $3, wrapped = $4, keys = $5, version = version + 1, updated_at = now()
		WHERE name = $1 AND version = $6
		RETURNING `+selectColumns,
		rec.Name, string(rec.Kind), rec.KEKID, rec.Wrapped, keysJSON, expectedVersion))
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, s.casFailure(ctx, rec.Name, expectedVersion)
	}
	if err != nil {
		return Record{}, fmt.Errorf("keys: postgres store: update %q: %w", rec.Name, err)
	}
	return out, nil
}

// Delete implements [Store].
func (s *PostgresStore) Delete(ctx context.Context, name string, expectedVersion int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	tag, err := s.db.Exec(ctx, `DELETE FROM fleproxy.keyrings WHERE name = $1 AND version = $2`, name, expectedVersion)
	if err != nil {
		return fmt.Errorf("keys: postgres store: delete %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return s.casFailure(ctx, name, expectedVersion)
	}
	return nil
}

// casFailure tells ErrNotFound from ErrConflict after a compare-and-swap
// touched no row.
func (s *PostgresStore) casFailure(ctx context.Context, name string, expectedVersion int64) error {
	var v int64
	err := s.db.QueryRow(ctx, `SELECT version FROM fleproxy.keyrings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("keys: %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("keys: postgres store: %q: %w", name, err)
	}
	return fmt.Errorf("keys: %q: stored version %d, expected %d: %w", name, v, expectedVersion, ErrConflict)
}

func nonNilKeys(k []KeyMeta) []KeyMeta {
	if k == nil {
		return []KeyMeta{}
	}
	return k
}
