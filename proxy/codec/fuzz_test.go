package codec

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// fuzzTypes are the logical types the fuzz tests pick from.
var fuzzTypes = []string{"text", "varchar(5)", "char(3)", "int2", "int4", "int8", "numeric", "numeric(6,2)", "bool", "date", "timestamp",
	"timestamp(2)", "timestamptz", "uuid", "jsonb", "json", "bytea", "float4", "float8"}

func fuzzSession(t *testing.T) *Session {
	var s Session
	if err := s.Set("TimeZone", "America/New_York"); err != nil {
		t.Fatal(err)
	}
	return &s
}

// FuzzCanonical checks that Canonical never panics, and that whatever it
// accepts converts to both wire formats and reads back unchanged from them.
func FuzzCanonical(f *testing.F) {
	for i, seed := range []string{"hello", "ab ", "42", "-7", "1e3", "NaN", "-1.5e-3", "t", "2020-01-02", "2020-01-02 03:04:05.5",
		"2020-03-08 02:30 America/New_York", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `{"b":[1,2.50],"a":"\u00e9"}`, `[1,"x"]`,
		`\x00ff`, `a\\b\001`, "Infinity", "0x1p-1074", "J2451545", "1/2/3", "epoch", "-infinity", "294276-12-31 23:59:59.999999"} {
		for format := byte(0); format < 2; format++ {
			f.Add([]byte(seed), byte(i), format)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, typeIndex, format byte) {
		s := fuzzSession(t)
		typ := mustLookup(t, fuzzTypes[int(typeIndex)%len(fuzzTypes)])
		c, err := Canonical(typ, int16(format%2), data, s)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		bin, err := Wire(typ, FormatBinary, c, s)
		if err != nil {
			t.Fatalf("%s %q: Wire binary of accepted value: %v", typ, data, err)
		}
		back, err := Canonical(typ, FormatBinary, bin, s)
		if err != nil || !bytes.Equal(back, c) {
			// timestamp(p) may round to just past the range end, which
			// PostgreSQL also outputs but cannot read back.
			if !(typ.Typmod >= 0 && (typ.Name == "timestamp" || typ.Name == "timestamptz")) {
				t.Fatalf("%s %q: binary round trip %x, %v; want %x", typ, data, back, err, c)
			}
		}
		text, err := Wire(typ, FormatText, c, s)
		if err != nil {
			t.Fatalf("%s %q: Wire text of accepted value: %v", typ, data, err)
		}
		back, err = Canonical(typ, FormatText, text, s)
		if isNaNPayload(typ, c) {
			return // "NaN" reads back as the default NaN
		}
		if err != nil || !bytes.Equal(back, c) {
			if !(typ.Typmod >= 0 && (typ.Name == "timestamp" || typ.Name == "timestamptz")) {
				t.Fatalf("%s %q: text %q reads back as %x, %v; want %x", typ, data, text, back, err, c)
			}
		}
	})
}

// isNaNPayload reports a float NaN other than the one "NaN" reads as.
func isNaNPayload(typ Type, c []byte) bool {
	switch typ.Name {
	case "float4":
		v := binary.BigEndian.Uint32(c)
		return math.IsNaN(float64(math.Float32frombits(v))) && v != 0x7fc00000
	case "float8":
		v := binary.BigEndian.Uint64(c)
		return math.IsNaN(math.Float64frombits(v)) && v != 0x7ff8000000000000
	}
	return false
}

// FuzzWire checks that Wire never panics on arbitrary canonical bytes
// (corrupt plaintext must fail cleanly).
func FuzzWire(f *testing.F) {
	for i, seed := range [][]byte{{0, 0, 0, 1}, {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0, 1, 0, 0, 0x40, 0, 0, 2, 0, 5},
		{1, '{', '}'}, {0x80, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0xd0, 0, 0, 0x20}, {}} {
		for format := byte(0); format < 2; format++ {
			f.Add(seed, byte(i), format)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, typeIndex, format byte) {
		s := fuzzSession(t)
		typ := mustLookup(t, fuzzTypes[int(typeIndex)%len(fuzzTypes)])
		if _, err := Wire(typ, int16(format%2), data, s); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T", err)
			}
		}
	})
}
