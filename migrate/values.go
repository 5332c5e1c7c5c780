package migrate

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy/codec"
)

// outcome is what a job does with one stored value.
type outcome uint8

const (
	outChange  outcome = iota // rewrite it
	outCurrent                // already in the target form
	outFailed                 // cannot be converted
)

// converter computes the new stored value of one column for one job kind.
// It never puts a value in an error or a reason.
type converter struct {
	kind    Kind
	cipher  *keys.ColumnCipher
	typ     codec.Type
	storage envelope.Storage
	// rawPlain: the plaintext is stored as the canonical bytes themselves (a
	// logical bytea in a bytea column). Otherwise it is stored as its text
	// form: in a text column, or as UTF-8 bytes in a bytea column.
	rawPlain bool
	maxChars int // varchar(n) limit, or -1
	primary  uint32
	session  *codec.Session
}

// envelopeOf returns the raw envelope stored in v, if v is shaped like one.
func (c *converter) envelopeOf(v []byte) ([]byte, bool) {
	if c.storage == envelope.Text {
		raw, err := envelope.Dearmor(v)
		return raw, err == nil
	}
	if _, _, err := envelope.Parse(v); err != nil {
		return nil, false
	}
	return v, true
}

// stored returns the stored form of a raw envelope.
func (c *converter) stored(raw []byte) []byte {
	if c.storage == envelope.Text {
		return envelope.Armor(raw)
	}
	return raw
}

// convert returns the new stored value for v (not NULL), or why there is
// none.
func (c *converter) convert(v []byte) ([]byte, outcome, string) {
	switch c.kind {
	case KindEncrypt:
		return c.encrypt(v)
	case KindDecrypt:
		return c.decrypt(v)
	default:
		return c.reencrypt(v)
	}
}

func (c *converter) encrypt(v []byte) ([]byte, outcome, string) {
	if raw, ok := c.envelopeOf(v); ok {
		if _, err := c.cipher.Decrypt(raw); err != nil {
			return nil, outFailed, "shaped like a fleproxy ciphertext but does not decrypt as one of this column: " + decryptReason(err)
		}
		return nil, outCurrent, ""
	}
	format := codec.FormatText
	if c.rawPlain {
		format = codec.FormatBinary
	}
	canonical, err := codec.Canonical(c.typ, format, v, c.session)
	if err != nil {
		return nil, outFailed, fmt.Sprintf("not a valid %s value: %s", c.typ, codecReason(err))
	}
	raw, err := c.cipher.Encrypt(canonical)
	if err != nil {
		return nil, outFailed, err.Error()
	}
	return c.fit(c.stored(raw))
}

func (c *converter) decrypt(v []byte) ([]byte, outcome, string) {
	raw, ok := c.envelopeOf(v)
	if !ok {
		return nil, outCurrent, ""
	}
	pt, err := c.cipher.Decrypt(raw)
	if err != nil {
		return nil, outFailed, "does not decrypt: " + decryptReason(err)
	}
	if c.rawPlain {
		return pt, outChange, ""
	}
	text, err := codec.Wire(c.typ, codec.FormatText, pt, c.session)
	if err != nil {
		return nil, outFailed, fmt.Sprintf("decrypts, but not to a %s value: %s", c.typ, codecReason(err))
	}
	return c.fit(text)
}

func (c *converter) reencrypt(v []byte) ([]byte, outcome, string) {
	raw, ok := c.envelopeOf(v)
	if !ok {
		return nil, outFailed, "not a fleproxy ciphertext (plaintext written around the proxy? encrypt the column first)"
	}
	id, err := envelope.KeyID(raw)
	if err != nil {
		return nil, outFailed, "not a fleproxy ciphertext"
	}
	if id == c.primary {
		return nil, outCurrent, ""
	}
	pt, err := c.cipher.Decrypt(raw)
	if err != nil {
		return nil, outFailed, "does not decrypt: " + decryptReason(err)
	}
	out, err := c.cipher.Encrypt(pt)
	if err != nil {
		return nil, outFailed, err.Error()
	}
	return c.fit(c.stored(out))
}

// fit checks that a new value fits a varchar(n) column, which would
// otherwise fail the whole batch's UPDATE.
func (c *converter) fit(v []byte) ([]byte, outcome, string) {
	if c.maxChars >= 0 {
		if n := utf8.RuneCount(v); n > c.maxChars {
			return nil, outFailed, fmt.Sprintf("the new value has %d characters, more than the column's limit of %d: widen the column", n, c.maxChars)
		}
	}
	return v, outChange, ""
}

// decryptReason is the non-secret reason of a decryption failure.
func decryptReason(err error) string {
	var de *keys.DecryptError
	if errors.As(err, &de) {
		s := de.Reason.String()
		if de.KeyID != 0 {
			s += fmt.Sprintf(" (data key %08x)", de.KeyID)
		}
		return s
	}
	return "decryption failed"
}

// codecReason is the message of a codec error, which names the type but
// never the value.
func codecReason(err error) string {
	var ce *codec.Error
	if errors.As(err, &ce) {
		return ce.Message
	}
	return "conversion failed"
}

// checkStorage checks that the column's type can hold the policy's storage,
// and for encrypt on a column that is not bytea, returns the ALTER TABLE the
// administrator must run first.
func checkStorage(job Job, t *table) error {
	col := job.Column
	switch col.Storage {
	case policy.StorageBytea:
		if t.baseType == oidBytea {
			return nil
		}
		if job.Kind == KindEncrypt {
			return &NeedsAlterError{Column: col.Name.String(), Type: t.colType, Statement: alterStatement(col, t)}
		}
		return fmt.Errorf("migrate: column %s has type %s, but the policy stores its ciphertext as bytea, so it cannot hold ciphertext", col.Name, t.colType)
	case policy.StorageText:
		if t.baseType == oidText || t.baseType == oidVarchar {
			return nil
		}
		return fmt.Errorf("migrate: column %s has type %s, but storage text needs a text or varchar column", col.Name, t.colType)
	}
	return fmt.Errorf("migrate: column %s: unknown storage %q", col.Name, col.Storage)
}

// alterStatement is the ALTER TABLE that makes the column bytea, keeping
// what a job reads from it: the text of each value as UTF-8 bytes, which the
// converter reads as the logical type's text form. A logical bytea is the
// exception: in a bytea column the converter reads it as the bytes
// themselves, so its text form is decoded by the cast.
func alterStatement(col *policy.Column, t *table) string {
	q := t.quotedColumn()
	if col.Type == policy.TypeBytea {
		return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE bytea USING %s::text::bytea;", t.ident(), q, q)
	}
	return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE bytea USING convert_to(%s::text, 'UTF8');", t.ident(), q, q)
}

// restoreHint is the SQL that gives a decrypted column its logical type
// back, or "" when it needs none.
func restoreHint(col *policy.Column, t *table) string {
	q := t.quotedColumn()
	switch {
	case col.Type == policy.TypeBytea && t.baseType == oidBytea:
		return ""
	case t.baseType == oidBytea:
		return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING convert_from(%s, 'UTF8')::%s;", t.ident(), q, col.Type, q, col.Type)
	case col.Type == policy.TypeText || col.Type == policy.TypeVarchar:
		return ""
	default:
		return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s;", t.ident(), q, col.Type, q, col.Type)
	}
}
