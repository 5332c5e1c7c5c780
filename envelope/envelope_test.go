package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// sample returns a syntactically valid envelope: header, TINK prefix with
// keyID, and body filler bytes.
func sample(m Mode, keyID uint32, body int) []byte {
	h := Header(m)
	b := append([]byte(nil), h[:]...)
	b = append(b, 0x01)
	b = binary.BigEndian.AppendUint32(b, keyID)
	return append(b, bytes.Repeat([]byte{0xA5}, body)...)
}

func TestHeaderAndAssociatedData(t *testing.T) {
	if got, want := Header(Randomized), [5]byte{0x46, 0x4C, 0x45, 0x01, 0x01}; got != want {
		t.Errorf("Header(Randomized) = % x, want % x", got, want)
	}
	if got, want := Header(Deterministic), [5]byte{0x46, 0x4C, 0x45, 0x01, 0x02}; got != want {
		t.Errorf("Header(Deterministic) = % x, want % x", got, want)
	}
	ad := AssociatedData(Randomized, "col-42")
	if want := []byte("FLE\x01\x01fleproxy/column/col-42"); !bytes.Equal(ad, want) {
		t.Errorf("AssociatedData = %q, want %q", ad, want)
	}
	if bytes.Equal(AssociatedData(Randomized, "a"), AssociatedData(Deterministic, "a")) {
		t.Error("associated data does not bind the mode")
	}
}

func TestMinLength(t *testing.T) {
	for _, tc := range []struct {
		m    Mode
		want int
	}{{Randomized, 38}, {Deterministic, 26}, {Mode(3), 0}} {
		if got := MinLength(tc.m); got != tc.want {
			t.Errorf("MinLength(%v) = %d, want %d", tc.m, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	good := sample(Randomized, 0xDEADBEEF, 28)
	mode, ct, err := Parse(good)
	if err != nil || mode != Randomized || !bytes.Equal(ct, good[5:]) {
		t.Fatalf("Parse(good) = %v, % x, %v", mode, ct, err)
	}
	id, err := KeyID(good)
	if err != nil || id != 0xDEADBEEF {
		t.Fatalf("KeyID = %08x, %v", id, err)
	}
	if _, _, err := Parse(sample(Deterministic, 7, 16)); err != nil {
		t.Fatalf("Parse(minimal deterministic): %v", err)
	}

	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, nil},
		{"plaintext", []byte("alice@example.com"), nil},
		{"short magic", []byte("FL"), nil},
		{"header only", good[:5], ErrTruncated},
		{"bad magic", mut(func(b []byte) []byte { b[0] = 'f'; return b }), nil},
		{"version 2", mut(func(b []byte) []byte { b[3] = 2; return b }), ErrUnsupportedVersion},
		{"version 0", mut(func(b []byte) []byte { b[3] = 0; return b }), ErrUnsupportedVersion},
		{"mode 0", mut(func(b []byte) []byte { b[4] = 0; return b }), ErrUnknownMode},
		{"mode 3", mut(func(b []byte) []byte { b[4] = 3; return b }), ErrUnknownMode},
		{"truncated randomized", good[:37], ErrTruncated},
		{"truncated deterministic", sample(Deterministic, 1, 15), ErrTruncated},
		{"crunchy prefix", mut(func(b []byte) []byte { b[5] = 0; return b }), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse(tc.in)
			if !errors.Is(err, ErrNotCiphertext) {
				t.Fatalf("Parse error %v does not match ErrNotCiphertext", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Parse error %v does not match %v", err, tc.want)
			}
			if _, err := KeyID(tc.in); !errors.Is(err, ErrNotCiphertext) {
				t.Fatalf("KeyID error %v does not match ErrNotCiphertext", err)
			}
		})
	}
}

func TestErrorsDoNotQuoteInput(t *testing.T) {
	secret := "FLE\x01\x09my-secret-plaintext-value-1234567890"
	_, _, err := Parse([]byte(secret))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %q", err)
	}
	_, err = Dearmor([]byte("fle1:c2VjcmV0\nc2VjcmV0"))
	if err == nil || strings.Contains(err.Error(), "c2Vj") {
		t.Fatalf("error %q", err)
	}
}

func TestArmor(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 10, 100} {
		raw := sample(Randomized, 42, 28+n)
		a := Armor(raw)
		if !bytes.HasPrefix(a, []byte("fle1:RkxFAQEB")) {
			t.Fatalf("Armor = %q", a)
		}
		if len(a) != ArmoredLen(len(raw)) {
			t.Fatalf("len(Armor) = %d, ArmoredLen = %d", len(a), ArmoredLen(len(raw)))
		}
		back, err := Dearmor(a)
		if err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("Dearmor(Armor(x)) = % x, %v", back, err)
		}
	}
	if a := Armor(sample(Deterministic, 1, 16)); !bytes.HasPrefix(a, []byte("fle1:RkxFAQIB")) {
		t.Fatalf("Armor(deterministic) = %q", a)
	}
}

func TestDearmorRejects(t *testing.T) {
	good := string(Armor(sample(Randomized, 42, 30)))
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrArmor},
		{"plaintext", "alice@example.com", ErrArmor},
		{"other prefix", "fle2:" + good[5:], ErrArmor},
		{"upper prefix", "FLE1:" + good[5:], ErrArmor},
		{"padding", good + "=", ErrArmor},
		{"newline", good[:20] + "\n" + good[20:], ErrArmor},
		{"CR", good[:20] + "\r" + good[20:], ErrArmor},
		{"space", good + " ", ErrArmor},
		{"std alphabet", strings.Replace(good, good[10:11], "+", 1), ErrArmor},
		{"impossible length", good[:len(ArmorPrefix)+53], nil},
		{"truncated", string(Armor(sample(Randomized, 42, 30)[:37])), ErrTruncated},
		{"armoured plaintext", "fle1:YWxpY2VAZXhhbXBsZS5jb20", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Dearmor([]byte(tc.in))
			if !errors.Is(err, ErrNotCiphertext) {
				t.Fatalf("Dearmor error %v does not match ErrNotCiphertext", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Dearmor error %v does not match %v", err, tc.want)
			}
		})
	}
	// Non-canonical trailing bits: 40 bytes encode to 54 characters whose
	// last holds 4 unused bits.
	a := Armor(sample(Randomized, 42, 30))
	last := a[len(a)-1]
	a[len(a)-1] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)|1]
	if _, err := Dearmor(a); !errors.Is(err, ErrArmor) {
		t.Fatalf("Dearmor(non-canonical) error = %v, want ErrArmor", err)
	}
}

func TestStorage(t *testing.T) {
	for _, s := range []Storage{Bytea, Text} {
		got, err := ParseStorage(s.String())
		if err != nil || got != s {
			t.Errorf("ParseStorage(%q) = %v, %v", s.String(), got, err)
		}
	}
	for _, bad := range []string{"", "BYTEA", "varchar", "storage(1)"} {
		if _, err := ParseStorage(bad); !errors.Is(err, ErrUnknownStorage) {
			t.Errorf("ParseStorage(%q) succeeded", bad)
		}
	}
	if Storage(0).String() != "storage(0)" || Mode(9).String() != "mode(0x09)" {
		t.Error("String of undefined values")
	}
}

func TestCheckExpression(t *testing.T) {
	b := CheckExpression(`"email"`, Bytea)
	for _, want := range []string{`"email" IS NULL`, `E'\\x464c4501'::bytea`, `E'\\x0101'::bytea`, `>= 38`, `>= 26`} {
		if !strings.Contains(b, want) {
			t.Errorf("bytea expression %s lacks %s", b, want)
		}
	}
	x := CheckExpression(`"email"`, Text)
	for _, want := range []string{`"email" IS NULL`, `'^fle1:RkxFAQ(EB[A-Za-z0-9_-]{43,}|IB[A-Za-z0-9_-]{27,})$'`, `length("email") % 4 <> 2`} {
		if !strings.Contains(x, want) {
			t.Errorf("text expression %s lacks %s", x, want)
		}
	}
	if CheckExpression("c", Storage(7)) != "false" {
		t.Error("unknown storage is not false")
	}
}
