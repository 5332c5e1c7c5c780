package copyfmt

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// bulk returns a stream of n rows of three fields in format f, the second
// of them a value worth encrypting.
func bulk(f Format, n int) []byte {
	if f == Binary {
		rows := make([][][]byte, n)
		for i := range rows {
			rows[i] = row(fmt.Sprint(i), fmt.Sprintf("user%d@example.com", i), "some\tlonger unprotected text")
		}
		return binStream(nil, true, rows...)
	}
	var b strings.Builder
	for i := range n {
		if f == CSV {
			fmt.Fprintf(&b, "%d,\"user%d@example.com\",\"some, longer \"\"unprotected\"\" text\"\n", i, i)
		} else {
			fmt.Fprintf(&b, "%d\tuser%d@example.com\tsome\\tlonger \\\\unprotected text\n", i, i)
		}
	}
	return []byte(b.String())
}

// TestNoAllocations checks that a warmed-up Transformer rewrites rows,
// including rows that span payloads, without allocating.
func TestNoAllocations(t *testing.T) {
	for _, f := range []Format{Text, CSV, Binary} {
		t.Run(f.String(), func(t *testing.T) {
			stream := bulk(f, 200)
			body := stream
			if f == Binary {
				body = stream[binHeaderLen : len(stream)-2]
			}
			tr, err := NewTransformer(DefaultOptions(f), sel(false, true, false), upper2)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]byte, 0, 2*len(stream))
			if f == Binary {
				if out, err = tr.Write(out, stream[:binHeaderLen]); err != nil {
					t.Fatal(err)
				}
			}
			cut := len(body) / 3 // inside a row
			write := func() {
				var err error
				if out, err = tr.Write(out[:0], body[:cut]); err != nil {
					t.Fatal(err)
				}
				if out, err = tr.Write(out, body[cut:]); err != nil {
					t.Fatal(err)
				}
			}
			write()
			if allocs := testing.AllocsPerRun(20, write); allocs != 0 {
				t.Errorf("%v allocations per run", allocs)
			}
		})
	}
}

// upper2 upper-cases ASCII in place in a reused buffer, standing in for a
// FieldFunc that does not allocate.
var _ FieldFunc = upper2

func upper2(_ int64, _ int, v []byte) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	for i, c := range v {
		if c >= 'a' && c <= 'z' {
			v[i] = c - ('a' - 'A')
		}
	}
	return v, nil
}

func BenchmarkTransformer(b *testing.B) {
	for _, f := range []Format{Text, CSV, Binary} {
		b.Run(f.String(), func(b *testing.B) {
			stream := bulk(f, 20000)
			const chunk = 64 << 10
			out := make([]byte, 0, 2*chunk)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				tr, err := NewTransformer(DefaultOptions(f), sel(false, true, false), identity)
				if err != nil {
					b.Fatal(err)
				}
				for p := stream; len(p) > 0; {
					n := min(chunk, len(p))
					if out, err = tr.Write(out[:0], p[:n]); err != nil {
						b.Fatal(err)
					}
					p = p[n:]
				}
				if _, err = tr.Close(out[:0]); err != nil {
					b.Fatal(err)
				}
			}
			_ = bytes.MinRead
		})
	}
}
