package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
)

// The kill test re-executes this test binary as a helper process that runs one job (TestMain
// dispatches on helperEnv) and SIGKILLs it at random moments. The helper writes one byte to
// stdout at the points that matter: markUpdated once a batch's rows and job row are written but
// not committed, markCommitted after the commit. The last byte before a kill says where it landed.
const (
	helperEnv     = "FLEPROXY_MIGRATE_HELPER"
	markUpdated   = 'U'
	markCommitted = 'C'
)

// helperConfig is what the helper process needs, passed as JSON-free environment variables.
type helperConfig struct {
	conn, kekFile, storeDir, policyFile, column string
	kind                                        Kind
	batch                                       int
	rate                                        float64
}

func (c helperConfig) env() []string {
	return append(os.Environ(),
		helperEnv+"=1",
		"MIGRATE_HELPER_CONN="+c.conn,
		"MIGRATE_HELPER_KEK="+c.kekFile,
		"MIGRATE_HELPER_STORE="+c.storeDir,
		"MIGRATE_HELPER_POLICY="+c.policyFile,
		"MIGRATE_HELPER_COLUMN="+c.column,
		"MIGRATE_HELPER_KIND="+string(c.kind),
		"MIGRATE_HELPER_BATCH="+strconv.Itoa(c.batch),
		"MIGRATE_HELPER_RATE="+strconv.FormatFloat(c.rate, 'f', -1, 64),
	)
}

// runHelper is the helper process: it runs the job to the end (exit 0) unless killed.
func runHelper() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	// As cmd/fleproxy does: SIGINT stops the job after the current batch.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	pol, err := policy.Load(os.Getenv("MIGRATE_HELPER_POLICY"))
	if err != nil {
		return fail(err)
	}
	name, err := policy.ParseColumnName(os.Getenv("MIGRATE_HELPER_COLUMN"))
	if err != nil {
		return fail(err)
	}
	col, ok := pol.Column(name.Schema, name.Table, name.Column)
	if !ok {
		return fail(errors.New("column not in the policy"))
	}
	kek, err := keys.OpenLocalKEK(os.Getenv("MIGRATE_HELPER_KEK"))
	if err != nil {
		return fail(err)
	}
	store, err := keys.NewFileStore(os.Getenv("MIGRATE_HELPER_STORE"))
	if err != nil {
		return fail(err)
	}
	pool, err := pgxpool.New(ctx, os.Getenv("MIGRATE_HELPER_CONN"))
	if err != nil {
		return fail(err)
	}
	defer pool.Close()
	batch, _ := strconv.Atoi(os.Getenv("MIGRATE_HELPER_BATCH"))
	rate, _ := strconv.ParseFloat(os.Getenv("MIGRATE_HELPER_RATE"), 64)

	r := NewRunner(pool, keys.NewManager(kek, store))
	// A short pause with the transaction open makes kills land inside batches as often as
	// between them.
	r.hooks.beforeCommit = func() {
		os.Stdout.Write([]byte{markUpdated})
		time.Sleep(time.Duration(rand.IntN(8)) * time.Millisecond)
	}
	r.hooks.afterCommit = func() { os.Stdout.Write([]byte{markCommitted}) }
	job := Job{Kind: Kind(os.Getenv("MIGRATE_HELPER_KIND")), Column: col, Constraint: "fleproxy_" + col.Name.Table + "_" + col.Name.Column + "_ciphertext"}
	// The backend of a killed predecessor may take a moment to notice and release its lock.
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err = r.Run(ctx, job, Options{BatchSize: batch, RowsPerSecond: rate})
		if !errors.Is(err, ErrJobRunning) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return helperInterrupted
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// helperInterrupted is the helper's exit code after a clean stop on SIGINT.
const helperInterrupted = 3

// interruptHelper starts cfg's job in a helper process, sends it SIGINT once it has committed a
// batch, and checks that it stops cleanly: after finishing a batch, with the job recorded as
// interrupted.
func interruptHelper(t *testing.T, f *fixture, cfg helperConfig) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = cfg.env()
	var out, errOut lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); len(out.Bytes()) == 0 && time.Now().Before(deadline); {
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != helperInterrupted {
		t.Fatalf("after SIGINT: %v, want exit code %d\n%s", err, helperInterrupted, errOut.Bytes())
	}
	marks := out.Bytes()
	if marks[len(marks)-1] != markCommitted {
		t.Errorf("after SIGINT the last batch did not commit: marks %q", marks)
	}
	var state string
	var last []string
	if err := f.pool.QueryRow(f.ctx, "SELECT state, last_key FROM fleproxy.jobs WHERE id = $1", string(cfg.kind)+" "+cfg.column).Scan(&state, &last); err != nil {
		t.Fatal(err)
	}
	if state != StateInterrupted || last == nil {
		t.Errorf("after SIGINT: job state %s, last key %v", state, last)
	}
}

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// killStats counts where kills landed.
type killStats struct {
	kills      int // processes killed
	inBatch    int // ... with a batch written but not committed
	betweenOps int // ... after a commit, before the next batch was written
	beforeWork int // ... before their first batch
	restarts   int // processes started in all
}

// runKilled runs cfg's job in helper processes, killing each at a random moment after it has
// started working, kills times, then lets one run to the end.
func runKilled(t *testing.T, cfg helperConfig, kills int, rng *rand.Rand) killStats {
	t.Helper()
	var st killStats
	for attempt := 0; ; attempt++ {
		if attempt > kills+5 {
			t.Fatalf("the job did not finish after %d runs", attempt)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = cfg.env()
		var out, errOut lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		st.restarts++
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		if st.kills >= kills {
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("final run: %v\n%s", err, errOut.Bytes())
				}
				return st
			case <-time.After(40 * time.Second):
				cmd.Process.Kill()
				t.Fatal("final run did not finish")
			}
		}
		// Wait until the child has committed a first batch (or has finished), then let it
		// work a random while and kill it.
		started := time.Now()
		for len(out.Bytes()) == 0 && time.Since(started) < 20*time.Second {
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("run %d: %v\n%s", attempt, err, errOut.Bytes())
				}
				t.Logf("run %d finished on its own", attempt)
				return st
			case <-time.After(2 * time.Millisecond):
			}
		}
		delay := time.Duration(rng.IntN(100)) * time.Millisecond
		if rng.IntN(5) == 0 {
			delay = 0 // right at the first batch
		}
		time.Sleep(delay)
		marks := out.Bytes()
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err := <-exited
		var ee *exec.ExitError
		if err == nil {
			t.Logf("run %d finished before the kill", attempt)
			return st
		}
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: %v\n%s", attempt, err, errOut.Bytes())
		}
		st.kills++
		// Classify by the marks the child had written when the signal went out.
		switch {
		case len(marks) == 0:
			st.beforeWork++
		case marks[len(marks)-1] == markUpdated:
			st.inBatch++
		default:
			st.betweenOps++
		}
	}
}

// TestKilledJobsLoseNothing SIGKILLs encrypt, reencrypt and decrypt jobs at random points and
// restarts them until they finish; then every row holds exactly its original value, in the
// target form: none lost, none skipped, none encrypted twice. The decrypt job is also stopped
// once with SIGINT, which lets the batch in progress commit.
func TestKilledJobsLoseNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "killed", 1500)
	before := f.snapshot("public.people", "note", "email")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 99))
	cfg := func(kind Kind, column string) helperConfig {
		return helperConfig{conn: f.conn, kekFile: f.kekFile, storeDir: f.storeDir, policyFile: f.polFile,
			column: column, kind: kind, batch: 20, rate: 1000}
	}
	var total killStats
	add := func(s killStats) {
		total.kills += s.kills
		total.inBatch += s.inBatch
		total.betweenOps += s.betweenOps
		total.beforeWork += s.beforeWork
		total.restarts += s.restarts
	}
	jobDone := func(id string) {
		t.Helper()
		var state string
		var done, changed int64
		if err := f.pool.QueryRow(f.ctx, "SELECT state, rows_done, rows_changed FROM fleproxy.jobs WHERE id = $1", id).Scan(&state, &done, &changed); err != nil {
			t.Fatal(err)
		}
		if state != StateDone || done < 1500 {
			t.Errorf("job %s: state %s, %d rows done, %d changed", id, state, done, changed)
		}
	}

	note, email := f.column("public.people.note"), f.column("public.people.email")
	s := runKilled(t, cfg(KindEncrypt, "public.people.note"), 10, rng)
	add(s)
	t.Logf("encrypt note: %+v", s)
	f.checkEncrypted("public.people", note, before)
	jobDone("encrypt public.people.note")
	if exists, valid := f.constraint("public.people", "fleproxy_people_note_ciphertext"); !exists || !valid {
		t.Errorf("constraint after killed encrypt: exists %v, valid %v", exists, valid)
	}

	s = runKilled(t, cfg(KindEncrypt, "public.people.email"), 6, rng)
	add(s)
	t.Logf("encrypt email: %+v", s)
	f.checkEncrypted("public.people", email, before)

	kr, err := f.km.Rotate(f.ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	s = runKilled(t, cfg(KindReencrypt, "public.people.note"), 7, rng)
	add(s)
	t.Logf("reencrypt note: %+v", s)
	ids := f.checkEncrypted("public.people", note, before)
	if len(ids) != 1 || ids[kr.PrimaryKeyID()] == 0 {
		t.Errorf("key IDs after killed reencrypt: %v, want only %08x", ids, kr.PrimaryKeyID())
	}
	jobDone("reencrypt public.people.note")

	interruptHelper(t, f, cfg(KindDecrypt, "public.people.note"))
	s = runKilled(t, cfg(KindDecrypt, "public.people.note"), 7, rng)
	add(s)
	t.Logf("decrypt note: %+v", s)
	f.checkPlain("public.people", "note", before)
	jobDone("decrypt public.people.note")

	t.Logf("in all: %d kills (%d inside a batch transaction, %d between batches, %d before the first commit) over %d processes",
		total.kills, total.inBatch, total.betweenOps, total.beforeWork, total.restarts)
	if total.kills < 25 || total.inBatch == 0 {
		t.Errorf("kills: %+v", total)
	}
}
