package migrate

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleproxy/fleproxy/policy"
)

// TestEncryptDecryptRoundTrip encrypts every kind of column of a few thousand rows, checks the
// ciphertext and the constraint, runs the job again (nothing to do), then decrypts back to the
// exact original bytes.
func TestEncryptDecryptRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "roundtrip", 2000)
	before := f.snapshot("public.people", append([]string{"name"}, peopleColumns...)...)

	// A dry run counts and writes nothing, not even the jobs table.
	for _, c := range peopleColumns {
		rep := f.run(KindEncrypt, "public.people."+c, Options{DryRun: true, BatchSize: 700})
		nonNull := 0
		for _, r := range before {
			if r[c] != nil {
				nonNull++
			}
		}
		if rep.Changed != int64(nonNull) || rep.Scanned != 2000 || rep.Null != int64(2000-nonNull) || rep.Failed != 0 {
			t.Errorf("dry run of %s: %+v, want %d to change", c, rep.Counts, nonNull)
		}
	}
	f.checkPlainAll(before)
	var jobsTable *string
	if err := f.pool.QueryRow(f.ctx, "SELECT to_regclass('fleproxy.jobs')::text").Scan(&jobsTable); err != nil || jobsTable != nil {
		t.Fatalf("a dry run created fleproxy.jobs (%v)", err)
	}

	var progress []Progress
	for _, c := range peopleColumns {
		name := "public.people." + c
		progress = progress[:0]
		rep := f.run(KindEncrypt, name, Options{BatchSize: 256, Progress: func(p Progress) { progress = append(progress, p) }})
		if rep.State != StateDone || rep.Scanned != 2000 || rep.Failed != 0 || rep.Concurrent != 0 || rep.Pass != 1 {
			t.Errorf("encrypt %s: %+v", c, rep)
		}
		if rep.ConstraintStatus != ConstraintAdded {
			t.Errorf("encrypt %s: constraint %q", c, rep.ConstraintStatus)
		}
		if exists, valid := f.constraint("public.people", rep.Constraint); !exists || !valid {
			t.Errorf("encrypt %s: constraint %s exists %v, valid %v", c, rep.Constraint, exists, valid)
		}
		if n := len(progress); n != 9 || !progress[n-1].Done || progress[n-2].Scanned != 2000 || progress[0].Scanned != 256 {
			t.Errorf("encrypt %s: %d progress reports, last %+v", c, n, progress[n-1])
		}
		f.checkEncrypted("public.people", f.column(name), before)
	}
	// The constraints refuse plaintext from a direct connection.
	if _, err := f.pool.Exec(f.ctx, "UPDATE public.people SET note = 'plain' WHERE id = 3"); !isCode(err, "23514") {
		t.Errorf("plaintext write after encrypt: %v, want check_violation", err)
	}
	afterEncrypt := f.snapshot("public.people", peopleColumns...)

	// Again: every value is current, nothing is written.
	rep := f.run(KindEncrypt, "public.people.note", Options{})
	if rep.Changed != 0 || rep.Current+rep.Null != 2000 || rep.Resumed || rep.ConstraintStatus != ConstraintPresent {
		t.Errorf("second encrypt: %+v", rep)
	}
	if got := f.snapshot("public.people", peopleColumns...); !sameSnapshot(got, afterEncrypt) {
		t.Error("a second encrypt changed values")
	}

	for _, c := range peopleColumns {
		rep := f.run(KindDecrypt, "public.people."+c, Options{BatchSize: 1000})
		if rep.State != StateDone || rep.Failed != 0 || rep.ConstraintStatus != ConstraintDropped {
			t.Errorf("decrypt %s: %+v", c, rep)
		}
		if exists, _ := f.constraint("public.people", rep.Constraint); exists {
			t.Errorf("decrypt %s left the constraint", c)
		}
		switch c {
		case "email":
			if !strings.Contains(rep.Hint, `TYPE text USING convert_from("email", 'UTF8')::text`) {
				t.Errorf("decrypt email: hint %q", rep.Hint)
			}
		case "photo", "note":
			if rep.Hint != "" {
				t.Errorf("decrypt %s: hint %q", c, rep.Hint)
			}
		}
	}
	f.checkPlainAll(before)

	// Decrypting plaintext changes nothing.
	rep = f.run(KindDecrypt, "public.people.note", Options{})
	if rep.Changed != 0 || rep.ConstraintStatus != ConstraintAbsent {
		t.Errorf("second decrypt: %+v", rep)
	}
	f.checkPlainAll(before)
}

func (f *fixture) checkPlainAll(want snapshot) {
	f.t.Helper()
	for _, c := range append([]string{"name"}, peopleColumns...) {
		f.checkPlain("public.people", c, want)
	}
}

func sameSnapshot(a, b snapshot) bool {
	if len(a) != len(b) {
		return false
	}
	for id, ra := range a {
		rb, ok := b[id]
		if !ok || len(ra) != len(rb) {
			return false
		}
		for c, v := range ra {
			if (v == nil) != (rb[c] == nil) || !bytes.Equal(v, rb[c]) {
				return false
			}
		}
	}
	return true
}

// TestReencryptAfterRotation moves every value to the new primary key without changing it.
func TestReencryptAfterRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "reencrypt", 1500)
	before := f.snapshot("public.people", peopleColumns...)
	note, email := f.column("public.people.note"), f.column("public.people.email")
	f.run(KindEncrypt, "public.people.note", Options{})
	f.run(KindEncrypt, "public.people.email", Options{})
	old := f.checkEncrypted("public.people", note, before)

	// Nothing to do before a rotation.
	rep := f.run(KindReencrypt, "public.people.note", Options{})
	if rep.Changed != 0 || rep.Failed != 0 {
		t.Errorf("reencrypt without rotation: %+v", rep)
	}

	kr, err := f.km.Rotate(f.ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	primary := kr.PrimaryKeyID()
	if _, ok := old[primary]; ok || len(old) != 1 {
		t.Fatalf("key IDs before rotation: %v, new primary %08x", old, primary)
	}
	// A runner whose manager has not seen the rotation picks it up.
	stale := NewRunner(f.pool, f.km)
	dry, err := stale.Run(f.ctx, f.job(KindReencrypt, "public.people.note"), Options{DryRun: true})
	if err != nil || dry.Changed == 0 || dry.PrimaryKeyID != primary {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	for _, col := range []string{"public.people.note", "public.people.email"} {
		rep := f.run(KindReencrypt, col, Options{BatchSize: 100, RowsPerSecond: 20000})
		if rep.Changed == 0 || rep.Failed != 0 || rep.PrimaryKeyID != primary || rep.State != StateDone {
			t.Errorf("reencrypt %s: %+v", col, rep)
		}
	}
	for _, col := range []*policy.Column{note, email} {
		ids := f.checkEncrypted("public.people", col, before)
		if len(ids) != 1 || ids[primary] == 0 {
			t.Errorf("%s: key IDs after reencrypt: %v, want only %08x", col.Name, ids, primary)
		}
	}
	// Again: nothing left under an old key.
	if rep := f.run(KindReencrypt, "public.people.note", Options{}); rep.Changed != 0 {
		t.Errorf("second reencrypt: %+v", rep)
	}
	// Re-encrypting plaintext is an error per row, named by key only.
	_, err = f.runner.Run(f.ctx, f.job(KindReencrypt, "public.people.born"), Options{})
	var fe *FailedRowsError
	if !errors.As(err, &fe) || fe.Failed == 0 || !strings.Contains(fe.Rows[0].Key, "id=") {
		t.Errorf("reencrypt of plaintext: %v", err)
	}
}

// TestConcurrentWritesNeverOverwritten writes to rows while jobs run over them: both at the
// worst moment (between a batch's read and its write, through a hook) and at random from
// another goroutine. Every write of the application survives.
func TestConcurrentWritesNeverOverwritten(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "concurrent", 2000)
	col := f.column("public.people.note")
	want := f.snapshot("public.people", "note")
	var mu sync.Mutex // guards want while the writer runs

	// value makes what the application writes from a fresh plaintext: the stored value, and
	// the plaintext it stands for.
	type value func(fresh []byte) (stored, plain []byte)
	write := func(id int64, v value, fresh []byte) {
		stored, plain := v(fresh)
		if _, err := f.pool.Exec(f.ctx, "UPDATE public.people SET note = $1 WHERE id = $2", storedArg(col, stored), id); err != nil {
			t.Errorf("application write: %v", err)
			return
		}
		mu.Lock()
		want[id]["note"] = plain
		mu.Unlock()
	}
	encrypted := func(p []byte) ([]byte, []byte) { return f.ciphertext(col, p), p }
	plaintext := func(p []byte) ([]byte, []byte) { return p, p }

	// run runs a job while the application writes: values already in the job's target form
	// (current) at random, and at the third batch, between its read and its write, one current
	// value and one the job must convert.
	run := func(kind Kind, current, convert value) {
		t.Helper()
		r := NewRunner(f.pool, f.km)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		batch := 0
		r.hooks.afterSelect = func(keys [][]string) {
			switch batch++; batch {
			case 1: // the job has set up (decrypt has dropped the constraint): start writing
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
					for {
						select {
						case <-stop:
							return
						case <-time.After(time.Millisecond):
						}
						write(f.ids[rng.IntN(len(f.ids))], current, []byte("written by the application "+time.Now().String()))
					}
				}()
			case 3:
				// Two rows the job is about to write (a NULL it would leave alone).
				var ids []int64
				for _, k := range keys {
					id := parseID(t, k[0])
					mu.Lock()
					null := want[id]["note"] == nil
					mu.Unlock()
					if !null {
						ids = append(ids, id)
					}
				}
				write(ids[0], current, []byte("hook write current"))
				write(ids[1], convert, []byte("hook write convert"))
			}
		}
		rep, err := r.Run(f.ctx, f.job(kind, "public.people.note"), Options{BatchSize: 50, RowsPerSecond: 8000})
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if rep.Concurrent < 2 || rep.Scanned != 2000 || rep.Failed != 0 {
			t.Errorf("%s: %+v, want at least 2 concurrent", kind, rep.Counts)
		}
		t.Logf("%s: %+v", kind, rep.Counts)
	}

	run(KindEncrypt, encrypted, plaintext)
	f.checkEncrypted("public.people", col, want)

	// Rotate, keeping a value under the old key for the write the job must convert.
	kr, err := f.km.Keyring(f.ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	oldKey := kr.PrimaryKeyID()
	underOld := f.ciphertext(col, []byte("old key value"))
	if _, err := f.km.Rotate(f.ctx, "pii"); err != nil {
		t.Fatal(err)
	}
	run(KindReencrypt, encrypted, func([]byte) ([]byte, []byte) { return underOld, []byte("old key value") })
	if ids := f.checkEncrypted("public.people", col, want); ids[oldKey] != 0 {
		t.Errorf("reencrypt left %d values under the old key", ids[oldKey])
	}

	run(KindDecrypt, plaintext, encrypted)
	f.checkPlain("public.people", "note", want)
}

func parseID(t *testing.T, s string) int64 {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestInterruptAndResume cancels a job between batches, resumes it, and then, with the job's
// bookkeeping lost, runs it from scratch: content idempotence alone prevents double encryption.
func TestInterruptAndResume(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "resume", 1200)
	before := f.snapshot("public.people", "note")
	col := f.column("public.people.note")

	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	r := NewRunner(f.pool, f.km)
	batches := 0
	// Cancel while the fourth batch is still to commit: it finishes, the fifth never starts.
	r.hooks.beforeCommit = func() {
		if batches++; batches == 4 {
			cancel()
		}
	}
	rep, err := r.Run(ctx, f.job(KindEncrypt, "public.people.note"), Options{BatchSize: 100})
	if !errors.Is(err, context.Canceled) || rep == nil || rep.State != StateInterrupted || rep.Scanned != 400 {
		t.Fatalf("interrupted run: %+v, %v", rep, err)
	}
	var state string
	var last []string
	if err := f.pool.QueryRow(f.ctx, "SELECT state, last_key FROM fleproxy.jobs WHERE id = $1", rep.Job).Scan(&state, &last); err != nil {
		t.Fatal(err)
	}
	if state != StateInterrupted || len(last) != 1 || last[0] != "1200" {
		t.Errorf("job row after interruption: %s %v", state, last)
	}

	rep = f.run(KindEncrypt, "public.people.note", Options{BatchSize: 100})
	if !rep.Resumed || rep.Scanned != 1200 || rep.Changed+rep.Null != 1200 {
		t.Errorf("resumed run: %+v", rep)
	}
	f.checkEncrypted("public.people", col, before)

	// Lose the bookkeeping of a half-done decryption, then run it and encrypt again from scratch.
	ctx, cancel = context.WithCancel(f.ctx)
	defer cancel()
	batches = 0
	if _, err := r.Run(ctx, f.job(KindDecrypt, "public.people.note"), Options{BatchSize: 100}); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted decrypt: %v", err)
	}
	f.exec("DELETE FROM fleproxy.jobs")
	rep = f.run(KindEncrypt, "public.people.note", Options{BatchSize: 100})
	if rep.Resumed || rep.Changed == 0 || rep.Current == 0 {
		t.Errorf("encrypt after lost bookkeeping: %+v", rep.Counts)
	}
	f.checkEncrypted("public.people", col, before)
	// And a whole new pass over an encrypted column changes nothing.
	f.exec("UPDATE fleproxy.jobs SET last_key = NULL, state = 'running'")
	encrypted := f.snapshot("public.people", "note")
	if rep := f.run(KindEncrypt, "public.people.note", Options{}); !rep.Resumed || rep.Scanned != 2400 {
		t.Errorf("pass over encrypted rows: %+v", rep.Counts)
	}
	if !sameSnapshot(encrypted, f.snapshot("public.people", "note")) {
		t.Error("a pass over encrypted rows changed them")
	}
}

// TestPlaintextBehindTheJob: plaintext written around the proxy into rows the job has passed is
// found when the constraint is validated, and converted by a second pass.
func TestPlaintextBehindTheJob(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "behind", 600)
	before := f.snapshot("public.people", "email")
	col := f.column("public.people.email")
	r := NewRunner(f.pool, f.km)
	batches := 0
	r.hooks.afterCommit = func() {
		if batches++; batches == 2 {
			if _, err := f.pool.Exec(f.ctx, "UPDATE public.people SET email = 'behind'::bytea WHERE id = 3"); err != nil {
				t.Error(err)
			}
			before[3]["email"] = []byte("behind")
		}
	}
	rep, err := r.Run(f.ctx, f.job(KindEncrypt, "public.people.email"), Options{BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass != 2 || rep.ConstraintStatus != ConstraintAdded || rep.Scanned != 1200 {
		t.Errorf("report: %+v", rep)
	}
	f.checkEncrypted("public.people", col, before)
}

// TestFailedRows: values that cannot be converted are listed by key, without their values, the
// other rows are converted, and no constraint is added.
func TestFailedRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "failed", 300)
	f.exec("UPDATE public.people SET born = 'secret-not-a-date' WHERE id IN (30, 60)")
	f.exec("UPDATE public.people SET amount = repeat('9', 100) WHERE id = 90")
	rep, err := f.runner.Run(f.ctx, f.job(KindEncrypt, "public.people.born"), Options{BatchSize: 64})
	var fe *FailedRowsError
	if !errors.As(err, &fe) || fe.Failed != 2 || rep.Failed != 2 || rep.ConstraintStatus != ConstraintSkipped {
		t.Fatalf("encrypt born: %+v, %v", rep, err)
	}
	if strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "id=30") || !strings.Contains(err.Error(), "id=60") {
		t.Errorf("error: %v", err)
	}
	if rep.FailedRows[0].Key != "id=30" || !strings.Contains(rep.FailedRows[0].Reason, "not a valid date") {
		t.Errorf("failed rows: %+v", rep.FailedRows)
	}
	if exists, _ := f.constraint("public.people", rep.Constraint); exists {
		t.Error("constraint added despite failed rows")
	}
	// The numeric's ciphertext does not fit varchar(120): reported, not a failed batch.
	rep, err = f.runner.Run(f.ctx, f.job(KindEncrypt, "public.people.amount"), Options{})
	if !errors.As(err, &fe) || fe.Failed != 1 || !strings.Contains(fe.Rows[0].Reason, "limit of 120") {
		t.Fatalf("encrypt amount: %+v, %v", rep, err)
	}
	// Fixed, the job runs again and finishes.
	f.exec("UPDATE public.people SET born = '2001-02-03' WHERE id IN (30, 60)")
	if rep := f.run(KindEncrypt, "public.people.born", Options{}); rep.Changed != 2 || rep.ConstraintStatus != ConstraintAdded {
		t.Errorf("after the fix: %+v", rep)
	}
}

// TestKeysAndRefusals covers the keys a job accepts and the tables it refuses.
func TestKeysAndRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "refusals", 10)
	f.exec(`CREATE TABLE public.pairs (a int NOT NULL, b text NOT NULL, secret text, UNIQUE (a, b))`)
	f.exec(`INSERT INTO public.pairs SELECT i % 7, 'k' || (i / 7) || E' \'"\\', CASE WHEN i % 5 = 0 THEN NULL ELSE 's' || i END FROM generate_series(1, 500) i`)
	f.exec(`CREATE TABLE public.nokey (id int UNIQUE, secret text)`)
	f.exec(`CREATE TABLE public.plain (id int PRIMARY KEY, secret text)`)

	// A composite unique index over NOT NULL columns, with awkward text keys.
	pairs := f.column("public.pairs.secret")
	read := func() map[string][]byte {
		rows, _ := f.pool.Query(f.ctx, "SELECT a::text || '/' || b, secret FROM public.pairs")
		out := map[string][]byte{}
		for rows.Next() {
			var k string
			var v []byte
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			out[k] = v
		}
		return out
	}
	want := read()
	rep := f.run(KindEncrypt, "public.pairs.secret", Options{BatchSize: 33})
	if !strings.HasPrefix(rep.Key, `unique index "pairs_a_b_key" ("a", "b")`) || rep.Scanned != 500 || rep.Changed != 400 {
		t.Errorf("pairs: %+v", rep)
	}
	for k, v := range read() {
		if want[k] == nil {
			if v != nil {
				t.Fatalf("row %q: NULL became a value", k)
			}
			continue
		}
		pt, _, err := f.plainOf(pairs, v)
		if err != nil || !bytes.Equal(pt, want[k]) {
			t.Fatalf("row %q: %v", k, err)
		}
	}
	rep = f.run(KindDecrypt, "public.pairs.secret", Options{BatchSize: 33})
	if got := read(); len(got) != len(want) || rep.Changed != 400 {
		t.Fatalf("pairs decrypt: %+v", rep)
	} else {
		for k, v := range got {
			if !bytes.Equal(v, want[k]) {
				t.Fatalf("row %q differs after decrypt", k)
			}
		}
	}

	// A partitioned table, keyed by the partition key and an id.
	f.exec(`CREATE TABLE public.parts (region text, id int, secret text, PRIMARY KEY (region, id)) PARTITION BY LIST (region)`)
	f.exec(`CREATE TABLE public.parts_eu PARTITION OF public.parts FOR VALUES IN ('eu')`)
	f.exec(`CREATE TABLE public.parts_us PARTITION OF public.parts FOR VALUES IN ('us')`)
	f.exec(`INSERT INTO public.parts SELECT CASE WHEN i % 3 = 0 THEN 'eu' ELSE 'us' END, i, (i * 1000003)::text FROM generate_series(1, 400) i`)
	rep = f.run(KindEncrypt, "public.parts.secret", Options{BatchSize: 45})
	if rep.Changed != 400 || rep.Total != 400 || rep.Key != `primary key ("region", "id")` {
		t.Errorf("parts: %+v", rep)
	}
	var partsPlain int
	if err := f.pool.QueryRow(f.ctx, `SELECT count(*) FROM public.parts WHERE secret NOT LIKE 'fle1:%'`).Scan(&partsPlain); err != nil || partsPlain != 0 {
		t.Errorf("parts: %d plaintext values left (%v)", partsPlain, err)
	}
	rep = f.run(KindDecrypt, "public.parts.secret", Options{BatchSize: 45})
	if err := f.pool.QueryRow(f.ctx, `SELECT count(*) FROM public.parts WHERE secret = (id * 1000003)::text`).Scan(&partsPlain); err != nil || partsPlain != 400 || rep.Changed != 400 {
		t.Errorf("parts after decrypt: %d rows back, %+v (%v)", partsPlain, rep, err)
	}

	// A nullable unique column is no key.
	_, err := f.runner.Run(f.ctx, f.job(KindEncrypt, "public.nokey.secret"), Options{})
	var nk *NoKeyError
	if !errors.As(err, &nk) || !strings.Contains(err.Error(), "no primary key") {
		t.Errorf("nokey: %v", err)
	}
	// Storage bytea on a text column: the ALTER to run first.
	_, err = f.runner.Run(f.ctx, f.job(KindEncrypt, "public.plain.secret"), Options{})
	var na *NeedsAlterError
	if !errors.As(err, &na) || na.Statement != `ALTER TABLE "public"."plain" ALTER COLUMN "secret" TYPE bytea USING convert_to("secret"::text, 'UTF8');` {
		t.Errorf("plain: %v", err)
	}
	f.exec(`INSERT INTO public.plain VALUES (1, 'x'), (2, NULL), (3, '')`)
	f.exec(na.Statement)
	if rep := f.run(KindEncrypt, "public.plain.secret", Options{}); rep.Changed != 2 {
		t.Errorf("plain after ALTER: %+v", rep)
	}

	// One job per column at a time.
	conn, err := f.pool.Acquire(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(f.ctx, "SELECT pg_advisory_lock(hashtextextended('fleproxy migrate public.people.note', 0))"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.runner.Run(f.ctx, f.job(KindEncrypt, "public.people.note"), Options{}); !errors.Is(err, ErrJobRunning) {
		t.Errorf("concurrent job: %v", err)
	}
	if _, err := conn.Exec(f.ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
		t.Fatal(err)
	}

	// Starting decrypt supersedes an unfinished encrypt of the column.
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	r := NewRunner(f.pool, f.km)
	r.hooks.afterCommit = cancel
	if _, err := r.Run(ctx, f.job(KindEncrypt, "public.people.note"), Options{BatchSize: 3}); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted encrypt: %v", err)
	}
	f.run(KindDecrypt, "public.people.note", Options{})
	states := map[string]string{}
	all, err := List(f.ctx, f.pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		states[s.ID] = s.State
	}
	if states["encrypt public.people.note"] != StateSuperseded || states["decrypt public.people.note"] != StateDone {
		t.Errorf("job states: %v", states)
	}
	if rep := f.run(KindEncrypt, "public.people.note", Options{}); rep.Resumed || rep.Scanned != 10 {
		t.Errorf("encrypt after supersede: %+v", rep)
	}
}

// TestRateLimit: the rate limit spaces batches.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "rate", 300)
	start := time.Now()
	var reports atomic.Int32
	rep := f.run(KindEncrypt, "public.people.note", Options{BatchSize: 1000, RowsPerSecond: 250, Progress: func(Progress) { reports.Add(1) }})
	if el := time.Since(start); el < time.Second {
		t.Errorf("300 rows at 250 rows/s took %v", el)
	}
	// Batches are no larger than a second's worth of rows: 250 and 50, and the final report.
	if n := reports.Load(); n != 3 || rep.Scanned != 300 {
		t.Errorf("%d progress reports, %+v", n, rep.Counts)
	}
}
