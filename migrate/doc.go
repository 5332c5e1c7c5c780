// Package migrate rewrites the stored values of one protected column, online,
// table by table: [KindEncrypt] turns existing plaintext into ciphertext,
// [KindDecrypt] turns ciphertext back into plaintext (rolling a column out
// of the policy), and [KindReencrypt] re-encrypts values under older data
// keys with the keyring's primary key (after a rotation, before retiring the
// old key). DESIGN.md §2.6 ("Nothing lost") and §5 set the requirements.
//
// A [Runner] runs one [Job] (a kind and a column) at a time with [Options]
// (batch size, rate limit, dry run, a progress callback) and returns a
// [Report]. The package knows nothing of the command line; cmd/fleproxy
// wires it to `fleproxy migrate encrypt|decrypt` and `fleproxy keys
// reencrypt`.
//
// # How a job walks a table
//
// The table needs a primary key, or a unique index over NOT NULL columns
// without expressions or predicates, that does not include the protected
// column; without one a job refuses to start. Rows are read in batches in
// key order (keyset pagination: WHERE key > last ORDER BY key LIMIT n), so
// each batch costs the same wherever it is in the table and no cursor stays
// open between batches. Each batch is one transaction on one connection:
//
//  1. SELECT the next n keys and stored values after the last key done.
//  2. Compute each new value in memory (NULL stays NULL; a value already in
//     the target form is left alone, see below).
//  3. UPDATE … SET col = new WHERE key = k AND col = old, for all changed rows
//     in one statement. The comparison with the old value is a
//     compare-and-set: a row the application changed since step 1 is not
//     overwritten. Such rows are read again, this time FOR UPDATE, and
//     converted from their new value (or counted as already current, or as
//     deleted), so a concurrent write is never lost and never skipped.
//  4. UPDATE the job's row in fleproxy.jobs: the last key done and the
//     counters.
//  5. COMMIT.
//
// # Why a job is resumable and idempotent
//
// Progress lives in the database (table fleproxy.jobs, one row per job
// ID, "kind column"), written in the same transaction as the rows it
// describes. Whenever the process dies (SIGKILL, a crash, a lost
// connection), either the whole batch committed, values and last key
// together, or none of it did. A restart reads the last key from
// fleproxy.jobs and continues after it, so every row is visited (none
// skipped) and rows before the last key are not visited again in that pass.
//
// Bookkeeping is not the only guard: a job also decides from each value's
// content whether there is anything to do. Encrypt leaves alone values that
// are already ciphertext of the column (the envelope parses and decrypts
// with the column's cipher), decrypt leaves alone values that are not
// ciphertext, and re-encrypt leaves alone values whose envelope already
// names the keyring's primary key. So even if the job row were lost or
// reset, or two passes overlapped, no value is encrypted twice or decrypted
// into garbage: running a job any number of times gives the same content as
// running it once. This is also why a finished job can simply be run again
// (a new pass that rewrites only what is not yet in the target form).
//
// Only one process runs jobs on a column at a time: a job holds a
// session-level advisory lock on the column for its duration, which the
// server releases when the connection ends, however the process ended.
// Starting a job of another kind on the column supersedes an unfinished one
// (it will not resume; running it again starts a new pass).
//
// # Constraints
//
// Encrypt installs the column's CHECK constraint (package envelope) at the
// end, as NOT VALID and then VALIDATE CONSTRAINT, so that the long scan
// holds only a SHARE UPDATE EXCLUSIVE lock. If validation finds values that
// are not ciphertext (written around the proxy after the pass went by), the
// job runs another pass, which the constraint now makes the last one.
// Decrypt drops the constraint before it writes any plaintext.
//
// The UPDATE fires the table's row triggers for every rewritten row (a
// trigger that stamps a last-modified column stamps it); a job changes
// nothing else.
//
// # Changing a column to bytea
//
// Encrypting for storage bytea needs a bytea column. A column of another
// type (text, varchar, …) is refused with *NeedsAlterError, whose statement
// changes it keeping each value's text as UTF-8 bytes (ALTER TABLE … TYPE
// bytea USING convert_to(col::text, 'UTF8'); NULL stays NULL), which is how
// a job then reads the values: as the text of the logical value. With
// [Options.AlterType] the job runs that statement itself, under its
// advisory lock and before the job starts, in one transaction that waits at
// most 10s for the table lock (and otherwise fails, changing nothing):
//
//  1. find the views that use the column, and recursively the views over
//     those (pg_depend, pg_rewrite), saving each one's definition
//     (pg_get_viewdef), owner, options (security_barrier, check_option, …),
//     comments, column comments and privileges, table and column;
//  2. drop them, last dependent first (never CASCADE);
//  3. ALTER TABLE … ALTER COLUMN … TYPE bytea;
//  4. recreate them in dependency order, as they were.
//
// If anything else depends on the column or on those views (an index, a
// constraint, a default, a rule, a trigger, a policy, a function with an SQL
// body, a materialized view, whose data recreating would lose), or a view
// cannot be recreated over the bytea column, the job returns
// *DependentsError (or the error of the failing statement) naming it, and
// the transaction changes nothing. Run again after a success, the job finds
// the column bytea and simply runs or resumes. A dry run only checks that
// the change is possible and reports it ([Report.TypeChange]).
//
// # Secrets
//
// Values are never logged, printed or put in errors. Errors and reports
// name the table, the column and primary keys only.
package migrate
