package migrate

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fleproxy/fleproxy/policy"
)

// Kind is what a job does to the values of its column.
type Kind string

const (
	// KindEncrypt turns plaintext into ciphertext of the column's logical
	// type and installs the column's CHECK constraint at the end. Values that
	// are already ciphertext of the column are left alone.
	KindEncrypt Kind = "encrypt"
	// KindDecrypt turns ciphertext back into plaintext, after dropping the
	// column's CHECK constraint. Values that are not ciphertext are left
	// alone.
	KindDecrypt Kind = "decrypt"
	// KindReencrypt re-encrypts values under a data key other than the
	// keyring's primary with the primary. Values already under the primary
	// are left alone.
	KindReencrypt Kind = "reencrypt"
)

// Kinds returns every job kind.
func Kinds() []Kind { return []Kind{KindEncrypt, KindDecrypt, KindReencrypt} }

func (k Kind) valid() bool {
	return k == KindEncrypt || k == KindDecrypt || k == KindReencrypt
}

// Job is one job: a kind over one protected column.
type Job struct {
	Kind Kind
	// Column is the protected column from the policy: its name, logical type,
	// storage, key and stable ID.
	Column *policy.Column
	// Constraint names the column's CHECK constraint (the one `fleproxy
	// policy constraints` installs): encrypt adds it at the end, decrypt drops
	// it first. Empty leaves constraints alone.
	Constraint string
}

// ID returns the job's identity in fleproxy.jobs: the kind and the column,
// e.g. "encrypt public.customer.email".
func (j Job) ID() string { return string(j.Kind) + " " + j.Column.Name.String() }

func (j Job) validate() error {
	if j.Column == nil {
		return errors.New("migrate: job without a column")
	}
	if !j.Kind.valid() {
		return fmt.Errorf("migrate: column %s: unknown job kind %q", j.Column.Name, j.Kind)
	}
	if j.Column.Mode != policy.ModeRandomized {
		return fmt.Errorf("migrate: column %s: mode %s is not supported", j.Column.Name, j.Column.Mode)
	}
	return nil
}

// Default option values.
const (
	DefaultBatchSize = 500
	// MaxBatchSize bounds a batch, so that one transaction stays short.
	MaxBatchSize = 10000
)

// Options tune a run. The zero value runs at full speed with batches of
// DefaultBatchSize rows.
type Options struct {
	// BatchSize is the number of rows per transaction (default
	// DefaultBatchSize, at most MaxBatchSize).
	BatchSize int
	// RowsPerSecond limits the rate at which rows are read (0: no limit).
	// Batches are made no larger than one second's worth of rows, so the
	// load stays even.
	RowsPerSecond float64
	// DryRun reads every row and counts what would change, and writes
	// nothing: no value, no job row, no constraint, no schema.
	DryRun bool
	// AlterType lets an encrypt job whose policy stores ciphertext as bytea
	// change a column that is not bytea to bytea first (the statement of
	// *NeedsAlterError, which keeps each value's text as UTF-8 bytes), in
	// one transaction that also drops and recreates the views using the
	// column. Without it such a job returns *NeedsAlterError. A dry run only
	// checks that the change is possible.
	AlterType bool
	// Progress, if set, is called after every batch and once at the end,
	// from the goroutine that called Run.
	Progress func(Progress)
}

func (o Options) batchSize() int {
	n := o.BatchSize
	if n <= 0 {
		n = DefaultBatchSize
	}
	n = min(n, MaxBatchSize)
	if o.RowsPerSecond > 0 && float64(n) > o.RowsPerSecond {
		n = max(1, int(o.RowsPerSecond))
	}
	return n
}

// Counts are what a job did to the rows it read. Every row read is counted
// once in Changed, Current, Null, Failed or Deleted.
type Counts struct {
	// Scanned is the number of rows read.
	Scanned int64 `json:"scanned"`
	// Changed rows were rewritten (for a dry run: would be).
	Changed int64 `json:"changed"`
	// Current rows already held a value in the target form.
	Current int64 `json:"current"`
	// Null rows hold NULL, which every job leaves as it is.
	Null int64 `json:"null"`
	// Failed rows hold a value the job cannot convert; the Report lists their
	// keys.
	Failed int64 `json:"failed"`
	// Deleted rows were deleted by the application between the read and the
	// write.
	Deleted int64 `json:"deleted"`
	// Concurrent counts rows the application changed between the job's read
	// and its write; each was read again and counted by its new value above
	// (the application's write is never overwritten).
	Concurrent int64 `json:"concurrent"`
}

func (c *Counts) add(d Counts) {
	c.Scanned += d.Scanned
	c.Changed += d.Changed
	c.Current += d.Current
	c.Null += d.Null
	c.Failed += d.Failed
	c.Deleted += d.Deleted
	c.Concurrent += d.Concurrent
}

// Progress is reported after each batch.
type Progress struct {
	Job    string `json:"job"`
	Pass   int    `json:"pass"`
	DryRun bool   `json:"dry_run"`
	Counts
	// Total estimates the rows of the table (from the planner's statistics,
	// or a count when there are none); Scanned may exceed it.
	Total int64 `json:"total"`
	// Rate is rows read per second by this run.
	Rate float64 `json:"rate"`
	// ETA estimates the time left at Rate; 0 when unknown or done.
	ETA time.Duration `json:"eta_ns"`
	// Done is set on the last report of a run.
	Done bool `json:"done"`
}

// Fraction returns Scanned/Total, clamped to [0, 1].
func (p Progress) Fraction() float64 {
	if p.Total <= 0 {
		if p.Done {
			return 1
		}
		return 0
	}
	return min(1, float64(p.Scanned)/float64(p.Total))
}

// FailedRow is a row a job could not convert, named by its key only.
type FailedRow struct {
	// Key is the row's key, e.g. "id=42" or "(a=1, b=x)".
	Key string `json:"key"`
	// Reason says why, without the value.
	Reason string `json:"reason"`
}

// maxFailedRows bounds the failed rows kept in a report and in fleproxy.jobs.
const maxFailedRows = 100

// Constraint statuses in a Report.
const (
	ConstraintAdded     = "added"     // encrypt: added and validated
	ConstraintValidated = "validated" // encrypt: was present but NOT VALID; validated
	ConstraintPresent   = "present"   // encrypt: already present and valid
	ConstraintDropped   = "dropped"   // decrypt: dropped
	ConstraintAbsent    = "absent"    // decrypt: there was none
	ConstraintSkipped   = "skipped"   // encrypt: not added because rows failed, or dry run
)

// Report describes a run.
type Report struct {
	Job    string `json:"job"`
	Kind   Kind   `json:"kind"`
	Column string `json:"column"`
	// Key is how rows are identified: "primary key (id)" or
	// "unique index name (a, b)".
	Key    string `json:"key"`
	DryRun bool   `json:"dry_run"`
	// Resumed is set when this run continued an unfinished job.
	Resumed bool `json:"resumed"`
	// Pass counts the passes over the table of this job (more than one when
	// validating the constraint found plaintext written behind the job).
	Pass int `json:"pass"`
	// State is the job's state at the end: done, interrupted or failed.
	State string `json:"state"`
	// Counts are those of the whole job, including earlier runs it resumed.
	Counts
	// Total estimates the rows of the table.
	Total int64 `json:"total"`
	// FailedRows lists up to 100 failed rows.
	FailedRows []FailedRow `json:"failed_rows"`
	// PrimaryKeyID is the data key re-encryption targets (reencrypt only).
	PrimaryKeyID uint32 `json:"primary_key_id,omitempty"`
	// Constraint and ConstraintStatus say what happened to the column's CHECK
	// constraint.
	Constraint       string `json:"constraint,omitempty"`
	ConstraintStatus string `json:"constraint_status,omitempty"`
	// Hint is the SQL the administrator may run next (after decrypting a
	// bytea column: the ALTER TABLE that restores the logical type).
	Hint string `json:"hint,omitempty"`
	// TypeChange describes the change of the column to bytea this run made
	// before the job started (Options.AlterType); for a dry run, the change
	// it would make.
	TypeChange *TypeChange `json:"type_change,omitempty"`
	// Elapsed is the duration of this run.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Job states in fleproxy.jobs.
const (
	StateRunning     = "running"     // in progress, or its process died: resumes
	StateInterrupted = "interrupted" // stopped cleanly by cancellation: resumes
	StateFailed      = "failed"      // stopped by an error: resumes
	StateDone        = "done"        // finished: running it again starts a new pass
	StateSuperseded  = "superseded"  // another kind of job ran on the column: starts over
)

// ErrJobRunning is returned when another process runs a job on the same
// column.
var ErrJobRunning = errors.New("another process is running a job on this column")

// FailedRowsError is returned when a job finished its pass but some rows
// could not be converted. The Report lists them.
type FailedRowsError struct {
	Job    string
	Failed int64
	Rows   []FailedRow
}

func (e *FailedRowsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "migrate: job %s: %d row(s) could not be converted", e.Job, e.Failed)
	for i, r := range e.Rows {
		if i == 5 {
			fmt.Fprintf(&b, "; … (%d more listed in the report)", len(e.Rows)-5)
			break
		}
		fmt.Fprintf(&b, "; %s: %s", r.Key, r.Reason)
	}
	b.WriteString("; fix them and run the job again (it rewrites only what is left)")
	return b.String()
}

// NeedsAlterError is returned when the column's type cannot hold the job's
// result: encrypting for storage bytea a column that is not bytea. The
// administrator runs Statement first (it rewrites the table, under an
// exclusive lock), or runs the job with Options.AlterType, which does it
// and recreates the views that use the column.
type NeedsAlterError struct {
	Column    string
	Type      string
	Statement string
}

func (e *NeedsAlterError) Error() string {
	return fmt.Sprintf("migrate: column %s has type %s, but the policy stores its ciphertext as bytea: change the column to bytea first, keeping its text, with\n  %s\n(PostgreSQL refuses to change the type of a column that views or rules use: drop and recreate those around it), then run the job again; or run the job with --alter-type, which does this in one transaction, dropping and recreating the views that use the column",
		e.Column, e.Type, e.Statement)
}

// NoKeyError is returned for a table without a usable key.
type NoKeyError struct {
	Table  string
	Column string
}

func (e *NoKeyError) Error() string {
	return fmt.Sprintf("migrate: table %s has no primary key, and no unique index over NOT NULL columns (without expressions or a WHERE clause) that leaves out column %s; a job needs one to walk the table in batches and resume where it stopped: add one (e.g. ALTER TABLE … ADD PRIMARY KEY …)", e.Table, e.Column)
}
