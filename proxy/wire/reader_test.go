package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func msg(typ byte, body string) []byte {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	_ = WriteHeader(w, typ, len(body))
	_, _ = w.WriteString(body)
	_ = w.Flush()
	return b.Bytes()
}

func TestReaderForwardsMessagesUnchanged(t *testing.T) {
	big := strings.Repeat("x", 100_000) // larger than the reader's buffer
	in := append(append(msg('Q', "select 1\x00"), msg('d', big)...), msg('X', "")...)
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 4096), 0)
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	var types []byte
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, h.Type)
		if err := r.Forward(w, h); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Flush()
	if string(types) != "QdX" {
		t.Fatalf("types = %q", types)
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Fatal("forwarded bytes differ from input")
	}
}

func TestReaderBodyAndDiscard(t *testing.T) {
	in := append(msg('P', "abc"), msg('S', "")...)
	r := NewReader(bufio.NewReader(bytes.NewReader(in)), 0)
	h, err := r.Next()
	if err != nil || h.Type != 'P' || h.Len != 3 {
		t.Fatalf("Next = %+v, %v", h, err)
	}
	if _, err := r.Next(); err == nil {
		t.Fatal("Next before consuming the body succeeded")
	}
	b, err := r.Body()
	if err != nil || string(b) != "abc" {
		t.Fatalf("Body = %q, %v", b, err)
	}
	h, _ = r.Next()
	if h.Type != 'S' {
		t.Fatalf("second message %q", h.Type)
	}
	if err := r.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("want io.EOF, got %v", err)
	}
}

func TestReaderRejectsBadLengths(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want any
	}{
		{"length below four", []byte{'Q', 0, 0, 0, 3}, &MalformedError{}},
		{"negative length", []byte{'Q', 0xff, 0xff, 0xff, 0xff}, &MalformedError{}},
		{"over the limit", msg('Q', strings.Repeat("a", 2000)), &TooLargeError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bufio.NewReader(bytes.NewReader(tt.in)), 1024)
			_, err := r.Next()
			switch tt.want.(type) {
			case *MalformedError:
				var e *MalformedError
				if !errors.As(err, &e) {
					t.Fatalf("want MalformedError, got %v", err)
				}
			case *TooLargeError:
				var e *TooLargeError
				if !errors.As(err, &e) || e.Len != 2000 || e.Max != 1024 {
					t.Fatalf("want TooLargeError{2000, 1024}, got %v", err)
				}
			}
		})
	}
}

func TestReaderTruncatedStream(t *testing.T) {
	in := msg('D', "0123456789")[:9]
	r := NewReader(bufio.NewReader(bytes.NewReader(in)), 0)
	h, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := r.Forward(bufio.NewWriter(&out), h); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("want ErrUnexpectedEOF, got %v", err)
	}
	r = NewReader(bufio.NewReader(bytes.NewReader([]byte{'Q', 0, 0})), 0)
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("partial header: want ErrUnexpectedEOF, got %v", err)
	}
}

func TestStartupPacketRoundTrip(t *testing.T) {
	names := []string{"user", "database", "application_name"}
	values := map[string]string{"user": "alice", "database": "app", "application_name": "psql"}
	pkt := AppendStartupMessage(nil, names, values)
	p, err := ReadStartupPacket(bytes.NewReader(pkt))
	if err != nil {
		t.Fatal(err)
	}
	if p.Code != ProtocolVersion30 {
		t.Fatalf("code %d", p.Code)
	}
	gotNames, gotValues, err := ParseStartupParameters(p.Body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(gotNames, ",") != strings.Join(names, ",") || gotValues["user"] != "alice" || gotValues["database"] != "app" {
		t.Fatalf("got %v %v", gotNames, gotValues)
	}
}

func TestStartupPacketErrors(t *testing.T) {
	if _, err := ReadStartupPacket(bytes.NewReader(nil)); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
	var tooLarge *TooLargeError
	if _, err := ReadStartupPacket(bytes.NewReader([]byte{0, 1, 0, 0, 0, 3, 0, 0})); !errors.As(err, &tooLarge) {
		t.Fatalf("huge: %v", err)
	}
	var malformed *MalformedError
	if _, err := ReadStartupPacket(bytes.NewReader([]byte{0, 0, 0, 4, 0, 3, 0, 0})); !errors.As(err, &malformed) {
		t.Fatalf("short: %v", err)
	}
	for _, body := range []string{"user", "user\x00alice", "user\x00a\x00user\x00b\x00\x00", "user\x00a\x00\x00extra"} {
		if _, _, err := ParseStartupParameters([]byte(body)); !errors.As(err, &malformed) {
			t.Errorf("ParseStartupParameters(%q) = %v, want MalformedError", body, err)
		}
	}
}

func TestAppendCancelRequest(t *testing.T) {
	b := AppendCancelRequest(nil, 42, []byte{1, 2, 3, 4})
	p, err := ReadStartupPacket(bytes.NewReader(b))
	if err != nil || p.Code != CancelRequestCode || !bytes.Equal(p.Body, []byte{0, 0, 0, 42, 1, 2, 3, 4}) {
		t.Fatalf("got %+v, %v", p, err)
	}
}
