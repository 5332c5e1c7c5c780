package policy

import (
	"fmt"
	"strings"
)

// Type is the logical PostgreSQL type of a protected column: the type the
// application reads and writes, whatever the database stores. The names are
// the short catalog names the value codecs use.
type Type string

// The logical types a protected column may have.
const (
	TypeText        Type = "text"
	TypeVarchar     Type = "varchar"
	TypeBpchar      Type = "bpchar"
	TypeInt2        Type = "int2"
	TypeInt4        Type = "int4"
	TypeInt8        Type = "int8"
	TypeNumeric     Type = "numeric"
	TypeBool        Type = "bool"
	TypeDate        Type = "date"
	TypeTimestamp   Type = "timestamp"
	TypeTimestamptz Type = "timestamptz"
	TypeUUID        Type = "uuid"
	TypeJSONB       Type = "jsonb"
	TypeJSON        Type = "json"
	TypeBytea       Type = "bytea"
	TypeFloat4      Type = "float4"
	TypeFloat8      Type = "float8"
)

// Types returns every logical type, in a fixed order.
func Types() []Type {
	return []Type{
		TypeText, TypeVarchar, TypeBpchar, TypeInt2, TypeInt4, TypeInt8, TypeNumeric,
		TypeBool, TypeDate, TypeTimestamp, TypeTimestamptz, TypeUUID, TypeJSONB,
		TypeJSON, TypeBytea, TypeFloat4, TypeFloat8,
	}
}

// ParseType returns the logical type that s names. It accepts the short names
// of [Types] and the SQL spellings PostgreSQL accepts for them (integer,
// bigint, boolean, character varying, double precision, timestamp with time
// zone, …), in any case and spacing, optionally qualified with pg_catalog. Type modifiers (varchar(255),
// numeric(10,2)) and arrays are not supported and are reported as such.
func ParseType(s string) (Type, error) {
	norm := strings.Join(strings.Fields(strings.ToLower(s)), " ")
	norm = strings.TrimPrefix(norm, "pg_catalog.")
	switch {
	case norm == "":
		return "", fmt.Errorf("empty type")
	case strings.Contains(norm, "("):
		base := strings.TrimSpace(norm[:strings.Index(norm, "(")])
		if t, err := ParseType(base); err == nil {
			return "", fmt.Errorf("type modifiers are not supported: write %q instead of %q", string(t), s)
		}
		return "", fmt.Errorf("unknown type %q", s)
	case strings.HasSuffix(norm, "]") || strings.HasPrefix(norm, "_"):
		return "", fmt.Errorf("array types are not supported: %q", s)
	}
	switch norm {
	case "text":
		return TypeText, nil
	case "varchar", "character varying", "char varying":
		return TypeVarchar, nil
	case "bpchar", "char", "character":
		return TypeBpchar, nil
	case "int2", "smallint":
		return TypeInt2, nil
	case "int4", "int", "integer":
		return TypeInt4, nil
	case "int8", "bigint":
		return TypeInt8, nil
	case "numeric", "decimal":
		return TypeNumeric, nil
	case "bool", "boolean":
		return TypeBool, nil
	case "date":
		return TypeDate, nil
	case "timestamp", "timestamp without time zone":
		return TypeTimestamp, nil
	case "timestamptz", "timestamp with time zone":
		return TypeTimestamptz, nil
	case "uuid":
		return TypeUUID, nil
	case "jsonb":
		return TypeJSONB, nil
	case "json":
		return TypeJSON, nil
	case "bytea":
		return TypeBytea, nil
	case "float4", "real":
		return TypeFloat4, nil
	case "float8", "double precision", "float":
		return TypeFloat8, nil
	}
	return "", fmt.Errorf("unknown type %q (known: %s)", s, joinTypes())
}

func joinTypes() string {
	ts := Types()
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// Mode is how a protected column is encrypted.
type Mode string

// ModeRandomized encrypts with an AEAD under a fresh nonce: equal plaintexts
// give different ciphertexts, so the column cannot be searched by equality.
const ModeRandomized Mode = "randomized"

// parseMode returns the mode s names; an empty s means randomized.
func parseMode(s string) (Mode, error) {
	switch s {
	case "", string(ModeRandomized):
		return ModeRandomized, nil
	case "deterministic":
		return "", fmt.Errorf("mode %q is not supported yet: use randomized (equality search on protected columns comes later)", s)
	}
	return "", fmt.Errorf("unknown mode %q (known: randomized)", s)
}

// Storage is the database type that holds a protected column's ciphertext.
type Storage string

const (
	// StorageBytea stores the ciphertext as raw bytes in a bytea column.
	StorageBytea Storage = "bytea"
	// StorageText stores the ciphertext armoured as text, for existing text
	// or varchar columns whose type cannot change.
	StorageText Storage = "text"
)

// parseStorage returns the storage s names; an empty s means bytea.
func parseStorage(s string) (Storage, error) {
	switch s {
	case "", string(StorageBytea):
		return StorageBytea, nil
	case string(StorageText):
		return StorageText, nil
	}
	return "", fmt.Errorf("unknown storage %q (known: bytea, text)", s)
}
