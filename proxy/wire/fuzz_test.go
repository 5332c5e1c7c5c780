package wire

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes through the framing used on every client message: it must
// never panic, never forward more than it read, and stop with an error on garbage.
func FuzzReader(f *testing.F) {
	f.Add(msg('Q', "select 1\x00"))
	f.Add([]byte{'Q', 0, 0, 0, 3})
	f.Add(append(msg('P', "\x00select $1\x00\x00\x00"), msg('S', "")...))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 16), 1<<16)
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		for i := 0; ; i++ {
			h, err := r.Next()
			if err != nil {
				break
			}
			if i%2 == 0 {
				err = r.Forward(w, h)
			} else {
				_, err = r.Body()
			}
			if err != nil {
				break
			}
		}
		_ = w.Flush()
		if out.Len() > len(in) {
			t.Fatalf("forwarded %d bytes from %d", out.Len(), len(in))
		}
	})
}

// FuzzStartupPacket checks the start-up packet parser on arbitrary input.
func FuzzStartupPacket(f *testing.F) {
	f.Add(AppendStartupMessage(nil, []string{"user"}, map[string]string{"user": "u"}))
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ReadStartupPacket(bytes.NewReader(in))
		if err != nil {
			if err == io.EOF && len(in) != 0 {
				t.Fatal("io.EOF for non-empty input")
			}
			return
		}
		_, _, _ = ParseStartupParameters(p.Body)
	})
}
