package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleproxy/fleproxy/config"
	"github.com/fleproxy/fleproxy/migrate"
	"github.com/fleproxy/fleproxy/policy"
)

func newMigrateCommand() *cobra.Command {
	var flags adminFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Encrypt or decrypt the existing rows of a protected column, online and resumably",
		Long: `Rewrite the stored values of one protected column in place, in batches of rows, each batch one
transaction, while the application keeps using the table:

  migrate encrypt   existing plaintext -> ciphertext, then add the column's CHECK constraint
  migrate decrypt   ciphertext -> plaintext, after dropping the CHECK constraint
  migrate status    the jobs recorded in the database and how far each got

(` + "`fleproxy keys reencrypt`" + ` moves values to the primary data key after a rotation.)

Progress is kept in table fleproxy.jobs, in the same transaction as each batch, so a job that is
killed, crashes or is stopped with Ctrl-C (which finishes the current batch) resumes where it
stopped when the same command runs again. A job also decides from each value whether anything is
left to do (encrypt skips ciphertext, decrypt skips plaintext), so running it twice is harmless.
A row the application changes while the job works on it is never overwritten. The table needs a
primary key (or a unique index over NOT NULL columns). Row triggers fire for every rewritten row.
Values are never printed: errors name rows by their primary key.

Connect with encryption.service directly to the database, not through the proxy.`,
		Args: cobra.NoArgs,
	}
	flags.register(cmd)
	cmd.AddCommand(
		newMigrateJobCommand(&flags, migrate.KindEncrypt),
		newMigrateJobCommand(&flags, migrate.KindDecrypt),
		newMigrateStatusCommand(&flags),
	)
	return cmd
}

// jobFlags are the flags of the commands that run jobs.
type jobFlags struct {
	column        string
	key           string
	batchSize     int
	rowsPerSecond float64
	dryRun        bool
	alterType     bool
}

func (j *jobFlags) register(cmd *cobra.Command, withKey bool) {
	f := cmd.Flags()
	f.StringVar(&j.column, "column", "", "the protected `COLUMN`, as schema.table.column (as in the policy)")
	if withKey {
		f.StringVar(&j.key, "key", "", "every protected column whose policy entry uses key `NAME`")
	}
	f.IntVar(&j.batchSize, "batch-size", migrate.DefaultBatchSize, "rows per transaction")
	f.Float64Var(&j.rowsPerSecond, "rows-per-second", 0, "read at most `R` rows per second (0: no limit)")
	f.BoolVar(&j.dryRun, "dry-run", false, "count what would change, write nothing")
}

func newMigrateJobCommand(flags *adminFlags, kind migrate.Kind) *cobra.Command {
	var jf jobFlags
	short, long := "", ""
	switch kind {
	case migrate.KindEncrypt:
		short = "Encrypt the existing plaintext values of a protected column"
		long = `Encrypt every plaintext value of COLUMN with its keyring's primary key, as the policy describes the
column (logical type, storage), then add the column's CHECK constraint (the one ` + "`fleproxy policy\nconstraints`" + ` prints) so that the database refuses plaintext from then on. Values that are already
ciphertext of the column, and NULLs, are left as they are.

Run it once the proxy serves with the column in its policy, so that new writes arrive encrypted.
Storage text keeps the column's type (text or varchar). For storage bytea the column must be bytea:
if it is not, the command prints the ALTER TABLE to run first, which keeps each value's text as
UTF-8 bytes. With --alter-type the command runs it itself, before the job, in one transaction
(waiting at most 10s for the table lock; the ALTER rewrites the table under an exclusive lock):
it drops the views that use the column (and the views over those), changes the column and
recreates the views with the same definitions, owners, options, comments and privileges. It
refuses, changing nothing, when anything else depends on the column (an index, a constraint, a
default, a rule, a trigger, a policy, a function body, a materialized view), and names it. Run
again after a success, it finds the column bytea and just runs (or resumes) the job. With
--dry-run it only checks that the change is possible.

Values that cannot be read as the logical type are listed by primary key and the constraint is
not added; fix them and run the command again.`
	case migrate.KindDecrypt:
		short = "Decrypt a protected column back to plaintext (roll back its protection)"
		long = `Drop the column's CHECK constraint, then decrypt every ciphertext value of COLUMN back to the
plaintext text of its logical type (for a bytea column, as UTF-8 bytes; the command prints the
ALTER TABLE that restores the logical type). Values that are not ciphertext are left as they are.

Take the column out of the policy (and reload the proxy) first, or the proxy keeps encrypting
new writes to it.`
	}
	cmd := &cobra.Command{
		Use:   string(kind) + " --column COLUMN",
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jf.column == "" {
				return errors.New("--column is required")
			}
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			return runJobs(cmd.Context(), e, kind, jf, cmd.OutOrStdout(), cmd.ErrOrStderr(), flags.json)
		},
	}
	jf.register(cmd, false)
	if kind == migrate.KindEncrypt {
		cmd.Flags().BoolVar(&jf.alterType, "alter-type", false,
			"for storage bytea, change a column that is not bytea to bytea first, recreating the views that use it")
	}
	return cmd
}

// newKeysReencryptCommand is `fleproxy keys reencrypt`, registered under `fleproxy keys`.
func newKeysReencryptCommand(flags *adminFlags) *cobra.Command {
	var jf jobFlags
	cmd := &cobra.Command{
		Use:   "reencrypt (--column COLUMN | --key NAME)",
		Short: "Re-encrypt values under older data keys with the keyring's primary key",
		Long: `Re-encrypt, online and in batches, every value of COLUMN (or of every column using key NAME) that
was encrypted with a data key other than its keyring's primary: after ` + "`fleproxy keys rotate`" + `, so
that the old key can be retired. Values keep their plaintext; values already under the primary key
and NULLs are left as they are.

Wait for encryption.refresh_interval after the rotation first, so that every proxy encrypts new
writes with the new key. Like ` + "`fleproxy migrate`" + `, the job is resumable (progress in table
fleproxy.jobs), never overwrites a concurrent write, and never prints a value.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (jf.column == "") == (jf.key == "") {
				return errors.New("give exactly one of --column and --key")
			}
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			return runJobs(cmd.Context(), e, migrate.KindReencrypt, jf, cmd.OutOrStdout(), cmd.ErrOrStderr(), flags.json)
		},
	}
	jf.register(cmd, true)
	return cmd
}

func newMigrateStatusCommand(flags *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List the jobs recorded in the database (table fleproxy.jobs) and how far each got",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			pool, _, err := openService(cmd.Context(), e)
			if err != nil {
				return err
			}
			defer pool.Close()
			jobs, err := migrate.List(cmd.Context(), pool)
			if err != nil {
				return err
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), jobs)
			}
			return printJobStatus(cmd.OutOrStdout(), jobs)
		},
	}
}

// jobColumns returns the policy columns the flags name.
func jobColumns(pol *policy.Policy, jf jobFlags) ([]*policy.Column, error) {
	if jf.key != "" {
		var cols []*policy.Column
		for _, c := range pol.Columns() {
			if c.Key == jf.key {
				cols = append(cols, c)
			}
		}
		if len(cols) == 0 {
			return nil, fmt.Errorf("policy %s: no protected column uses key %q", pol.Source(), jf.key)
		}
		return cols, nil
	}
	name, err := policy.ParseColumnName(jf.column)
	if err != nil {
		return nil, fmt.Errorf("--column %s: %w", jf.column, err)
	}
	col, ok := pol.Column(name.Schema, name.Table, name.Column)
	if !ok {
		return nil, fmt.Errorf("column %s is not protected by policy %s", name, pol.Source())
	}
	return []*policy.Column{col}, nil
}

// runJobs runs kind over the columns jf names, one after the other. Progress goes to progressOut,
// the reports to out. A column whose rows could not all be converted does not stop the others.
func runJobs(ctx context.Context, e config.Encryption, kind migrate.Kind, jf jobFlags, out, progressOut io.Writer, asJSON bool) error {
	enc, err := openEncryption(ctx, e, false)
	if err != nil {
		return err
	}
	defer enc.close()
	cols, err := jobColumns(enc.policy, jf)
	if err != nil {
		return err
	}
	if jf.batchSize < 1 || jf.rowsPerSecond < 0 {
		return fmt.Errorf("--batch-size must be at least 1 and --rows-per-second not negative (0: no limit)")
	}
	runner := migrate.NewRunner(enc.pool, enc.keys)
	reports := []*migrate.Report{}
	var errs []error
	for _, col := range cols {
		job := migrate.Job{Kind: kind, Column: col, Constraint: constraintName(col.Name.Table, col.Name.Column)}
		pp := newProgressPrinter(progressOut)
		rep, err := runner.Run(ctx, job, migrate.Options{
			BatchSize: jf.batchSize, RowsPerSecond: jf.rowsPerSecond, DryRun: jf.dryRun, AlterType: jf.alterType,
			Progress: pp.report,
		})
		pp.finish()
		if rep != nil {
			reports = append(reports, rep)
			if !asJSON {
				if perr := printJobReport(out, rep); perr != nil {
					return perr
				}
			}
		}
		var fe *migrate.FailedRowsError
		if err != nil {
			errs = append(errs, err)
			if !errors.As(err, &fe) {
				break
			}
		}
	}
	if asJSON {
		var v any = reports
		if jf.column != "" && len(reports) == 1 {
			v = reports[0]
		}
		if err := writeJSON(out, v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// progressPrinter shows a job's progress: one line rewritten in place on a terminal, otherwise a
// line every few seconds.
type progressPrinter struct {
	out      io.Writer
	tty      bool
	interval time.Duration
	last     time.Time
	pending  bool // a terminal line without its newline
}

func newProgressPrinter(out io.Writer) *progressPrinter {
	p := &progressPrinter{out: out, interval: 5 * time.Second}
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.interval = true, 200*time.Millisecond
		}
	}
	return p
}

func (p *progressPrinter) report(pr migrate.Progress) {
	now := time.Now()
	if !pr.Done && now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	line := formatProgress(pr)
	if !p.tty {
		fmt.Fprintln(p.out, line)
		return
	}
	fmt.Fprint(p.out, "\r\033[K"+line)
	p.pending = !pr.Done
	if pr.Done {
		fmt.Fprintln(p.out)
	}
}

// finish ends a terminal line left open by a run that stopped early.
func (p *progressPrinter) finish() {
	if p.pending {
		fmt.Fprintln(p.out)
		p.pending = false
	}
}

// formatProgress renders pr as one line.
func formatProgress(pr migrate.Progress) string {
	var b strings.Builder
	b.WriteString(pr.Job)
	if pr.DryRun {
		b.WriteString(" (dry run)")
	}
	if pr.Pass > 1 {
		fmt.Fprintf(&b, " pass %d", pr.Pass)
	}
	fmt.Fprintf(&b, ": %d/%d rows (%.0f%%), %d %s, %d current, %d NULL, %d failed",
		pr.Scanned, pr.Total, 100*pr.Fraction(), pr.Changed, changedWord(pr.Job, pr.DryRun), pr.Current, pr.Null, pr.Failed)
	if pr.Rate > 0 {
		fmt.Fprintf(&b, "; %.0f rows/s", pr.Rate)
	}
	if eta := pr.ETA.Round(time.Second); eta > 0 {
		fmt.Fprintf(&b, ", ETA %s", eta)
	}
	if pr.Done {
		b.WriteString("; done")
	}
	return b.String()
}

// changedWord says what happened to a changed row of the job with this ID.
func changedWord(job string, dryRun bool) string {
	kind, _, _ := strings.Cut(job, " ")
	word := map[string]string{"encrypt": "encrypted", "decrypt": "decrypted", "reencrypt": "re-encrypted"}[kind]
	if dryRun {
		return "to be " + word
	}
	return word
}

// printJobReport describes a finished (or stopped) run.
func printJobReport(out io.Writer, r *migrate.Report) error {
	what := r.State
	if r.DryRun {
		what = "dry run " + r.State + " (nothing written)"
	}
	fmt.Fprintf(out, "Job %s: %s after %s", r.Job, what, r.Elapsed.Round(time.Millisecond))
	if r.Resumed {
		fmt.Fprint(out, " (resumed an earlier run)")
	}
	if r.Pass > 1 {
		fmt.Fprintf(out, " (%d passes: plaintext was written behind the job, or the key rotated meanwhile)", r.Pass)
	}
	fmt.Fprintln(out)
	if tc := r.TypeChange; tc != nil {
		verb := "changed"
		if r.DryRun {
			verb = "would change"
		}
		fmt.Fprintf(out, "  %s the column from %s to bytea first: %s\n", verb, tc.From, tc.Statement)
		if len(tc.Views) > 0 {
			fmt.Fprintf(out, "  views dropped and recreated around it: %s\n", strings.Join(tc.Views, ", "))
		}
	}
	fmt.Fprintf(out, "  rows identified by %s\n", r.Key)
	current := map[migrate.Kind]string{
		migrate.KindEncrypt: "already ciphertext", migrate.KindDecrypt: "already plaintext", migrate.KindReencrypt: "already under the primary key",
	}[r.Kind]
	fmt.Fprintf(out, "  %d rows read: %d %s, %d %s, %d NULL, %d failed", r.Scanned, r.Changed, changedWord(r.Job, r.DryRun), r.Current, current, r.Null, r.Failed)
	if r.Deleted > 0 {
		fmt.Fprintf(out, ", %d deleted meanwhile", r.Deleted)
	}
	fmt.Fprintln(out)
	if r.Concurrent > 0 {
		fmt.Fprintf(out, "  %d rows changed by the application while the job ran: re-read, its writes kept\n", r.Concurrent)
	}
	if r.Kind == migrate.KindReencrypt {
		fmt.Fprintf(out, "  target: data key %s, the keyring's primary\n", keyID(r.PrimaryKeyID))
	}
	if r.ConstraintStatus != "" {
		desc := map[string]string{
			migrate.ConstraintAdded:     "added: the database now refuses plaintext in this column",
			migrate.ConstraintValidated: "validated",
			migrate.ConstraintPresent:   "already present",
			migrate.ConstraintDropped:   "dropped",
			migrate.ConstraintAbsent:    "not present",
			migrate.ConstraintSkipped:   "not added: some rows failed",
		}[r.ConstraintStatus]
		fmt.Fprintf(out, "  constraint %s: %s\n", r.Constraint, desc)
	}
	for _, f := range r.FailedRows {
		fmt.Fprintf(out, "  failed: %s: %s\n", f.Key, f.Reason)
	}
	if int64(len(r.FailedRows)) < r.Failed {
		fmt.Fprintf(out, "  … and %d more failed rows\n", r.Failed-int64(len(r.FailedRows)))
	}
	var err error
	if r.Hint != "" && r.State == migrate.StateDone && !r.DryRun {
		_, err = fmt.Fprintf(out, "  to give the column its logical type back, run:\n    %s\n", r.Hint)
	}
	return err
}

// printJobStatus lists the jobs of fleproxy.jobs.
func printJobStatus(out io.Writer, jobs []migrate.Status) error {
	if len(jobs) == 0 {
		_, err := fmt.Fprintln(out, "No jobs recorded.")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tPASS\tROWS\tCHANGED\tFAILED\tUPDATED")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d/%d\t%d\t%d\t%s\n", j.ID, j.State, j.Pass, j.Scanned, j.Total, j.Changed, j.Failed,
			j.UpdatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}
