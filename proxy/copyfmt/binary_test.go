package copyfmt

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

func TestBinaryRoundTrip(t *testing.T) {
	opts := DefaultOptions(Binary)
	in := binStream([]byte("ext!"), true,
		row("1", "alice", "<null>"),
		row("2", "<null>", ""),
		row("3", "bob\x00\xff", "x"),
	)
	out, err := run(opts, sel(false, true, true), identity, in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Errorf("identity changed the stream:\n%q\n%q", out, in)
	}

	fn, calls := recorder(asciiUpper)
	out, err = run(opts, sel(false, true, true), fn, in)
	if err != nil {
		t.Fatal(err)
	}
	want := binStream([]byte("ext!"), true,
		row("1", "ALICE", "<null>"),
		row("2", "<null>", ""),
		row("3", "BOB\x00\xff", "X"),
	)
	if !bytes.Equal(out, want) {
		t.Errorf("output\n%q\nwant\n%q", out, want)
	}
	checkCalls(t, *calls, []call{
		{row: 1, field: 1, value: "alice"}, {row: 1, field: 2, null: true},
		{row: 2, field: 1, null: true}, {row: 2, field: 2, value: ""},
		{row: 3, field: 1, value: "bob\x00\xff"}, {row: 3, field: 2, value: "x"},
	})

	// Replacements of another length, and NULL, re-frame the field.
	out, err = run(opts, sel(false, true, false), func(_ int64, _ int, v []byte) ([]byte, error) {
		if string(v) == "alice" {
			return nil, nil
		}
		return []byte("ciphertext"), nil
	}, in)
	if err != nil {
		t.Fatal(err)
	}
	want = binStream([]byte("ext!"), true,
		row("1", "<null>", "<null>"),
		row("2", "ciphertext", ""),
		row("3", "ciphertext", "x"),
	)
	if !bytes.Equal(out, want) {
		t.Errorf("output\n%q\nwant\n%q", out, want)
	}
}

func TestBinaryStreamsUnselectedFields(t *testing.T) {
	// An unselected field is forwarded as it arrives; a selected one is held
	// until complete.
	in := binStream(nil, true, row("0123456789", "abc"))
	tr, err := NewTransformer(DefaultOptions(Binary), sel(false, true), upper)
	if err != nil {
		t.Fatal(err)
	}
	cut := binHeaderLen + 2 + 4 + 5 // inside field 0
	out, err := tr.Write(nil, in[:cut])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in[:cut]) {
		t.Errorf("first part %q, want %q", out, in[:cut])
	}
	cut2 := cut + 5 + 4 + 1 // inside field 1
	out, err = tr.Write(out, in[cut:cut2])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in[:cut2-5]) {
		t.Errorf("second part %q, want %q", out, in[:cut2-5])
	}
	out, err = tr.Write(out, in[cut2:])
	if err == nil {
		out, err = tr.Close(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	if want := binStream(nil, true, row("0123456789", "ABC")); !bytes.Equal(out, want) {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestBinaryWithoutTrailer(t *testing.T) {
	// PostgreSQL takes the end of the data at a tuple boundary as the end.
	in := binStream(nil, false, row("a"))
	out, err := run(DefaultOptions(Binary), sel(true), upper, in)
	if err != nil {
		t.Fatal(err)
	}
	if want := binStream(nil, false, row("A")); !bytes.Equal(out, want) {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestBinaryErrors(t *testing.T) {
	good := binStream(nil, true, row("1", "secret"))
	header := func(flags uint32, ext int32) []byte {
		b := []byte(binSignature)
		b = binary.BigEndian.AppendUint32(b, flags)
		return binary.BigEndian.AppendUint32(b, uint32(ext))
	}
	tests := []struct {
		name   string
		in     []byte
		row    int64
		field  int
		reason string
	}{
		{name: "bad signature", in: []byte("PGCOPY\n\xff\r\r\x00secret"), row: 0, field: -1, reason: "signature not recognized"},
		{name: "text instead of binary", in: []byte("1\tsecret\n"), row: 0, field: -1, reason: "signature not recognized"},
		{name: "OIDs flag", in: slices.Concat(header(1<<16, 0), good[binHeaderLen:]), row: 0, field: -1, reason: "OIDs"},
		{name: "critical flag", in: slices.Concat(header(1<<20, 0), good[binHeaderLen:]), row: 0, field: -1, reason: "critical flags"},
		{name: "negative extension", in: header(0, -2), row: 0, field: -1, reason: "extension length"},
		{name: "truncated header", in: good[:binHeaderLen-1], row: 0, field: -1, reason: "inside the file header"},
		{name: "truncated extension", in: header(0, 10), row: 0, field: -1, reason: "inside the file header"},
		{name: "empty stream", in: nil, row: 0, field: -1, reason: "inside the file header"},
		{name: "truncated selected field", in: good[:len(good)-4], row: 1, field: 1, reason: "ends inside a row"},
		{name: "truncated length word", in: good[:binHeaderLen+2+4+1+2], row: 1, field: 1, reason: "ends inside a row"},
		{name: "truncated count", in: good[:binHeaderLen+1], row: 1, field: -1, reason: "ends inside a row"},
		{name: "wrong field count", in: binStream(nil, true, row("1", "a"), row("2", "secret", "x")), row: 2, field: -1,
			reason: "row has 3 fields, expected 2"},
		{name: "invalid length", in: slices.Concat(good[:binHeaderLen+2+4+1], []byte{0xff, 0xff, 0xff, 0xfe}), row: 1, field: 1,
			reason: "invalid binary field length"},
		{name: "data after trailer", in: slices.Concat(good, []byte{0}), row: 1, field: -1, reason: "after the binary COPY trailer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(DefaultOptions(Binary), sel(false, true), identity, tc.in)
			wantErr(t, err, tc.row, tc.field, tc.reason, "secret")
			if bytes.Contains(out, []byte("secret")) {
				t.Errorf("forwarded the protected value: %q", out)
			}
		})
	}
}

func TestBinaryFieldFuncError(t *testing.T) {
	in := binStream(nil, true, row("1", "ok"), row("2", "secret"))
	_, err := run(DefaultOptions(Binary), sel(false, true), func(_ int64, _ int, v []byte) ([]byte, error) {
		if string(v) == "secret" {
			return nil, errTest
		}
		return v, nil
	}, in)
	wantErr(t, err, 2, 1, "field function failed: test failure", "secret")
}

func TestBinaryFieldTooLong(t *testing.T) {
	tr, err := NewTransformer(DefaultOptions(Binary), sel(true), identity)
	if err != nil {
		t.Fatal(err)
	}
	tr.maxRow = 4
	_, err = tr.Write(nil, binStream(nil, true, row("12345")))
	wantErr(t, err, 1, 0, "longer than 4 bytes")
}
