package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// schemaLockID is the pg_advisory_xact_lock key that serialises EnsureSchema
// across processes (CREATE … IF NOT EXISTS can still fail with a unique
// violation when two run at once). It is the ASCII of "flejobs".
const schemaLockID int64 = 0x666c656a6f6273

const schemaDDL = `
CREATE SCHEMA IF NOT EXISTS fleproxy;
CREATE TABLE IF NOT EXISTS fleproxy.jobs (
	id              text        PRIMARY KEY,
	kind            text        NOT NULL,
	column_name     text        NOT NULL,
	state           text        NOT NULL,
	pass            integer     NOT NULL DEFAULT 1,
	key_columns     text[]      NOT NULL,
	last_key        text[],
	target_key_id   bigint      NOT NULL DEFAULT 0,
	rows_done       bigint      NOT NULL DEFAULT 0,
	rows_changed    bigint      NOT NULL DEFAULT 0,
	rows_current    bigint      NOT NULL DEFAULT 0,
	rows_null       bigint      NOT NULL DEFAULT 0,
	rows_failed     bigint      NOT NULL DEFAULT 0,
	rows_deleted    bigint      NOT NULL DEFAULT 0,
	rows_concurrent bigint      NOT NULL DEFAULT 0,
	failed_rows     jsonb       NOT NULL DEFAULT '[]',
	total_estimate  bigint      NOT NULL DEFAULT 0,
	started_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now(),
	finished_at     timestamptz
);
COMMENT ON TABLE fleproxy.jobs IS
	'fleproxy migrate and re-encryption jobs: progress of each, so a restarted job resumes. Managed by fleproxy; do not edit.'`

// EnsureSchema creates the schema fleproxy and the table fleproxy.jobs if
// they do not exist. Run does it too; it is safe to run from several
// processes at once. The role needs CREATE on the database.
func EnsureSchema(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", schemaLockID); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// Several statements need the simple protocol, which takes no arguments.
	if _, err := tx.Exec(ctx, schemaDDL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("migrate: create table fleproxy.jobs: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// jobState is a job's row in fleproxy.jobs.
type jobState struct {
	state      string
	pass       int
	keyColumns []string
	lastKey    []string // nil: start of the table
	targetKey  uint32
	counts     Counts
	failed     []FailedRow
	total      int64
	startedAt  time.Time
}

// loadJob reads the job's row; ok is false if there is none.
func loadJob(ctx context.Context, q Querier, id string) (st jobState, ok bool, err error) {
	var target int64
	err = q.QueryRow(ctx, `
SELECT state, pass, key_columns, last_key, target_key_id, rows_done, rows_changed, rows_current, rows_null,
       rows_failed, rows_deleted, rows_concurrent, failed_rows, total_estimate, started_at
FROM fleproxy.jobs WHERE id = $1`, id).Scan(&st.state, &st.pass, &st.keyColumns, &st.lastKey, &target,
		&st.counts.Scanned, &st.counts.Changed, &st.counts.Current, &st.counts.Null, &st.counts.Failed,
		&st.counts.Deleted, &st.counts.Concurrent, &st.failed, &st.total, &st.startedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return jobState{}, false, nil
	}
	if err != nil {
		return jobState{}, false, fmt.Errorf("migrate: job %s: reading fleproxy.jobs: %w", id, err)
	}
	st.targetKey = uint32(target)
	return st, true, nil
}

// execer runs a statement.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// saveJob writes st as the job's row (inserting it if needed).
func saveJob(ctx context.Context, q execer, id string, job Job, st *jobState) error {
	failed := st.failed
	if failed == nil {
		failed = []FailedRow{}
	}
	_, err := q.Exec(ctx, `
INSERT INTO fleproxy.jobs AS j (id, kind, column_name, state, pass, key_columns, last_key, target_key_id,
	rows_done, rows_changed, rows_current, rows_null, rows_failed, rows_deleted, rows_concurrent,
	failed_rows, total_estimate, started_at, updated_at, finished_at)
VALUES ($1, $2, $3, $4::text, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, now(),
	CASE WHEN $4::text = 'done' THEN now() END)
ON CONFLICT (id) DO UPDATE SET
	state = EXCLUDED.state, pass = EXCLUDED.pass, key_columns = EXCLUDED.key_columns,
	last_key = EXCLUDED.last_key, target_key_id = EXCLUDED.target_key_id,
	rows_done = EXCLUDED.rows_done, rows_changed = EXCLUDED.rows_changed,
	rows_current = EXCLUDED.rows_current, rows_null = EXCLUDED.rows_null,
	rows_failed = EXCLUDED.rows_failed, rows_deleted = EXCLUDED.rows_deleted,
	rows_concurrent = EXCLUDED.rows_concurrent, failed_rows = EXCLUDED.failed_rows,
	total_estimate = EXCLUDED.total_estimate, started_at = EXCLUDED.started_at,
	updated_at = now(), finished_at = EXCLUDED.finished_at`,
		id, string(job.Kind), job.Column.Name.String(), st.state, st.pass, st.keyColumns, st.lastKey,
		int64(st.targetKey), st.counts.Scanned, st.counts.Changed, st.counts.Current, st.counts.Null,
		st.counts.Failed, st.counts.Deleted, st.counts.Concurrent, failed, st.total, st.startedAt)
	if err != nil {
		return fmt.Errorf("migrate: job %s: writing fleproxy.jobs: %w", id, err)
	}
	return nil
}

// supersede marks unfinished jobs of other kinds on the same column, so they
// start over instead of resuming after this one changed the column.
func supersede(ctx context.Context, q execer, id string, job Job) error {
	_, err := q.Exec(ctx, `UPDATE fleproxy.jobs SET state = 'superseded', updated_at = now()
WHERE column_name = $1 AND id <> $2 AND state NOT IN ('done', 'superseded')`, job.Column.Name.String(), id)
	if err != nil {
		return fmt.Errorf("migrate: job %s: writing fleproxy.jobs: %w", id, err)
	}
	return nil
}

// Status is a job's row in fleproxy.jobs.
type Status struct {
	ID     string `json:"id"`
	Kind   Kind   `json:"kind"`
	Column string `json:"column"`
	State  string `json:"state"`
	Pass   int    `json:"pass"`
	Counts
	Total      int64       `json:"total"`
	FailedRows []FailedRow `json:"failed_rows"`
	StartedAt  time.Time   `json:"started_at"`
	UpdatedAt  time.Time   `json:"updated_at"`
	FinishedAt *time.Time  `json:"finished_at"`
}

// List returns every job recorded in fleproxy.jobs, ordered by ID; none if
// the table does not exist.
func List(ctx context.Context, q Querier) ([]Status, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('fleproxy.jobs') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if !exists {
		return []Status{}, nil
	}
	rows, err := q.Query(ctx, `
SELECT id, kind, column_name, state, pass, rows_done, rows_changed, rows_current, rows_null, rows_failed,
       rows_deleted, rows_concurrent, failed_rows, total_estimate, started_at, updated_at, finished_at
FROM fleproxy.jobs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("migrate: reading fleproxy.jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Status, error) {
		var s Status
		err := r.Scan(&s.ID, &s.Kind, &s.Column, &s.State, &s.Pass, &s.Scanned, &s.Changed, &s.Current, &s.Null,
			&s.Failed, &s.Deleted, &s.Concurrent, &s.FailedRows, &s.Total, &s.StartedAt, &s.UpdatedAt, &s.FinishedAt)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("migrate: reading fleproxy.jobs: %w", err)
	}
	return slices.Clip(out), nil
}
