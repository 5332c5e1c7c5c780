// Package envelope defines fleproxy's versioned on-disk ciphertext format: the
// bytes a protected column holds in place of a plaintext value.
//
// A version 1 envelope is
//
//	offset  size  content
//	0       3     magic "FLE" (0x46 0x4C 0x45)
//	3       1     format version, 0x01
//	4       1     mode: 0x01 Randomized, 0x02 Deterministic
//	5       1     Tink output prefix version, 0x01 (TINK)
//	6       4     Tink key ID, big-endian: the data key that made the value
//	10      ...   Tink primitive output (AES-GCM: IV || ciphertext || tag;
//	              AES-SIV: SIV || ciphertext)
//
// Bytes 5 and on are exactly what a Tink primitive with the TINK output prefix
// returns (https://developers.google.com/tink/wire-format), so the envelope
// names its data key and any Tink implementation can decrypt it given the
// keyset and the associated data from [AssociatedData].
//
// A value is stored either raw in a bytea column ([Bytea]) or armoured as
// "fle1:" + unpadded base64url in a text or varchar column ([Text]), and
// [CheckExpression] gives the CHECK constraint that makes the database itself
// refuse anything else. docs/ciphertext.md documents the format in full.
//
// The package knows nothing of keys or of the PostgreSQL wire protocol; the
// keys package seals and opens envelopes. Errors never quote the input bytes,
// which may be plaintext.
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Format constants of version 1.
const (
	// Version is the format version this package writes and reads.
	Version byte = 0x01

	// HeaderLen is the length of the fleproxy header (magic, version, mode)
	// that precedes the Tink ciphertext.
	HeaderLen = 5

	// tinkPrefixLen is the length of Tink's TINK output prefix: version byte
	// 0x01 and a 4-byte big-endian key ID (Tink wire format, "Tink output
	// prefix").
	tinkPrefixLen     = 5
	tinkPrefixVersion = 0x01

	// AES-GCM output: 12-byte IV || ciphertext || 16-byte tag (Tink wire
	// format, "AEAD"; RFC 5116).
	gcmOverhead = 12 + 16
	// AES-SIV output: 16-byte SIV || ciphertext (Tink wire format,
	// "Deterministic AEAD"; RFC 5297).
	sivOverhead = 16

	columnLabel = "fleproxy/column/"
)

// magic is the first three bytes of every envelope.
var magic = [3]byte{'F', 'L', 'E'}

// Mode is how a value was encrypted; it is byte 4 of the envelope.
type Mode byte

const (
	// Randomized is Tink AEAD with AES-256-GCM: equal plaintexts give
	// different ciphertexts.
	Randomized Mode = 0x01
	// Deterministic is Tink Deterministic AEAD with AES-SIV: equal plaintexts
	// in the same column under the same key give equal ciphertexts, so the
	// database can compare them. The value is reserved; the keys package
	// does not produce it yet.
	Deterministic Mode = 0x02
)

// String returns "randomized", "deterministic" or "mode(0xNN)".
func (m Mode) String() string {
	switch m {
	case Randomized:
		return "randomized"
	case Deterministic:
		return "deterministic"
	default:
		return fmt.Sprintf("mode(0x%02x)", byte(m))
	}
}

// valid reports whether m is a mode defined by format version 1.
func (m Mode) valid() bool { return m == Randomized || m == Deterministic }

// MinLength returns the length in bytes of the shortest well-formed envelope
// in mode m, the encryption of an empty plaintext: 38 for Randomized, 26 for
// Deterministic, and 0 for an undefined mode. It is also the overhead a raw
// envelope adds to any plaintext.
func MinLength(m Mode) int {
	switch m {
	case Randomized:
		return HeaderLen + tinkPrefixLen + gcmOverhead
	case Deterministic:
		return HeaderLen + tinkPrefixLen + sivOverhead
	default:
		return 0
	}
}

// Header returns the 5 header bytes of a version 1 envelope in mode m.
func Header(m Mode) [HeaderLen]byte {
	return [HeaderLen]byte{magic[0], magic[1], magic[2], Version, byte(m)}
}

// AssociatedData returns the associated data the Tink primitive must
// authenticate for a value of column columnID in mode m:
//
//	Header(m) || "fleproxy/column/" || columnID
//
// columnID is the stable column identity from the policy, not a table OID or
// a name, so dump/restore and renames keep values decryptable while a value
// copied to another column fails to decrypt. Binding the header means a
// value cannot be relabelled with another mode or format version.
// The header has a fixed length and the label is fixed, so distinct
// (mode, columnID) pairs never give the same associated data.
func AssociatedData(m Mode, columnID string) []byte {
	h := Header(m)
	ad := make([]byte, 0, HeaderLen+len(columnLabel)+len(columnID))
	ad = append(ad, h[:]...)
	ad = append(ad, columnLabel...)
	return append(ad, columnID...)
}

// Parse checks that b is a well-formed version 1 envelope and returns its
// mode and the Tink ciphertext (b[5:], aliasing b, starting with the TINK
// output prefix). It checks the magic, version, mode, Tink prefix version and
// the minimum length for the mode; it cannot check authenticity, which only
// decryption does.
//
// Every error satisfies errors.Is(err, [ErrNotCiphertext]); the more specific
// [ErrUnsupportedVersion], [ErrUnknownMode] and [ErrTruncated] tell why.
func Parse(b []byte) (mode Mode, tinkCiphertext []byte, err error) {
	if len(b) < HeaderLen || b[0] != magic[0] || b[1] != magic[1] || b[2] != magic[2] {
		return 0, nil, &formatError{reason: errNoMagic}
	}
	if b[3] != Version {
		return 0, nil, &formatError{reason: ErrUnsupportedVersion}
	}
	mode = Mode(b[4])
	if !mode.valid() {
		return 0, nil, &formatError{reason: ErrUnknownMode}
	}
	if len(b) < MinLength(mode) {
		return 0, nil, &formatError{reason: ErrTruncated, detail: fmt.Sprintf("%d bytes, a %s envelope has at least %d", len(b), mode, MinLength(mode))}
	}
	if b[HeaderLen] != tinkPrefixVersion {
		return 0, nil, &formatError{reason: errTinkPrefix}
	}
	return mode, b[HeaderLen:], nil
}

// KeyID returns the Tink key ID named by the envelope raw (bytes 6..9,
// big-endian): the data key that encrypted it. Rotation and retirement use it
// to find values still under an old key. The ID is a hint Tink does not
// authenticate on its own; decryption with that key is what proves it.
// Errors are those of [Parse].
func KeyID(raw []byte) (uint32, error) {
	_, ct, err := Parse(raw)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(ct[1:tinkPrefixLen]), nil
}

// Errors returned by [Parse], [KeyID] and [Dearmor]. Each error those return
// wraps [ErrNotCiphertext] and at most one of the others.
var (
	// ErrNotCiphertext: the value is not a well-formed fleproxy envelope
	// (for example, plaintext written around the proxy).
	ErrNotCiphertext = errors.New("not a fleproxy ciphertext")
	// ErrUnsupportedVersion: the magic matches but the format version is not
	// one this build reads.
	ErrUnsupportedVersion = errors.New("unsupported format version")
	// ErrUnknownMode: the mode byte is not one of the defined modes.
	ErrUnknownMode = errors.New("unknown mode")
	// ErrTruncated: the value is shorter than the smallest envelope of its
	// mode.
	ErrTruncated = errors.New("truncated")
	// ErrArmor: a [Text] value lacks the "fle1:" prefix or is not canonical
	// unpadded base64url.
	ErrArmor = errors.New("bad text armour")

	errNoMagic    = errors.New("missing magic")
	errTinkPrefix = errors.New("not a TINK output prefix")
)

// formatError describes why a value is not an envelope, by reason and sizes
// only: it never quotes the input.
type formatError struct {
	reason error
	detail string
}

func (e *formatError) Error() string {
	s := "envelope: " + ErrNotCiphertext.Error() + ": " + e.reason.Error()
	if e.detail != "" {
		s += ": " + e.detail
	}
	return s
}

func (e *formatError) Unwrap() []error { return []error{ErrNotCiphertext, e.reason} }
