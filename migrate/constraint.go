package migrate

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleproxy/fleproxy/envelope"
)

// constraintState reports whether the job's constraint exists on the table
// and whether it is validated.
func (x *execution) constraintState(ctx context.Context) (exists, valid bool, err error) {
	err = x.conn.QueryRow(ctx, `SELECT convalidated FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND conname = $2`,
		x.t.oid, x.job.Constraint).Scan(&valid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("migrate: job %s: reading constraint %s: %w", x.id, x.job.Constraint, err)
	}
	return true, valid, nil
}

// ddl runs one statement in its own transaction with a bounded wait for the
// table lock.
func (x *execution) ddl(ctx context.Context, stmt string) error {
	tx, err := x.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+ddlLockTimeout+"'"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// addConstraint makes sure the column's CHECK constraint exists and is
// validated. It adds it NOT VALID (a brief exclusive lock; from then on no
// plaintext can be written) and then validates it (a scan that lets reads
// and writes go on). violated reports values that are not ciphertext, which
// need another pass; the constraint then stays, NOT VALID.
func (x *execution) addConstraint(ctx context.Context) (status string, violated bool, err error) {
	exists, valid, err := x.constraintState(ctx)
	if err != nil {
		return "", false, err
	}
	if exists && valid {
		return ConstraintPresent, false, nil
	}
	name := pgx.Identifier{x.job.Constraint}.Sanitize()
	status = ConstraintValidated
	if !exists {
		st, err := envelope.ParseStorage(string(x.job.Column.Storage))
		if err != nil {
			return "", false, err
		}
		stmt := fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s) NOT VALID", x.t.ident(), name,
			envelope.CheckExpression(x.t.quotedColumn(), st))
		if err := x.ddl(ctx, stmt); err != nil && !isCode(err, "42710") { // duplicate_object: added meanwhile
			return "", false, fmt.Errorf("migrate: job %s: adding constraint %s to table %s: %w", x.id, x.job.Constraint, x.t.name, safeError(err))
		}
		status = ConstraintAdded
	}
	err = x.ddl(ctx, fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", x.t.ident(), name))
	if isCode(err, "23514") { // check_violation
		return status, true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("migrate: job %s: validating constraint %s of table %s: %w", x.id, x.job.Constraint, x.t.name, safeError(err))
	}
	return status, false, nil
}

// dropConstraint drops the column's CHECK constraint if it exists.
func (x *execution) dropConstraint(ctx context.Context) (string, error) {
	exists, _, err := x.constraintState(ctx)
	if err != nil {
		return "", err
	}
	if !exists {
		return ConstraintAbsent, nil
	}
	stmt := fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", x.t.ident(), pgx.Identifier{x.job.Constraint}.Sanitize())
	if err := x.ddl(ctx, stmt); err != nil {
		return "", fmt.Errorf("migrate: job %s: dropping constraint %s of table %s: %w", x.id, x.job.Constraint, x.t.name, safeError(err))
	}
	return ConstraintDropped, nil
}

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// safeError replaces a PostgreSQL error by its message and SQLSTATE, so that
// its DETAIL, which may echo a row's values, cannot reach a log. Other errors
// (a cancelled context, a broken connection) are returned as they are.
func safeError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return err
}
