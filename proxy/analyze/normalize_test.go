package analyze

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ sql, want string }{
		{"SELECT * FROM t WHERE a = 'secret' AND b = 42 AND c = 1.5 AND d = $1",
			"SELECT * FROM t WHERE a = $2 AND b = $3 AND c = $4 AND d = $1"},
		{"INSERT INTO customer (email) VALUES (E'se\\'cret', true, B'101', X'1F', -7) /* bob@x */ -- alice@x",
			"INSERT INTO customer (email) VALUES ($1, $2, $3, $4, -$5)"},
		{"EXECUTE p(1, 'secret'); DO $$ BEGIN RAISE 'secret'; END $$; ALTER ROLE r PASSWORD 'secret'",
			"EXECUTE p($1, $2); DO $3; ALTER ROLE r PASSWORD $4"},
		{"COPY t FROM STDIN WITH NULL 'secret'", "COPY t FROM STDIN WITH NULL $1"},
		{"SELECT 'unterminated", unloggable},
	}
	for _, tc := range tests {
		got := Normalize(tc.sql)
		if got != tc.want {
			t.Errorf("Normalize(%q) =\n%q\nwant\n%q", tc.sql, got, tc.want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "@x") {
			t.Errorf("Normalize leaks a value: %q", got)
		}
	}
}

func TestFingerprint(t *testing.T) {
	a, err := Fingerprint("SELECT * FROM customer WHERE customer_id = 1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Fingerprint("select *  from customer where customer_id = 2")
	if a == "" || a != b {
		t.Errorf("fingerprints %q and %q differ", a, b)
	}
	_, err = Fingerprint("SELEC 'secret'")
	var pe *ParseError
	if !errors.As(err, &pe) || strings.Contains(err.Error(), "secret") {
		t.Errorf("Fingerprint error %v", err)
	}
}
