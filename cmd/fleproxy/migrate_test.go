package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/migrate"
)

// TestMigrateCommands runs migrate encrypt, keys reencrypt --key, migrate status and migrate
// decrypt on public.secrets through the CLI, and checks that no value is ever printed.
func TestMigrateCommands(t *testing.T) {
	ctx := testContext(t)
	env := newAdminEnv(t, ctx, "admin_migrate")
	mustRun(t, ctx, "keys", "init", "--config", env.config)
	if _, err := env.pool.Exec(ctx, `INSERT INTO public.secrets
SELECT i, CASE WHEN i % 10 = 0 THEN NULL ELSE convert_to('SECRET-b-' || i, 'UTF8') END,
          CASE WHEN i % 7 = 0 THEN '' ELSE 'SECRET-t-' || i END
FROM generate_series(1, 300) i`); err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	run := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		root := newRootCommand()
		root.SetArgs(append(args, "--config", env.config))
		root.SetOut(&out)
		root.SetErr(&errOut)
		err := root.ExecuteContext(ctx)
		all.WriteString(out.String() + errOut.String())
		if err != nil {
			all.WriteString(err.Error())
		}
		t.Logf("fleproxy %s\n%s%s(error: %v)", strings.Join(args, " "), out.String(), errOut.String(), err)
		return out.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("fleproxy %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	countCiphertext := func(col string, st envelope.Storage) (n int) {
		t.Helper()
		rows, err := env.pool.Query(ctx, "SELECT "+col+"::bytea FROM public.secrets WHERE "+col+" IS NOT NULL")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v []byte
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			if st == envelope.Text {
				_, err = envelope.Dearmor(v)
			} else {
				_, _, err = envelope.Parse(v)
			}
			if err == nil {
				n++
			}
		}
		return n
	}

	out := must("migrate", "encrypt", "--column", "public.secrets.note_t", "--dry-run")
	if !strings.Contains(out, "dry run done (nothing written)") || !strings.Contains(out, "300 rows read: 300 to be encrypted") {
		t.Errorf("dry run output:\n%s", out)
	}
	if n := countCiphertext("note_t", envelope.Text); n != 0 {
		t.Fatalf("dry run encrypted %d values", n)
	}

	out = must("migrate", "encrypt", "--column", "public.secrets.note_t", "--batch-size", "64", "--rows-per-second", "100000")
	for _, want := range []string{"Job encrypt public.secrets.note_t: done after", `rows identified by primary key ("id")`,
		"300 rows read: 300 encrypted", "constraint fleproxy_secrets_note_t_ciphertext: added"} {
		if !strings.Contains(out, want) {
			t.Errorf("encrypt output lacks %q:\n%s", want, out)
		}
	}
	var rep migrate.Report
	if err := json.Unmarshal([]byte(must("migrate", "encrypt", "--column", "public.secrets.note_b", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.State != migrate.StateDone || rep.Changed != 270 || rep.Null != 30 || rep.ConstraintStatus != migrate.ConstraintAdded {
		t.Errorf("encrypt --json: %+v", rep)
	}
	if n := countCiphertext("note_t", envelope.Text); n != 300 {
		t.Errorf("%d of 300 note_t values are ciphertext", n)
	}
	if names := constraintNames(t, ctx, env.pool); len(names) != 2 {
		t.Errorf("constraints after encrypt: %v", names)
	}

	mustRun(t, ctx, "keys", "rotate", "pii", "--config", env.config)
	var reps []migrate.Report
	if err := json.Unmarshal([]byte(must("keys", "reencrypt", "--key", "pii", "--json")), &reps); err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 || reps[0].Changed != 270 || reps[1].Changed != 300 || reps[0].PrimaryKeyID == 0 {
		t.Errorf("keys reencrypt --key: %+v", reps)
	}
	out = must("keys", "reencrypt", "--column", "public.secrets.note_t")
	if !strings.Contains(out, "0 re-encrypted, 300 already under the primary key") {
		t.Errorf("second reencrypt:\n%s", out)
	}

	var jobs []migrate.Status
	if err := json.Unmarshal([]byte(must("migrate", "status", "--json")), &jobs); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 4 {
		t.Errorf("migrate status: %+v", jobs)
	}
	out = must("migrate", "status")
	if !strings.Contains(out, "reencrypt public.secrets.note_b") || !strings.Contains(out, "done") {
		t.Errorf("migrate status:\n%s", out)
	}

	out = must("migrate", "decrypt", "--column", "public.secrets.note_b")
	for _, want := range []string{"270 decrypted", "constraint fleproxy_secrets_note_b_ciphertext: dropped",
		`ALTER TABLE "public"."secrets" ALTER COLUMN "note_b" TYPE text USING convert_from("note_b", 'UTF8')::text;`} {
		if !strings.Contains(out, want) {
			t.Errorf("decrypt output lacks %q:\n%s", want, out)
		}
	}
	must("migrate", "decrypt", "--column", "public.secrets.note_t")
	var plain int
	if err := env.pool.QueryRow(ctx, `SELECT count(*) FROM public.secrets
WHERE convert_from(note_b, 'UTF8') = 'SECRET-b-' || id AND note_t = CASE WHEN id % 7 = 0 THEN '' ELSE 'SECRET-t-' || id END`).Scan(&plain); err != nil {
		t.Fatal(err)
	}
	if plain != 270 {
		t.Errorf("%d rows back to their plaintext, want 270", plain)
	}

	// Mistakes.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "encrypt"}, "--column is required"},
		{[]string{"migrate", "encrypt", "--column", "public.secrets.id"}, "is not protected"},
		{[]string{"keys", "reencrypt"}, "exactly one of --column and --key"},
		{[]string{"keys", "reencrypt", "--key", "nope"}, `no protected column uses key "nope"`},
	} {
		if _, err := run(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("fleproxy %s: %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	// A value that cannot be encrypted is named by key, not by value.
	if _, err := env.pool.Exec(ctx, `UPDATE public.secrets SET note_t = 'fle1:RkxFAQEB' || repeat('A', 60) WHERE id = 5`); err != nil {
		t.Fatal(err)
	}
	_, err := run("migrate", "encrypt", "--column", "public.secrets.note_t")
	var fe *migrate.FailedRowsError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "id=5") {
		t.Errorf("encrypt with a bad row: %v", err)
	}
	if strings.Contains(all.String(), "SECRET") {
		t.Error("a command printed a value")
	}
}
