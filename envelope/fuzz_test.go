package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"regexp"
	"testing"
)

// textCheck mirrors the regular expression and length rule of
// CheckExpression(_, Text) in Go's RE2, which agrees with PostgreSQL's ARE
// on this pattern.
var textCheck = regexp.MustCompile(`^fle1:RkxFAQ(EB[A-Za-z0-9_-]{43,}|IB[A-Za-z0-9_-]{27,})$`)

func FuzzParse(f *testing.F) {
	f.Add([]byte("plaintext"))
	f.Add(sample(Randomized, 1, 28))
	f.Add(sample(Deterministic, 2, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		mode, ct, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrNotCiphertext) {
				t.Fatalf("error %v does not match ErrNotCiphertext", err)
			}
			return
		}
		if len(b) < MinLength(mode) || !bytes.Equal(ct, b[HeaderLen:]) || ct[0] != 1 {
			t.Fatalf("accepted malformed % x", b)
		}
		id, err := KeyID(b)
		if err != nil || id != binary.BigEndian.Uint32(b[6:10]) {
			t.Fatalf("KeyID = %d, %v", id, err)
		}
		a := Armor(b)
		if !textCheck.Match(a) || len(a)%4 == 2 {
			t.Fatalf("text CHECK would reject the armour of a valid envelope: %q", a)
		}
		back, err := Dearmor(a)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("Dearmor(Armor(b)) = % x, %v", back, err)
		}
	})
}

func FuzzDearmor(f *testing.F) {
	f.Add([]byte("fle1:"))
	f.Add(Armor(sample(Randomized, 1, 28)))
	f.Add([]byte("fle1:RkxFAQEB\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		raw, err := Dearmor(text)
		if err != nil {
			if !errors.Is(err, ErrNotCiphertext) {
				t.Fatalf("error %v does not match ErrNotCiphertext", err)
			}
			return
		}
		if !bytes.Equal(Armor(raw), text) {
			t.Fatalf("Dearmor accepted a non-canonical form %q", text)
		}
		// Whatever Dearmor accepts, the database CHECK accepts too.
		if !textCheck.Match(text) || len(text)%4 == 2 {
			t.Fatalf("text CHECK would reject %q", text)
		}
	})
}
