package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/fleproxy/fleproxy/config"
	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
)

func newPolicyCommand() *cobra.Command {
	var flags adminFlags
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check the policy against the database and install its CHECK constraints",
		Args:  cobra.NoArgs,
	}
	flags.register(cmd)
	cmd.AddCommand(newPolicyCheckCommand(&flags), newPolicyConstraintsCommand(&flags))
	return cmd
}

func newPolicyCheckCommand(flags *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Check the policy against the live catalog and list the protected columns",
		Long: `Load the policy named by encryption.policy, check it against the database of
encryption.service (as ` + "`fleproxy serve`" + ` does at start-up), and list every protected column.
Exits non-zero, listing every problem, if the policy does not fit the database. With
encryption.allow_missing_tables, tables that do not exist yet are tolerated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			rep, checkErr := runPolicyCheck(cmd.Context(), e)
			if rep == nil {
				return checkErr
			}
			if flags.json {
				err = writeJSON(cmd.OutOrStdout(), rep)
			} else {
				err = rep.print(cmd.OutOrStdout())
			}
			if checkErr != nil {
				return fmt.Errorf("policy check: %w", checkErr)
			}
			return err
		},
	}
}

func newPolicyConstraintsCommand(flags *adminFlags) *cobra.Command {
	var apply bool
	cmd := &cobra.Command{
		Use:   "constraints",
		Short: "Print (or, with --apply, install) the CHECK constraints that admit only ciphertext",
		Long: `Print, for every protected column, the ALTER TABLE ... ADD CONSTRAINT ... CHECK statement that makes
PostgreSQL itself refuse any value that is not a fleproxy ciphertext (NULL is allowed), so a client
that bypasses the proxy cannot store plaintext in a protected column. Without --apply nothing
connects to the database.

With --apply, check the policy against the database and add the constraints in one transaction
through encryption.service, skipping those that already exist. Adding a constraint scans its table
under an exclusive lock. If a column already holds values that are not ciphertext, nothing is
added: encrypt the existing rows first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !apply {
				pol, err := policy.Load(e.Policy)
				if err != nil {
					return err
				}
				plans, err := planConstraints(pol)
				if err != nil {
					return err
				}
				if flags.json {
					return writeJSON(out, plans)
				}
				return printConstraintsSQL(out, pol, plans)
			}
			return runApplyConstraints(cmd.Context(), e, out, flags.json)
		},
	}
	cmd.Flags().BoolVar(&apply, "apply", false, "add the constraints to the database through encryption.service")
	return cmd
}

// policyCheckReport is what `policy check` shows.
type policyCheckReport struct {
	Policy   string          `json:"policy"`
	Database string          `json:"database"`
	Valid    bool            `json:"valid"`
	Columns  []checkedColumn `json:"columns"`
	Problems []string        `json:"problems"`
	// Identities says, per identity of the policy, what it sees of each protected column.
	Identities []identityView `json:"identities"`

	allowMissing bool
}

// identityView is what callers matched by one identity see of each protected column.
type identityView struct {
	Identity string            `json:"identity"`
	MayWrite bool              `json:"may_write"`
	Sees     map[string]string `json:"sees"` // column -> clearance
}

// identityViews lists, per identity and then for cleared.roles and for callers matched by
// nothing, the clearance of every column.
func identityViews(pol *policy.Policy) []identityView {
	var out []identityView
	see := func(r *policy.Rule, col *policy.Column) string {
		with := pol.Sees(r, col, true)
		without := pol.Sees(r, col, false)
		if with != without {
			return fmt.Sprintf("%s with a client certificate, %s without", with, without)
		}
		return with.String()
	}
	for _, r := range pol.Identities() {
		v := identityView{Identity: r.Describe(), MayWrite: r.MayWrite(), Sees: map[string]string{}}
		for _, c := range pol.Columns() {
			v.Sees[c.Name.String()] = see(r, c)
		}
		out = append(out, v)
	}
	for _, role := range pol.ClearedRoles() {
		v := identityView{Identity: fmt.Sprintf("role %s (cleared.roles, if no identity matches)", role), MayWrite: true, Sees: map[string]string{}}
		for _, c := range pol.Columns() {
			clr := pol.ClearanceFor(policy.Identity{Role: role}, c)
			if cert := pol.ClearanceFor(policy.Identity{Role: role, TLS: true, Cert: &x509.Certificate{}}, c); cert != clr {
				v.Sees[c.Name.String()] = fmt.Sprintf("%s with a client certificate, %s without", cert, clr)
			} else {
				v.Sees[c.Name.String()] = clr.String()
			}
		}
		out = append(out, v)
	}
	return out
}

// checkedColumn is one protected column and whether its table exists.
type checkedColumn struct {
	Column      string `json:"column"`
	Schema      string `json:"schema"`
	Table       string `json:"table"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Mode        string `json:"mode"`
	Storage     string `json:"storage"`
	Key         string `json:"key"`
	ID          string `json:"id"`
	TableExists bool   `json:"table_exists"`
}

// runPolicyCheck checks the policy against the catalog. The report is nil when the check could
// not run; otherwise the error, if any, is the *policy.ValidationError listing every problem.
func runPolicyCheck(ctx context.Context, e config.Encryption) (*policyCheckReport, error) {
	pol, err := policy.Load(e.Policy)
	if err != nil {
		return nil, err
	}
	pool, db, err := openService(ctx, e)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	exists, err := existingTables(ctx, pool, pol.Tables())
	if err != nil {
		return nil, err
	}
	rep := &policyCheckReport{Policy: pol.Source(), Database: db, Problems: []string{}, allowMissing: e.AllowMissingTables, Identities: identityViews(pol)}
	for _, c := range pol.Columns() {
		rep.Columns = append(rep.Columns, checkedColumn{
			Column: c.Name.String(), Schema: c.Name.Schema, Table: c.Name.Table, Name: c.Name.Column,
			Type: string(c.Type), Mode: string(c.Mode), Storage: string(c.Storage), Key: c.Key, ID: c.ID,
			TableExists: exists[c.Name.TableName()],
		})
	}
	checkErr := checkPolicy(ctx, pol, pool, e.AllowMissingTables)
	var ve *policy.ValidationError
	switch {
	case checkErr == nil:
		rep.Valid = true
	case errors.As(checkErr, &ve):
		for _, p := range ve.Problems {
			rep.Problems = append(rep.Problems, p.String())
		}
	default:
		return nil, checkErr
	}
	// `serve` also needs a keyring for every key name: say so here rather than at start-up.
	if missing := missingKeyrings(ctx, e, pool, pol); len(missing) > 0 {
		rep.Valid = false
		rep.Problems = append(rep.Problems, missing...)
		checkErr = errors.Join(checkErr, errors.New(strings.Join(missing, "; ")))
	}
	return rep, checkErr
}

// existingTables reports which of tables exist (as any relation; the policy check says whether
// it is one fleproxy can protect).
func existingTables(ctx context.Context, q policy.Querier, tables []policy.TableName) (map[policy.TableName]bool, error) {
	schemas := make([]string, len(tables))
	names := make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Table
	}
	rows, err := q.Query(ctx, `
SELECT w.s, w.t FROM unnest($1::text[], $2::text[]) AS w(s, t)
WHERE EXISTS (
	SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = w.s AND c.relname = w.t)`, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy.TableName, error) {
		var t policy.TableName
		err := r.Scan(&t.Schema, &t.Table)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	out := make(map[policy.TableName]bool, len(found))
	for _, t := range found {
		out[t] = true
	}
	return out, nil
}

func (r *policyCheckReport) print(out io.Writer) error {
	fmt.Fprintf(out, "Policy %s, database %q: %d protected column(s)\n", r.Policy, r.Database, len(r.Columns))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COLUMN\tTYPE\tMODE\tSTORAGE\tKEY\tID\tTABLE")
	for _, c := range r.Columns {
		table := "exists"
		if !c.TableExists {
			table = "missing"
			if r.allowMissing {
				table = "missing (allowed by allow_missing_tables)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Column, c.Type, c.Mode, c.Storage, c.Key, c.ID, table)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, v := range r.Identities {
		write := "may write protected columns"
		if !v.MayWrite {
			write = "may not write protected columns"
		}
		fmt.Fprintf(out, "\n%s (%s) sees:\n", v.Identity, write)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		for _, c := range r.Columns {
			fmt.Fprintf(tw, "  %s\t%s\n", c.Column, v.Sees[c.Column])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "\nAnyone matched by no identity (and not in cleared.roles) sees ciphertext.")
	var err error
	if r.Valid {
		_, err = fmt.Fprintln(out, "OK: the policy fits the database.")
	} else {
		_, err = fmt.Fprintf(out, "INVALID: %d problem(s), listed in the error below.\n", len(r.Problems))
	}
	return err
}

// Constraint statuses after --apply.
const (
	constraintAdded        = "added"
	constraintPresent      = "present"       // a constraint of that name exists: skipped
	constraintTableMissing = "table_missing" // skipped; allow_missing_tables
	constraintViolated     = "violated"      // existing rows are not ciphertext
	constraintNotAdded     = "not_added"     // rolled back because another column was violated
)

// constraintPlan is the CHECK constraint of one protected column.
type constraintPlan struct {
	Column     string `json:"column"`
	Constraint string `json:"constraint"`
	SQL        string `json:"sql"`
	Status     string `json:"status,omitempty"`

	name policy.ColumnName
	stmt string // SQL without the final semicolon
}

// maxIdentLen is PostgreSQL's NAMEDATALEN-1: the server truncates longer identifiers.
const maxIdentLen = 63

// constraintName returns the name of the CHECK constraint on column of table:
// fleproxy_<table>_<column>_ciphertext, or, when that is longer than PostgreSQL's 63-byte
// identifier limit, a shortened form that ends with a hash of the full names, so the name is
// stable and stays distinct from the other columns' of the table.
func constraintName(table, column string) string {
	const prefix, suffix = "fleproxy_", "_ciphertext"
	mid := table + "_" + column
	if len(prefix)+len(mid)+len(suffix) <= maxIdentLen {
		return prefix + mid + suffix
	}
	sum := sha256.Sum256([]byte(table + "\x00" + column))
	tag := "_" + hex.EncodeToString(sum[:4])
	n := maxIdentLen - len(prefix) - len(tag) - len(suffix)
	for n > 0 && !utf8.RuneStart(mid[n]) {
		n--
	}
	return prefix + mid[:n] + tag + suffix
}

// planConstraints returns the CHECK constraint of every protected column of pol, in policy order.
func planConstraints(pol *policy.Policy) ([]constraintPlan, error) {
	cols := pol.Columns()
	plans := make([]constraintPlan, 0, len(cols))
	for _, c := range cols {
		st, err := envelope.ParseStorage(string(c.Storage))
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.Name, err)
		}
		name := constraintName(c.Name.Table, c.Name.Column)
		stmt := fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s)",
			pgx.Identifier{c.Name.Schema, c.Name.Table}.Sanitize(),
			pgx.Identifier{name}.Sanitize(),
			envelope.CheckExpression(pgx.Identifier{c.Name.Column}.Sanitize(), st))
		plans = append(plans, constraintPlan{Column: c.Name.String(), Constraint: name, SQL: stmt + ";", name: c.Name, stmt: stmt})
	}
	return plans, nil
}

// sqlComment makes s safe inside a -- comment: a line break would end the comment.
func sqlComment(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// printConstraintsSQL prints plans as one SQL script that adds every constraint atomically.
func printConstraintsSQL(out io.Writer, pol *policy.Policy, plans []constraintPlan) error {
	fmt.Fprintf(out, "-- CHECK constraints for the protected columns of policy %s:\n", sqlComment(pol.Source()))
	fmt.Fprintln(out, "-- PostgreSQL refuses any value that is not a fleproxy ciphertext (NULL is allowed).")
	fmt.Fprintln(out, "-- Apply with `fleproxy policy constraints --apply`, which skips those already present.")
	fmt.Fprintln(out, "BEGIN;")
	for _, p := range plans {
		fmt.Fprintln(out, p.SQL)
	}
	_, err := fmt.Fprintln(out, "COMMIT;")
	return err
}

// plaintextError reports protected columns whose existing rows are not ciphertext, so their
// constraints could not be added. It names columns only, never values.
type plaintextError struct{ columns []string }

func (e *plaintextError) Error() string {
	what := "column " + e.columns[0] + " holds"
	if len(e.columns) > 1 {
		what = "columns " + strings.Join(e.columns, ", ") + " hold"
	}
	return what + " values that are not fleproxy ciphertext (plaintext stored before the column was protected, " +
		"or written without the proxy), so no constraint was added; encrypt the existing rows first " +
		"(`fleproxy migrate encrypt --column …`), then run `fleproxy policy constraints --apply` again"
}

// runApplyConstraints is `policy constraints --apply`: it checks the policy against the database
// and installs the constraints.
func runApplyConstraints(ctx context.Context, e config.Encryption, out io.Writer, asJSON bool) error {
	pol, err := policy.Load(e.Policy)
	if err != nil {
		return err
	}
	pool, _, err := openService(ctx, e)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := checkPolicy(ctx, pol, pool, e.AllowMissingTables); err != nil {
		return fmt.Errorf("policy constraints: the policy does not fit the database, so no constraint was added: %w", err)
	}
	plans, err := installConstraints(ctx, pool, pol)
	if plans != nil {
		var perr error
		if asJSON {
			perr = writeJSON(out, plans)
		} else {
			perr = printConstraintResults(out, plans)
		}
		if err == nil {
			err = perr
		}
	}
	return err
}

// applyConstraints is `fleproxy policy constraints --apply` on a policy already checked against
// the database of pool: it adds the CHECK constraint of every protected column in one transaction,
// skipping those that exist and tables that do not, and describes what it did on out. If a column
// holds values that are not ciphertext, nothing is added and the error names the column.
func applyConstraints(ctx context.Context, pool *pgxpool.Pool, pol *policy.Policy, out io.Writer) error {
	plans, err := installConstraints(ctx, pool, pol)
	if plans != nil {
		if perr := printConstraintResults(out, plans); err == nil {
			err = perr
		}
	}
	return err
}

// SQLSTATEs that installConstraints handles (PostgreSQL appendix A, "Error Codes").
const (
	sqlstateCheckViolation  = "23514"
	sqlstateDuplicateObject = "42710"
)

// lockTimeout bounds how long adding a constraint waits for its table's lock, so that --apply
// on a busy table fails rather than queueing every other query of the table behind it.
const lockTimeout = "10s"

// installConstraints adds the missing constraints of pol in one transaction and returns every
// plan with its status. Plans are returned with a *plaintextError too (statuses say which
// columns were violated); other errors return no plans.
func installConstraints(ctx context.Context, pool *pgxpool.Pool, pol *policy.Policy) ([]constraintPlan, error) {
	plans, err := planConstraints(pol)
	if err != nil {
		return nil, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy constraints: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+lockTimeout+"'"); err != nil {
		return nil, fmt.Errorf("policy constraints: %w", err)
	}
	var violated []string
	for i := range plans {
		p := &plans[i]
		var tableExists, present bool
		err := tx.QueryRow(ctx, `
SELECT c.oid IS NOT NULL,
       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid AND k.conname = $3)
FROM (SELECT) AS one
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = $1
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = $2`,
			p.name.Schema, p.name.Table, p.Constraint).Scan(&tableExists, &present)
		if err != nil {
			return nil, fmt.Errorf("policy constraints: column %s: %w", p.Column, err)
		}
		switch {
		case !tableExists:
			p.Status = constraintTableMissing
			continue
		case present:
			p.Status = constraintPresent
			continue
		}
		// A savepoint per constraint lets every violated column be reported, not just the first.
		if _, err := tx.Exec(ctx, "SAVEPOINT fleproxy_constraint"); err != nil {
			return nil, fmt.Errorf("policy constraints: %w", err)
		}
		_, err = tx.Exec(ctx, p.stmt)
		var pe *pgconn.PgError
		switch {
		case err == nil:
			p.Status = constraintAdded
		case errors.As(err, &pe) && pe.Code == sqlstateCheckViolation:
			// The server's error is not passed on: only its code is needed, and the
			// column is named from the plan.
			p.Status = constraintViolated
			violated = append(violated, p.Column)
		case errors.As(err, &pe) && pe.Code == sqlstateDuplicateObject:
			p.Status = constraintPresent // added concurrently since the check above
		default:
			return nil, fmt.Errorf("policy constraints: column %s: %w", p.Column, err)
		}
		release := "RELEASE SAVEPOINT fleproxy_constraint"
		if err != nil {
			release = "ROLLBACK TO SAVEPOINT fleproxy_constraint"
		}
		if _, err := tx.Exec(ctx, release); err != nil {
			return nil, fmt.Errorf("policy constraints: %w", err)
		}
	}
	if len(violated) > 0 {
		for i := range plans {
			if plans[i].Status == constraintAdded {
				plans[i].Status = constraintNotAdded
			}
		}
		return plans, fmt.Errorf("policy constraints: %w", &plaintextError{columns: violated})
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("policy constraints: commit: %w", err)
	}
	return plans, nil
}

// printConstraintResults describes the outcome of installConstraints.
func printConstraintResults(out io.Writer, plans []constraintPlan) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COLUMN\tCONSTRAINT\tRESULT")
	counts := make(map[string]int)
	for _, p := range plans {
		counts[p.Status]++
		var result string
		switch p.Status {
		case constraintAdded:
			result = "added"
		case constraintPresent:
			result = "already present, skipped"
		case constraintTableMissing:
			result = "table does not exist yet, skipped"
		case constraintViolated:
			result = "FAILED: existing rows are not ciphertext"
		case constraintNotAdded:
			result = "not added (rolled back)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Column, p.Constraint, result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var err error
	if counts[constraintViolated] > 0 {
		_, err = fmt.Fprintln(out, "No constraint was added.")
	} else {
		_, err = fmt.Fprintf(out, "Added %d constraint(s); skipped %d already present and %d on missing tables.\n",
			counts[constraintAdded], counts[constraintPresent], counts[constraintTableMissing])
	}
	return err
}

// missingKeyrings lists, as problems, the key names of pol that have no keyring in the store.
func missingKeyrings(ctx context.Context, e config.Encryption, pool *pgxpool.Pool, pol *policy.Policy) []string {
	store, err := openKeyStore(e, pool)
	if err != nil {
		return []string{fmt.Sprintf("key store: %v", err)}
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range pol.Columns() {
		if seen[c.Key] {
			continue
		}
		seen[c.Key] = true
		if _, err := store.Get(ctx, c.Key); err != nil {
			if errors.Is(err, keys.ErrNotFound) {
				out = append(out, fmt.Sprintf("keyring %q (used by %s) does not exist: create it with `fleproxy keys init`", c.Key, c.Name))
			} else {
				out = append(out, fmt.Sprintf("keyring %q (used by %s) cannot be read from the key store (run `fleproxy keys init` if it was never created): %v", c.Key, c.Name, err))
			}
		}
	}
	return out
}
