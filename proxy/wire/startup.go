package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Request codes of the start-up packets (PostgreSQL protocol §55.7: SSLRequest, GSSENCRequest,
// CancelRequest) and the protocol version this proxy speaks.
const (
	CancelRequestCode uint32 = 80877102
	SSLRequestCode    uint32 = 80877103
	GSSENCRequestCode uint32 = 80877104
	// ProtocolVersion30 is protocol 3.0, major version in the high 16 bits.
	ProtocolVersion30 uint32 = 3 << 16
)

// MaxStartupPacket is the largest start-up packet accepted, in bytes including the length word;
// the same limit as PostgreSQL's MAX_STARTUP_PACKET_LENGTH (src/include/libpq/pqcomm.h).
const MaxStartupPacket = 10000

// StartupPacket is one packet of the start-up phase: a StartupMessage, SSLRequest,
// GSSENCRequest or CancelRequest, told apart by Code.
type StartupPacket struct {
	// Code is the protocol version (for a StartupMessage) or the request code.
	Code uint32
	// Body is the rest of the packet after the code.
	Body []byte
}

// ReadStartupPacket reads one start-up packet. It returns io.EOF if the peer closed the connection
// before sending anything, and a *MalformedError or *TooLargeError for a packet outside
// 8..MaxStartupPacket bytes.
func ReadStartupPacket(r io.Reader) (StartupPacket, error) {
	var hdr [8]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if n == 0 && err == io.EOF {
			return StartupPacket{}, io.EOF
		}
		return StartupPacket{}, unexpected(err)
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 8 {
		return StartupPacket{}, &MalformedError{Reason: fmt.Sprintf("invalid length %d", n)}
	}
	if n > MaxStartupPacket {
		return StartupPacket{}, &TooLargeError{Len: int(n), Max: MaxStartupPacket}
	}
	p := StartupPacket{Code: binary.BigEndian.Uint32(hdr[4:8]), Body: make([]byte, n-8)}
	if _, err := io.ReadFull(r, p.Body); err != nil {
		return StartupPacket{}, unexpected(err)
	}
	return p, nil
}

// ParseStartupParameters decodes the name/value pairs of a StartupMessage body: NUL-terminated
// strings in pairs, ended by an empty name (PostgreSQL protocol §55.7, StartupMessage). The
// order of names is kept, since it is the order forwarded upstream.
func ParseStartupParameters(body []byte) (names []string, values map[string]string, err error) {
	values = make(map[string]string)
	for {
		i := bytes.IndexByte(body, 0)
		if i < 0 {
			return nil, nil, &MalformedError{Reason: "StartupMessage parameters are not NUL-terminated"}
		}
		name := string(body[:i])
		body = body[i+1:]
		if name == "" {
			if len(body) != 0 {
				return nil, nil, &MalformedError{Reason: "data after the StartupMessage terminator"}
			}
			return names, values, nil
		}
		j := bytes.IndexByte(body, 0)
		if j < 0 {
			return nil, nil, &MalformedError{Reason: fmt.Sprintf("StartupMessage parameter %q has no value", name)}
		}
		if _, dup := values[name]; dup {
			return nil, nil, &MalformedError{Reason: fmt.Sprintf("StartupMessage parameter %q given twice", name)}
		}
		names = append(names, name)
		values[name] = string(body[:j])
		body = body[j+1:]
	}
}

// AppendStartupMessage appends a protocol 3.0 StartupMessage with the named parameters, in order.
func AppendStartupMessage(dst []byte, names []string, values map[string]string) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, ProtocolVersion30)
	for _, n := range names {
		dst = append(dst, n...)
		dst = append(dst, 0)
		dst = append(dst, values[n]...)
		dst = append(dst, 0)
	}
	dst = append(dst, 0)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst
}

// AppendRequest appends an SSLRequest or GSSENCRequest packet (eight bytes: length and code).
func AppendRequest(dst []byte, code uint32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 8)
	return binary.BigEndian.AppendUint32(dst, code)
}

// AppendCancelRequest appends a CancelRequest for a backend's process ID and secret key
// (PostgreSQL protocol §55.7, CancelRequest; 3.0 secrets are four bytes).
func AppendCancelRequest(dst []byte, pid uint32, secret []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(12+len(secret)))
	dst = binary.BigEndian.AppendUint32(dst, CancelRequestCode)
	dst = binary.BigEndian.AppendUint32(dst, pid)
	return append(dst, secret...)
}
