package copyfmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// call is one FieldFunc invocation as seen by a recorder.
type call struct {
	row   int64
	field int
	value string
	null  bool
}

// recorder returns a FieldFunc that records its calls and then applies f
// (identity if nil), and the slice it records into.
func recorder(f func([]byte) []byte) (FieldFunc, *[]call) {
	var calls []call
	return func(row int64, field int, v []byte) ([]byte, error) {
		calls = append(calls, call{row: row, field: field, value: string(v), null: v == nil})
		if v == nil {
			return nil, nil
		}
		if f == nil {
			return v, nil
		}
		return f(v), nil
	}, &calls
}

// checkCalls compares recorded FieldFunc calls with want, unless want is nil.
func checkCalls(t *testing.T, got, want []call) {
	t.Helper()
	if want == nil || len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("calls\n%+v\nwant\n%+v", got, want)
	}
}

func identity(_ int64, _ int, v []byte) ([]byte, error) { return v, nil }

func upper(_ int64, _ int, v []byte) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return bytes.ToUpper(v), nil
}

// asciiUpper upper-cases ASCII letters and leaves other bytes alone.
func asciiUpper(v []byte) []byte {
	out := make([]byte, len(v))
	for i, c := range v {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// constant returns a FieldFunc that replaces every value by v.
func constant(v []byte) FieldFunc {
	return func(int64, int, []byte) ([]byte, error) { return v, nil }
}

func sel(on ...bool) []bool { return on }

// run feeds chunks to a new Transformer and closes it.
func run(opts Options, fields []bool, fn FieldFunc, chunks ...[]byte) ([]byte, error) {
	tr, err := NewTransformer(opts, fields, fn)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, c := range chunks {
		if out, err = tr.Write(out, c); err != nil {
			return out, err
		}
	}
	return tr.Close(out)
}

// mustRun is run for streams that must be accepted.
func mustRun(t *testing.T, opts Options, fields []bool, fn FieldFunc, in string) string {
	t.Helper()
	out, err := run(opts, fields, fn, []byte(in))
	if err != nil {
		t.Fatalf("input %q: %v", in, err)
	}
	return string(out)
}

// wantErr checks that err is an *Error for row and field whose text holds
// reason and none of the secrets.
func wantErr(t *testing.T, err error, row int64, field int, reason string, secrets ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *Error", err, err)
	}
	if e.Row != row || e.Field != field {
		t.Errorf("error %q at row %d field %d, want row %d field %d", e, e.Row, e.Field, row, field)
	}
	if !bytes.Contains([]byte(e.Error()), []byte(reason)) {
		t.Errorf("error %q does not say %q", e, reason)
	}
	for _, s := range secrets {
		if bytes.Contains([]byte(e.Error()), []byte(s)) {
			t.Errorf("error %q reveals the value %q", e, s)
		}
	}
}

// binStream builds a binary COPY stream from rows of fields (nil = NULL),
// with an optional header extension and the trailer.
func binStream(ext []byte, trailer bool, rows ...[][]byte) []byte {
	b := []byte(binSignature)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ext)))
	b = append(b, ext...)
	for _, r := range rows {
		b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
		for _, f := range r {
			if f == nil {
				b = binary.BigEndian.AppendUint32(b, 0xffffffff)
				continue
			}
			b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
			b = append(b, f...)
		}
	}
	if trailer {
		b = append(b, 0xff, 0xff)
	}
	return b
}

func row(fields ...string) [][]byte {
	r := make([][]byte, len(fields))
	for i, f := range fields {
		if f != "<null>" {
			r[i] = []byte(f)
		}
	}
	return r
}
