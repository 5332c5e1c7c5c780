package envelope

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// Storage is the column type an envelope is stored in.
type Storage int

const (
	// Bytea stores the raw envelope bytes in a bytea column.
	Bytea Storage = iota + 1
	// Text stores the armoured envelope ([Armor]) in a text or varchar
	// column, so an existing character column needs no type change.
	Text
)

// String returns "bytea", "text" or "storage(N)".
func (s Storage) String() string {
	switch s {
	case Bytea:
		return "bytea"
	case Text:
		return "text"
	default:
		return "storage(" + strconv.Itoa(int(s)) + ")"
	}
}

// ErrUnknownStorage is returned by [ParseStorage] for an unknown spelling.
var ErrUnknownStorage = errors.New("unknown storage")

// ParseStorage parses the policy spelling of a storage, "bytea" or "text"
// (exactly, lower case). Other input gives an error wrapping
// [ErrUnknownStorage].
func ParseStorage(s string) (Storage, error) {
	switch s {
	case "bytea":
		return Bytea, nil
	case "text":
		return Text, nil
	default:
		return 0, fmt.Errorf("envelope: %w %q (want \"bytea\" or \"text\")", ErrUnknownStorage, s)
	}
}

// ArmorPrefix starts every [Text] value; "1" is the format version.
const ArmorPrefix = "fle1:"

// armorEncoding is unpadded base64url (RFC 4648 §5). Strict rejects
// non-zero trailing bits, so each envelope has exactly one text form.
var armorEncoding = base64.RawURLEncoding.Strict()

// ArmoredLen returns the length in bytes of the [Text] form of a raw envelope
// of rawLen bytes: 5 + ceil(4*rawLen/3).
func ArmoredLen(rawLen int) int { return len(ArmorPrefix) + armorEncoding.EncodedLen(rawLen) }

// Armor returns the [Text] form of a raw envelope: "fle1:" followed by the
// unpadded base64url encoding of raw. It does not check raw.
func Armor(raw []byte) []byte {
	out := make([]byte, ArmoredLen(len(raw)))
	copy(out, ArmorPrefix)
	armorEncoding.Encode(out[len(ArmorPrefix):], raw)
	return out
}

// Dearmor reverses [Armor] and checks the result with [Parse]. It accepts
// only the canonical form: the "fle1:" prefix, then base64url characters
// (A-Z a-z 0-9 - _) without padding, line breaks or spaces, with zero
// trailing bits. Errors satisfy errors.Is(err, [ErrNotCiphertext]).
func Dearmor(text []byte) ([]byte, error) {
	if len(text) < len(ArmorPrefix) || string(text[:len(ArmorPrefix)]) != ArmorPrefix {
		return nil, &formatError{reason: ErrArmor, detail: "missing " + strconv.Quote(ArmorPrefix) + " prefix"}
	}
	enc := text[len(ArmorPrefix):]
	// encoding/base64 skips '\r' and '\n'; the CHECK constraint does not, so
	// neither may Dearmor.
	for _, c := range enc {
		if !isBase64URL(c) {
			return nil, &formatError{reason: ErrArmor, detail: "character outside the base64url alphabet"}
		}
	}
	raw := make([]byte, armorEncoding.DecodedLen(len(enc)))
	n, err := armorEncoding.Decode(raw, enc)
	if err != nil {
		return nil, &formatError{reason: ErrArmor, detail: "not canonical unpadded base64url"}
	}
	raw = raw[:n]
	if _, _, err := Parse(raw); err != nil {
		return nil, err
	}
	return raw, nil
}

func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// CheckExpression returns a PostgreSQL boolean expression, for a CHECK
// constraint or a domain, that is true exactly when the column is NULL or
// holds a well-formed version 1 envelope in storage s: right magic, version,
// mode, Tink prefix version and at least the minimum length for the mode.
// quotedColumn is an already-quoted identifier (or VALUE, for a domain) and
// is inserted verbatim. An unknown storage gives "false".
//
// The expression cannot check authenticity (that needs the key), only that
// the value is shaped like a ciphertext, which is enough to refuse plaintext
// written by a connection that bypasses the proxy. It uses only immutable
// built-ins and no function that can raise an error on short input, so a bad
// value fails with check_violation (SQLSTATE 23514) and nothing else, and the
// literals mean the same whatever standard_conforming_strings is.
//
// For Bytea it compares byte prefixes with substring (which never fails on
// short values, unlike get_byte); for Text it matches a regular expression
// that pins the base64url image of the first six bytes: "RkxF" is "FLE",
// "AQEB" is 0x01 0x01 0x01 (version, Randomized, TINK) and "AQIB" is
// 0x01 0x02 0x01 (version, Deterministic, TINK), and rejects lengths no
// base64 text has. Non-canonical trailing bits pass the CHECK but fail
// [Dearmor].
func CheckExpression(quotedColumn string, s Storage) string {
	c := quotedColumn
	switch s {
	case Bytea:
		return fmt.Sprintf("(%[1]s IS NULL OR ("+
			"substring(%[1]s from 1 for 4) = E'\\\\x464c4501'::bytea AND ("+
			"(substring(%[1]s from 5 for 2) = E'\\\\x0101'::bytea AND octet_length(%[1]s) >= %[2]d) OR "+
			"(substring(%[1]s from 5 for 2) = E'\\\\x0201'::bytea AND octet_length(%[1]s) >= %[3]d))))",
			c, MinLength(Randomized), MinLength(Deterministic))
	case Text:
		// After the 8 pinned characters, the remaining characters of the
		// shortest envelope of each mode.
		r := armorEncoding.EncodedLen(MinLength(Randomized)) - 8
		d := armorEncoding.EncodedLen(MinLength(Deterministic)) - 8
		// A base64 text of 4k+1 characters (here: total length 4k+2) never
		// decodes.
		return fmt.Sprintf("(%[1]s IS NULL OR (%[1]s ~ '^fle1:RkxFAQ(EB[A-Za-z0-9_-]{%[2]d,}|IB[A-Za-z0-9_-]{%[3]d,})$' AND length(%[1]s) %% 4 <> 2))",
			c, r, d)
	default:
		return "false"
	}
}
