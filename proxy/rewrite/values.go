package rewrite

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/proxy/codec"
)

// Wire format codes (PostgreSQL protocol §55.7, Bind and RowDescription).
const (
	formatText   int16 = 0
	formatBinary int16 = 1
)

// encrypt turns one client value of cc's logical type, in wire format, into the stored
// ciphertext in the binary wire format of the storage type: the raw envelope for bytea, the
// armoured envelope for text (whose binary format is its bytes).
func (cc *columnCrypto) encrypt(format int16, value []byte, sess *codec.Session) ([]byte, error) {
	plain, err := codec.Canonical(cc.typ, format, value, sess)
	if err != nil {
		return nil, err
	}
	raw, err := cc.cipher.Encrypt(plain)
	if err != nil {
		return nil, fmt.Errorf("encrypting a value for column %s: %w", cc.col.Name, err)
	}
	if cc.storage == envelope.Text {
		return envelope.Armor(raw), nil
	}
	return raw, nil
}

// storedText returns stored (binary wire format of the storage type) in the storage type's text
// format: bytea's hex format (PostgreSQL §8.4.1) or the armoured text itself.
func (cc *columnCrypto) storedText(stored []byte) []byte {
	if cc.storage == envelope.Text {
		return stored
	}
	out := make([]byte, 2+hex.EncodedLen(len(stored)))
	copy(out, `\x`)
	hex.Encode(out[2:], stored)
	return out
}

// sqlConstant returns stored as a SQL constant that the server reads as the storage type whatever
// standard_conforming_strings says.
func (cc *columnCrypto) sqlConstant(stored []byte) string {
	if cc.storage == envelope.Text {
		// The armoured alphabet (base64url and the prefix) needs no quoting.
		return "'" + string(stored) + "'"
	}
	return `E'\\x` + hex.EncodeToString(stored) + "'"
}

// errDecrypt is returned for a stored value that is not a valid ciphertext of its column.
var errDecrypt = errors.New("value failed to decrypt")

// appendDecrypted decrypts a stored value received in wire format and appends the plaintext in
// the same format, as the logical type.
func (cc *columnCrypto) appendDecrypted(dst []byte, format int16, stored []byte, sess *codec.Session) ([]byte, error) {
	plain, err := cc.decryptCanonical(format, stored)
	if err != nil {
		return dst, err
	}
	return codec.AppendWire(dst, cc.typ, format, plain, sess)
}

// decryptCanonical decrypts a stored value received in wire format to its canonical plaintext.
func (cc *columnCrypto) decryptCanonical(format int16, stored []byte) ([]byte, error) {
	var raw []byte
	var err error
	switch {
	case cc.storage == envelope.Text:
		raw, err = envelope.Dearmor(stored)
	case format == formatText:
		raw, err = decodeByteaHex(stored)
	default:
		raw = stored
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDecrypt, err)
	}
	plain, err := cc.cipher.Decrypt(raw)
	if err != nil {
		var de *keys.DecryptError
		if errors.As(err, &de) {
			return nil, fmt.Errorf("%w: %w", errDecrypt, de)
		}
		return nil, fmt.Errorf("%w: %w", errDecrypt, err)
	}
	return plain, nil
}

// decodeByteaHex decodes bytea's hex text format, \x followed by hex digits (PostgreSQL §8.4.1).
// The server always sends bytea in this form while bytea_output is hex, its default.
func decodeByteaHex(s []byte) ([]byte, error) {
	if len(s) < 2 || s[0] != '\\' || s[1] != 'x' {
		return nil, errors.New("bytea value is not in hex format (bytea_output must be hex)")
	}
	out := make([]byte, hex.DecodedLen(len(s)-2))
	if _, err := hex.Decode(out, s[2:]); err != nil {
		return nil, errors.New("malformed bytea hex value")
	}
	return out, nil
}

// appendMasked decrypts a stored value and appends the column's mask of it (policy clearance
// "mask"): only text-like logical types have masks (the policy refuses others), whose canonical
// plaintext is the text itself.
func (cc *columnCrypto) appendMasked(dst []byte, format int16, stored []byte, sess *codec.Session) ([]byte, error) {
	plain, err := cc.decryptCanonical(format, stored)
	if err != nil {
		return dst, err
	}
	masked := cc.col.MaskText(string(plain))
	return codec.AppendWire(dst, cc.typ, format, []byte(masked), sess)
}
