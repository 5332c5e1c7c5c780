package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy/codec"
)

const (
	// batchTimeout bounds one batch transaction, which a cancelled context
	// does not interrupt (cancellation stops a job between batches).
	batchTimeout = 2 * time.Minute
	// lockTimeout bounds waits for row and table locks, so a job never
	// queues the application behind it for long; a batch that times out is
	// retried.
	lockTimeout = "5s"
	// ddlLockTimeout bounds the wait for the table lock that adding or
	// dropping the CHECK constraint takes.
	ddlLockTimeout = "10s"
	// batchAttempts bounds retries of a batch after a deadlock, a
	// serialization failure or a lock timeout.
	batchAttempts = 5
	// maxPasses bounds the passes of one run: a pass is repeated only when
	// the constraint found plaintext written behind the job, or the primary
	// key changed during a re-encryption.
	maxPasses = 3
)

// Runner runs jobs against one database with one key manager. It holds no
// state between runs and is safe for concurrent use; jobs on the same
// column exclude each other (see ErrJobRunning).
type Runner struct {
	db   *pgxpool.Pool
	keys *keys.Manager

	hooks hooks // for tests only
}

// hooks let tests act at the points that matter for concurrency and
// crashes. Each is called from the goroutine running the job.
type hooks struct {
	afterSelect  func(keys [][]string) // after a batch's SELECT, before its UPDATE
	beforeCommit func()                // after a batch's writes, before its COMMIT
	afterCommit  func()
}

// NewRunner returns a Runner that connects through db (connected directly to
// the protected database, not through the proxy) and encrypts with km.
func NewRunner(db *pgxpool.Pool, km *keys.Manager) *Runner {
	return &Runner{db: db, keys: km}
}

// execution is one run of one job.
type execution struct {
	r     *Runner
	job   Job
	id    string
	opts  Options
	conn  *pgxpool.Conn
	t     *table
	conv  *converter
	stmts statements
	state jobState
	rep   *Report
	// alter is set when the column must be changed to bytea first
	// (Options.AlterType).
	alter *NeedsAlterError

	runStart time.Time
	runRows  int64 // rows read by this run
	pace     pacer
}

// Run runs job until it has converted every row, ctx is cancelled (the
// batch in progress finishes first), or an error stops it. It resumes the
// job where an earlier run stopped, however that run ended.
//
// The report is returned whenever the job started, also with an error:
// *FailedRowsError when rows could not be converted (the pass finished; the
// constraint was not added), an error wrapping ctx.Err() when cancelled,
// ErrJobRunning when another process runs a job on the column,
// *NeedsAlterError (without Options.AlterType) or *NoKeyError when the
// table needs changing first, *DependentsError when Options.AlterType cannot
// change the column.
func (r *Runner) Run(ctx context.Context, job Job, opts Options) (*Report, error) {
	start := time.Now()
	if err := job.validate(); err != nil {
		return nil, err
	}
	x := &execution{r: r, job: job, id: job.ID(), opts: opts}
	conn, err := r.db.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: job %s: connect: %w", x.id, err)
	}
	x.conn = conn
	defer conn.Release()
	if err := x.setUp(ctx); err != nil {
		return nil, err
	}
	var change *TypeChange
	if !opts.DryRun {
		if err := x.lock(ctx); err != nil {
			return nil, err
		}
		defer x.unlock()
		if err := EnsureSchema(ctx, conn); err != nil {
			return nil, err
		}
		if x.alter != nil {
			// Under the job's lock, before the job starts: change the column
			// to bytea, then set up again for the bytea column.
			if change, err = x.alterToBytea(ctx); err != nil {
				return nil, err
			}
			if err := x.setUp(ctx); err != nil {
				return nil, err
			}
			if x.alter != nil {
				return nil, fmt.Errorf("migrate: job %s: column %s is still not bytea after changing its type", x.id, job.Column.Name)
			}
		}
	} else if x.alter != nil {
		if change, err = x.planAlter(ctx); err != nil {
			return nil, err
		}
	}
	x.rep.TypeChange = change
	if err := x.prepare(ctx); err != nil {
		return nil, err
	}
	err = x.run(ctx)
	x.rep.Elapsed = time.Since(start)
	x.fillReport()
	return x.rep, err
}

// setUp inspects the table and prepares the converter.
func (x *execution) setUp(ctx context.Context) error {
	col := x.job.Column
	t, err := inspect(ctx, x.conn, col)
	if err != nil {
		return err
	}
	x.alter = nil
	if err := checkStorage(x.job, t); err != nil {
		var na *NeedsAlterError
		if !x.opts.AlterType || !errors.As(err, &na) {
			return err
		}
		// Changed to bytea before the job starts (a dry run reads the values
		// as they are, as the text the change keeps).
		x.alter = na
		t.maxChars = -1
	}
	if x.job.Kind == KindReencrypt {
		// Pick up rotations made since the manager loaded the keyring.
		if err := x.r.keys.Refresh(ctx); err != nil {
			return fmt.Errorf("migrate: job %s: re-reading keyring %q: %w", x.id, col.Key, err)
		}
	}
	cipher, err := x.r.keys.ColumnCipher(ctx, col.Key, col.ID, envelope.Randomized)
	if err != nil {
		return fmt.Errorf("migrate: job %s: keyring %q: %w", x.id, col.Key, err)
	}
	typ, ok := codec.Lookup(string(col.Type))
	if !ok {
		return fmt.Errorf("migrate: column %s: logical type %s has no codec", col.Name, col.Type)
	}
	storage, err := envelope.ParseStorage(string(col.Storage))
	if err != nil {
		return fmt.Errorf("migrate: column %s: %w", col.Name, err)
	}
	x.t = t
	x.conv = &converter{
		kind: x.job.Kind, cipher: cipher, typ: typ, storage: storage,
		rawPlain: col.Type == policy.TypeBytea && t.baseType == oidBytea,
		maxChars: t.maxChars,
		session:  sessionOf(x.conn.Conn().PgConn()),
	}
	if x.job.Kind == KindReencrypt {
		if x.conv.primary, err = x.primaryKeyID(ctx); err != nil {
			return err
		}
	}
	valueType := "text"
	if t.baseType == oidBytea {
		valueType = "bytea"
	}
	x.stmts = buildStatements(t, valueType)
	x.rep = &Report{
		Job: x.id, Kind: x.job.Kind, Column: col.Name.String(), Key: t.keyDesc, DryRun: x.opts.DryRun,
		PrimaryKeyID: x.conv.primary, Constraint: x.job.Constraint, FailedRows: []FailedRow{},
	}
	if x.job.Kind == KindDecrypt {
		x.rep.Hint = restoreHint(col, t)
	}
	return nil
}

// sessionOf returns the codec session matching the server's settings, with
// which the stored text of plaintext values was written.
func sessionOf(pc *pgconn.PgConn) *codec.Session {
	s := &codec.Session{}
	for _, p := range []string{"DateStyle", "TimeZone", "server_encoding", "client_encoding"} {
		if v := pc.ParameterStatus(p); v != "" {
			// A setting the codecs cannot honour is recorded anyway: the values
			// it affects then fail to convert, and are reported as failed rows.
			_ = s.Set(p, v)
		}
	}
	return s
}

func (x *execution) primaryKeyID(ctx context.Context) (uint32, error) {
	kr, err := x.r.keys.Keyring(ctx, x.job.Column.Key)
	if err != nil {
		return 0, fmt.Errorf("migrate: job %s: keyring %q: %w", x.id, x.job.Column.Key, err)
	}
	return kr.Info().PrimaryKeyID, nil
}

// lockKey is the advisory lock that makes jobs on one column exclusive.
func (x *execution) lockKey() string { return "fleproxy migrate " + x.job.Column.Name.String() }

func (x *execution) lock(ctx context.Context) error {
	var ok bool
	if err := x.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", x.lockKey()).Scan(&ok); err != nil {
		return fmt.Errorf("migrate: job %s: %w", x.id, err)
	}
	if !ok {
		return fmt.Errorf("migrate: job %s: %w", x.id, ErrJobRunning)
	}
	return nil
}

// unlock releases the advisory lock; if it cannot, it closes the connection,
// which releases it too, rather than return a locked connection to the pool.
func (x *execution) unlock() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := x.conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", x.lockKey()); err != nil {
		_ = x.conn.Conn().Close(ctx)
	}
}

// prepare loads the job's state, resuming it, or starts a new pass.
func (x *execution) prepare(ctx context.Context) error {
	keyCols := make([]string, len(x.t.keys))
	for i, k := range x.t.keys {
		keyCols[i] = k.name
	}
	fresh := func() error {
		total, err := estimateRows(ctx, x.conn, x.t)
		if err != nil {
			return err
		}
		x.state = jobState{state: StateRunning, pass: 1, keyColumns: keyCols, targetKey: x.conv.primary, total: total, startedAt: time.Now()}
		return nil
	}
	if x.opts.DryRun {
		return fresh()
	}
	st, ok, err := loadJob(ctx, x.conn, x.id)
	if err != nil {
		return err
	}
	resumable := ok && st.state != StateDone && st.state != StateSuperseded &&
		slices.Equal(st.keyColumns, keyCols) && st.targetKey == x.conv.primary
	if resumable {
		x.state = st
		x.state.state = StateRunning
		x.rep.Resumed = true
	} else if err := fresh(); err != nil {
		return err
	}
	if err := supersede(ctx, x.conn, x.id, x.job); err != nil {
		return err
	}
	return saveJob(ctx, x.conn, x.id, x.job, &x.state)
}

// run walks the table, pass after pass, and finishes the job.
func (x *execution) run(ctx context.Context) error {
	x.runStart = time.Now()
	x.pace = pacer{rate: x.opts.RowsPerSecond}
	if x.job.Kind == KindDecrypt && !x.opts.DryRun && x.job.Constraint != "" {
		status, err := x.dropConstraint(ctx)
		if err != nil {
			return x.stop(err)
		}
		x.rep.ConstraintStatus = status
	}
	for {
		if err := x.pass(ctx); err != nil {
			return x.stop(err)
		}
		again, err := x.endOfPass(ctx)
		if err != nil {
			return x.stop(err)
		}
		if !again {
			break
		}
	}
	x.progress(true)
	if x.opts.DryRun {
		x.state.state = StateDone
		return nil
	}
	x.state.state = StateDone
	if err := saveJob(ctx, x.conn, x.id, x.job, &x.state); err != nil {
		return err
	}
	if x.state.counts.Failed > 0 {
		return &FailedRowsError{Job: x.id, Failed: x.state.counts.Failed, Rows: slices.Clone(x.state.failed)}
	}
	return nil
}

// pass runs batches from the job's last key to the end of the table.
func (x *execution) pass(ctx context.Context) error {
	limit := x.opts.batchSize()
	for {
		if err := x.pace.wait(ctx); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		began := time.Now()
		n, err := x.batchWithRetry(ctx, limit)
		if err != nil {
			return err
		}
		x.runRows += int64(n)
		x.pace.took(began, n)
		if n > 0 {
			x.progress(false)
		}
		if n < limit {
			return nil
		}
	}
}

// endOfPass finishes a pass: encrypt installs the constraint, re-encrypt
// checks the primary key did not change. It reports whether another pass is
// needed, and if so has recorded it.
func (x *execution) endOfPass(ctx context.Context) (bool, error) {
	if x.opts.DryRun {
		return false, nil
	}
	again := false
	switch x.job.Kind {
	case KindEncrypt:
		if x.job.Constraint == "" {
			break
		}
		if x.state.counts.Failed > 0 {
			x.rep.ConstraintStatus = ConstraintSkipped
			break
		}
		status, violated, err := x.addConstraint(ctx)
		if err != nil {
			return false, err
		}
		if x.rep.ConstraintStatus != ConstraintAdded { // added by an earlier pass of this run
			x.rep.ConstraintStatus = status
		}
		again = violated
		if violated && x.state.pass >= maxPasses {
			return false, fmt.Errorf("migrate: job %s: after %d passes, column %s still holds values that are not ciphertext: something keeps writing plaintext around the proxy", x.id, x.state.pass, x.job.Column.Name)
		}
	case KindReencrypt:
		if err := x.r.keys.Refresh(ctx); err != nil {
			return false, fmt.Errorf("migrate: job %s: re-reading keyring %q: %w", x.id, x.job.Column.Key, err)
		}
		primary, err := x.primaryKeyID(ctx)
		if err != nil {
			return false, err
		}
		if primary != x.conv.primary && x.state.pass < maxPasses {
			// Rotated during the pass: the rows already passed went to the old
			// primary. Walk again, towards the new one.
			x.conv.primary, x.state.targetKey, x.rep.PrimaryKeyID = primary, primary, primary
			again = true
		}
	}
	if again {
		// The new pass meets every row again: its failures are counted anew.
		x.state.pass++
		x.state.lastKey = nil
		x.state.counts.Failed = 0
		x.state.failed = nil
		return true, saveJob(ctx, x.conn, x.id, x.job, &x.state)
	}
	return false, nil
}

// stop records why the job stopped and returns err, explained.
func (x *execution) stop(err error) error {
	if x.opts.DryRun {
		if isCancel(err) {
			x.state.state = StateInterrupted
			return fmt.Errorf("migrate: job %s (dry run) interrupted: %w", x.id, err)
		}
		x.state.state = StateFailed
		return err
	}
	x.state.state = StateFailed
	if isCancel(err) {
		x.state.state = StateInterrupted
		err = fmt.Errorf("migrate: job %s interrupted after %d rows; run the same command again to resume: %w", x.id, x.state.counts.Scanned, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := saveJob(ctx, x.conn, x.id, x.job, &x.state); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

func isCancel(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// progress reports to the callback.
func (x *execution) progress(done bool) {
	if x.opts.Progress == nil {
		return
	}
	p := Progress{Job: x.id, Pass: x.state.pass, DryRun: x.opts.DryRun, Counts: x.state.counts, Total: x.state.total, Done: done}
	if el := time.Since(x.runStart).Seconds(); el > 0 {
		p.Rate = float64(x.runRows) / el
	}
	if !done && p.Rate > 0 && p.Total > p.Scanned {
		p.ETA = time.Duration(float64(p.Total-p.Scanned) / p.Rate * float64(time.Second))
	}
	x.opts.Progress(p)
}

func (x *execution) fillReport() {
	x.rep.Pass = x.state.pass
	x.rep.State = x.state.state
	x.rep.Counts = x.state.counts
	x.rep.Total = x.state.total
	x.rep.FailedRows = slices.Clone(x.state.failed)
	if x.rep.FailedRows == nil {
		x.rep.FailedRows = []FailedRow{}
	}
}

// retryable reports whether a batch that failed with err may simply be run
// again: deadlock, serialization failure, lock timeout (PostgreSQL
// appendix A, "Error Codes"), a prepared statement outdated by a change of
// the column's type.
func retryable(err error) bool {
	var code, msg string
	var pe *pgconn.PgError
	var de *DBError
	switch {
	case errors.As(err, &de):
		code, msg = de.Code, de.Message
	case errors.As(err, &pe):
		code, msg = pe.Code, pe.Message
	}
	switch code {
	case "40001", "40P01", "55P03":
		return true
	case "0A000":
		// A statement prepared on this connection before the column's type
		// changed (Options.AlterType): pgx has dropped it from its cache, and
		// prepares it again.
		return strings.Contains(msg, "cached plan must not change result type")
	}
	return false
}

// batchWithRetry runs one batch, again after transient failures. The batch
// is not cancelled with ctx: cancellation takes effect between batches.
func (x *execution) batchWithRetry(ctx context.Context, limit int) (int, error) {
	for attempt := 1; ; attempt++ {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
		n, err := x.batch(bctx, limit)
		cancel()
		if err == nil || !retryable(err) || attempt == batchAttempts {
			return n, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

// storedRow is one row of a batch.
type storedRow struct {
	key   []string
	value []byte // nil for NULL
}

// change is one compare-and-set: the row's key, the value read and the value
// to write.
type change struct {
	key      []string
	old, new []byte
}

func keyString(k []string) string { return strings.Join(k, "\x00") }

// batch runs one batch transaction (see the package documentation) and
// returns the number of rows it read.
func (x *execution) batch(ctx context.Context, limit int) (int, error) {
	opts := pgx.TxOptions{}
	if x.opts.DryRun {
		opts.AccessMode = pgx.ReadOnly
	}
	tx, err := x.conn.BeginTx(ctx, opts)
	if err != nil {
		return 0, x.dbError("begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+lockTimeout+"'"); err != nil {
		return 0, x.dbError("begin", err)
	}

	args := []any{limit}
	sql := x.stmts.first
	if x.state.lastKey != nil {
		sql = x.stmts.next
		for _, k := range x.state.lastKey {
			args = append(args, k)
		}
	}
	batch, err := x.readRows(ctx, tx, sql, args...)
	if err != nil {
		return 0, x.dbError("read", err)
	}
	if len(batch) == 0 {
		return 0, nil
	}
	if h := x.r.hooks.afterSelect; h != nil {
		keys := make([][]string, len(batch))
		for i, r := range batch {
			keys[i] = r.key
		}
		h(keys)
	}

	var d Counts
	d.Scanned = int64(len(batch))
	failed := slices.Clone(x.state.failed)
	classify := func(r storedRow, changes []change) []change {
		if r.value == nil {
			d.Null++
			return changes
		}
		v, out, reason := x.conv.convert(r.value)
		switch out {
		case outChange:
			return append(changes, change{key: r.key, old: r.value, new: v})
		case outCurrent:
			d.Current++
		case outFailed:
			d.Failed++
			if len(failed) < maxFailedRows {
				failed = append(failed, FailedRow{Key: describeKey(x.t, r.key), Reason: reason})
			}
		}
		return changes
	}
	var changes []change
	for _, r := range batch {
		changes = classify(r, changes)
	}

	if x.opts.DryRun {
		d.Changed += int64(len(changes))
	} else if len(changes) > 0 {
		done, err := x.update(ctx, tx, changes)
		if err != nil {
			return 0, err
		}
		d.Changed += int64(len(done))
		// Rows the application changed since the SELECT: read them again,
		// locked this time, and convert what they hold now.
		var conflicts [][]string
		for _, c := range changes {
			if !done[keyString(c.key)] {
				conflicts = append(conflicts, c.key)
			}
		}
		if len(conflicts) > 0 {
			d.Concurrent += int64(len(conflicts))
			again, err := x.lockRows(ctx, tx, conflicts)
			if err != nil {
				return 0, x.dbError("re-read", err)
			}
			d.Deleted += int64(len(conflicts) - len(again))
			var retry []change
			for _, r := range again {
				retry = classify(r, retry)
			}
			done, err := x.update(ctx, tx, retry)
			if err != nil {
				return 0, err
			}
			if len(done) != len(retry) {
				return 0, fmt.Errorf("migrate: job %s: table %s: %d locked row(s) of column %s changed under the job", x.id, x.t.name, len(retry)-len(done), x.job.Column.Name)
			}
			d.Changed += int64(len(done))
		}
	}

	next := x.state
	next.counts.add(d)
	next.lastKey = batch[len(batch)-1].key
	next.failed = failed
	if !x.opts.DryRun {
		if err := saveJob(ctx, tx, x.id, x.job, &next); err != nil {
			return 0, err
		}
	}
	if h := x.r.hooks.beforeCommit; h != nil {
		h()
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, x.dbError("commit", err)
	}
	if h := x.r.hooks.afterCommit; h != nil {
		h()
	}
	x.state = next
	return len(batch), nil
}

// readRows runs a SELECT of keys (as text) and the column.
func (x *execution) readRows(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]storedRow, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	n := len(x.t.keys)
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedRow, error) {
		key := make([]string, n)
		dst := make([]any, n+1)
		for i := range key {
			dst[i] = &key[i]
		}
		var v []byte
		dst[n] = &v
		err := r.Scan(dst...)
		return storedRow{key: key, value: v}, err
	})
}

// keyArrays turns keys into one text array per key column.
func (x *execution) keyArrays(keys [][]string) []any {
	arrays := make([]any, len(x.t.keys))
	for i := range x.t.keys {
		col := make([]string, len(keys))
		for j, k := range keys {
			col[j] = k[i]
		}
		arrays[i] = col
	}
	return arrays
}

// lockRows reads the rows with the given keys again, FOR UPDATE; rows that
// were deleted are missing from the result.
func (x *execution) lockRows(ctx context.Context, tx pgx.Tx, keys [][]string) ([]storedRow, error) {
	return x.readRows(ctx, tx, x.stmts.lock, x.keyArrays(keys)...)
}

// update writes changes with compare-and-set and returns the keys of the
// rows it updated.
func (x *execution) update(ctx context.Context, tx pgx.Tx, changes []change) (map[string]bool, error) {
	done := make(map[string]bool, len(changes))
	if len(changes) == 0 {
		return done, nil
	}
	keys := make([][]string, len(changes))
	for i, c := range changes {
		keys[i] = c.key
	}
	args := x.keyArrays(keys)
	if x.t.baseType == oidBytea {
		olds, news := make([][]byte, len(changes)), make([][]byte, len(changes))
		for i, c := range changes {
			// A nil slice would be sent as NULL: an empty value must stay empty.
			olds[i], news[i] = nonNil(c.old), nonNil(c.new)
		}
		args = append(args, olds, news)
	} else {
		olds, news := make([]string, len(changes)), make([]string, len(changes))
		for i, c := range changes {
			olds[i], news[i] = string(c.old), string(c.new)
		}
		args = append(args, olds, news)
	}
	rows, err := tx.Query(ctx, x.stmts.update, args...)
	if err != nil {
		return nil, x.dbError("update", err)
	}
	key := make([]string, len(x.t.keys))
	dst := make([]any, len(key))
	for i := range key {
		dst[i] = &key[i]
	}
	_, err = pgx.ForEachRow(rows, dst, func() error {
		done[keyString(key)] = true
		return nil
	})
	if err != nil {
		return nil, x.dbError("update", err)
	}
	return done, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// dbError describes a database error of a batch, naming the table, column
// and the batch's position, never a value: PostgreSQL's DETAIL (which may
// echo a row) and its other fields are left out.
func (x *execution) dbError(step string, err error) error {
	where := "from the start"
	if x.state.lastKey != nil {
		where = "after " + describeKey(x.t, x.state.lastKey)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return &DBError{Job: x.id, Table: x.t.name.String(), Column: x.job.Column.Name.String(), Step: step, Where: where,
			Code: pe.Code, Message: pe.Message, Constraint: pe.ConstraintName}
	}
	return fmt.Errorf("migrate: job %s: %s of table %s (column %s, batch %s): %w", x.id, step, x.t.name, x.job.Column.Name, where, err)
}

// DBError is a database error met by a batch. It holds PostgreSQL's message
// and SQLSTATE but not its DETAIL, which may echo a row's values.
type DBError struct {
	Job, Table, Column string
	Step               string // begin, read, update, re-read, commit
	Where              string // "after id=42": the batch's position
	Code, Message      string
	Constraint         string // the violated constraint, if any
}

func (e *DBError) Error() string {
	s := fmt.Sprintf("migrate: job %s: %s of table %s (column %s, batch %s): %s (SQLSTATE %s)", e.Job, e.Step, e.Table, e.Column, e.Where, e.Message, e.Code)
	if e.Code == "23514" && e.Constraint != "" {
		s += fmt.Sprintf("; drop constraint %s if it keeps plaintext out of this column", e.Constraint)
	}
	return s
}

// SQLState returns the SQLSTATE, as pgconn.PgError does.
func (e *DBError) SQLState() string { return e.Code }
