package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// HeaderLen is the size in bytes of a regular message header: the type byte and the int32 length.
const HeaderLen = 5

// Header is the five-byte header of a regular protocol message.
type Header struct {
	// Type is the message type byte, e.g. 'Q' (Query) or 'D' (DataRow).
	Type byte
	// Len is the body length in bytes: the wire length field minus the four bytes it counts of itself.
	Len int
}

// Reader reads protocol messages from a buffered stream. It is not safe for concurrent use.
//
// A Reader enforces a maximum body length: PostgreSQL itself limits most messages to 1 GB
// (PQ_LARGE_MESSAGE_LIMIT in src/backend/libpq/pqcomm.c); the proxy's limit is configurable and
// protects its memory on the few paths that read a message whole.
type Reader struct {
	br      *bufio.Reader
	maxBody int
	buf     []byte
	pending int // body bytes of the current message not yet consumed
}

// NewReader returns a Reader over br that rejects messages whose body exceeds maxBody bytes
// (maxBody <= 0 means no limit beyond the protocol's own int32 length).
func NewReader(br *bufio.Reader, maxBody int) *Reader {
	return &Reader{br: br, maxBody: maxBody}
}

// Buffered reports the number of bytes that can be read without blocking. The forwarding loop
// flushes its writer when this is zero, so a burst of pipelined messages goes out in one write.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Next reads the header of the next message. The previous message's body must have been consumed
// with Body, Forward or Discard. Next returns io.EOF at a clean end of stream, a
// *MalformedError for a length below four, and a *TooLargeError for a body above the limit (the
// header has then been consumed but not the body; the connection cannot be resynchronised).
func (r *Reader) Next() (Header, error) {
	if r.pending != 0 {
		return Header{}, fmt.Errorf("wire: Next called with %d body bytes of the previous message unread", r.pending)
	}
	hdr, err := r.br.Peek(HeaderLen)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return Header{}, err
	}
	h := Header{Type: hdr[0]}
	n := int64(binary.BigEndian.Uint32(hdr[1:5]))
	if _, err := r.br.Discard(HeaderLen); err != nil {
		return Header{}, err
	}
	if n < 4 || n > 1<<31-1 {
		return h, &MalformedError{Type: h.Type, Reason: fmt.Sprintf("invalid length %d", n)}
	}
	h.Len = int(n - 4)
	if r.maxBody > 0 && h.Len > r.maxBody {
		return h, &TooLargeError{Type: h.Type, Len: h.Len, Max: r.maxBody}
	}
	r.pending = h.Len
	return h, nil
}

// retainedBody is the largest body buffer a Reader keeps for reuse, in bytes; a larger message
// gets a buffer of its own, so one big message does not pin its size to the connection.
const retainedBody = 1 << 20

// Body reads the current message's body whole. The returned slice may be reused by the next call
// to Body and must not be retained.
func (r *Reader) Body() ([]byte, error) {
	n := r.pending
	var b []byte
	switch {
	case n > retainedBody:
		b = make([]byte, n)
	case cap(r.buf) < n:
		r.buf = make([]byte, n)
		fallthrough
	default:
		b = r.buf[:n]
	}
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, unexpected(err)
	}
	r.pending = 0
	return b, nil
}

// Forward writes h and the current message's body to w, streaming the body so that a large
// message is never held in memory whole.
func (r *Reader) Forward(w *bufio.Writer, h Header) error {
	if err := WriteHeader(w, h.Type, h.Len); err != nil {
		return err
	}
	for r.pending > 0 {
		chunk := min(r.pending, r.br.Size())
		b, err := r.br.Peek(chunk)
		if len(b) == 0 && err != nil {
			return unexpected(err)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		_, _ = r.br.Discard(len(b))
		r.pending -= len(b)
	}
	return nil
}

// Discard skips the current message's body.
func (r *Reader) Discard() error {
	n, err := r.br.Discard(r.pending)
	r.pending -= n
	if err != nil {
		return unexpected(err)
	}
	return nil
}

// WriteHeader writes a regular message header for a body of bodyLen bytes.
func WriteHeader(w *bufio.Writer, typ byte, bodyLen int) error {
	var hdr [HeaderLen]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(bodyLen+4))
	_, err := w.Write(hdr[:])
	return err
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
