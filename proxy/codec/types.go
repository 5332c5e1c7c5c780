package codec

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// kind identifies a supported logical type. The zero kind is invalid, so the
// zero Type is rejected by every conversion.
type kind uint8

const (
	kindInvalid kind = iota
	kindText
	kindVarchar
	kindBpchar
	kindInt2
	kindInt4
	kindInt8
	kindNumeric
	kindBool
	kindDate
	kindTimestamp
	kindTimestamptz
	kindUUID
	kindJSONB
	kindJSON
	kindBytea
	kindFloat4
	kindFloat8
)

// typeInfo is the catalog row (pg_type) of a supported type.
type typeInfo struct {
	name    string // pg_type.typname
	sqlName string // format_type() spelling without modifiers, used in messages
	oid     uint32
	len     int16 // pg_type.typlen
}

var typeInfos = [...]typeInfo{
	kindInvalid:     {},
	kindText:        {"text", "text", pgtype.TextOID, -1},
	kindVarchar:     {"varchar", "character varying", pgtype.VarcharOID, -1},
	kindBpchar:      {"bpchar", "character", pgtype.BPCharOID, -1},
	kindInt2:        {"int2", "smallint", pgtype.Int2OID, 2},
	kindInt4:        {"int4", "integer", pgtype.Int4OID, 4},
	kindInt8:        {"int8", "bigint", pgtype.Int8OID, 8},
	kindNumeric:     {"numeric", "numeric", pgtype.NumericOID, -1},
	kindBool:        {"bool", "boolean", pgtype.BoolOID, 1},
	kindDate:        {"date", "date", pgtype.DateOID, 4},
	kindTimestamp:   {"timestamp", "timestamp", pgtype.TimestampOID, 8},
	kindTimestamptz: {"timestamptz", "timestamp with time zone", pgtype.TimestamptzOID, 8},
	kindUUID:        {"uuid", "uuid", pgtype.UUIDOID, 16},
	kindJSONB:       {"jsonb", "jsonb", pgtype.JSONBOID, -1},
	kindJSON:        {"json", "json", pgtype.JSONOID, -1},
	kindBytea:       {"bytea", "bytea", pgtype.ByteaOID, -1},
	kindFloat4:      {"float4", "real", pgtype.Float4OID, 4},
	kindFloat8:      {"float8", "double precision", pgtype.Float8OID, 8},
}

// Type is a logical type of a protected column: what the client sees in
// RowDescription and ParameterDescription (type OID, typlen, atttypmod) and
// what governs the canonical plaintext. Obtain one from Lookup or ForOID; the
// zero Type is invalid.
type Type struct {
	// Name is pg_type.typname ("int4", "timestamptz", "varchar", ...).
	Name string
	// OID is the pg_type OID sent in RowDescription/ParameterDescription.
	OID uint32
	// Len is pg_type.typlen, the "data type size" field of RowDescription
	// (-1 for variable-length types).
	Len int16
	// Typmod is the type modifier (pg_attribute.atttypmod), -1 when none:
	// n+4 for varchar(n)/char(n), ((p<<16)|(s&0x7ff))+4 for numeric(p,s),
	// p for timestamp(p). Canonical applies it the way an assignment to a
	// column of that type does (length check, rounding).
	Typmod int32

	kind kind
}

// sqlName is the type name PostgreSQL uses in its error messages.
func (t Type) sqlName() string {
	if int(t.kind) < len(typeInfos) && t.kind != kindInvalid {
		return typeInfos[t.kind].sqlName
	}
	return "unknown"
}

// String returns the type as format_type() spells it, e.g. "integer",
// "character varying(20)", "numeric(10,2)", "timestamp(3) with time zone".
func (t Type) String() string {
	switch t.kind {
	case kindInvalid:
		return "invalid"
	case kindVarchar, kindBpchar:
		if t.Typmod >= 4 {
			return t.sqlName() + "(" + strconv.Itoa(int(t.Typmod-4)) + ")"
		}
		if t.kind == kindBpchar {
			return "bpchar"
		}
	case kindNumeric:
		if p, s, ok := numericTypmod(t.Typmod); ok {
			return "numeric(" + strconv.Itoa(p) + "," + strconv.Itoa(s) + ")"
		}
	case kindTimestamp, kindTimestamptz:
		zone := " without time zone"
		if t.kind == kindTimestamptz {
			zone = " with time zone"
		}
		if t.Typmod >= 0 {
			return "timestamp(" + strconv.Itoa(int(t.Typmod)) + ")" + zone
		}
		return "timestamp" + zone
	}
	return t.sqlName()
}

func makeType(k kind, typmod int32) Type {
	ti := typeInfos[k]
	return Type{Name: ti.name, OID: ti.oid, Len: ti.len, Typmod: typmod, kind: k}
}

// aliases maps a type name, lower-cased with single spaces and without its
// modifier, to its kind. The spellings are those of the SQL grammar
// (src/backend/parser/gram.y, SimpleTypename) and of pg_type.typname.
var aliases = map[string]kind{
	"text":                        kindText,
	"varchar":                     kindVarchar,
	"character varying":           kindVarchar,
	"char varying":                kindVarchar,
	"bpchar":                      kindBpchar,
	"char":                        kindBpchar,
	"character":                   kindBpchar,
	"int2":                        kindInt2,
	"smallint":                    kindInt2,
	"int4":                        kindInt4,
	"int":                         kindInt4,
	"integer":                     kindInt4,
	"int8":                        kindInt8,
	"bigint":                      kindInt8,
	"numeric":                     kindNumeric,
	"decimal":                     kindNumeric,
	"bool":                        kindBool,
	"boolean":                     kindBool,
	"date":                        kindDate,
	"timestamp":                   kindTimestamp,
	"timestamp without time zone": kindTimestamp,
	"timestamptz":                 kindTimestamptz,
	"timestamp with time zone":    kindTimestamptz,
	"uuid":                        kindUUID,
	"jsonb":                       kindJSONB,
	"json":                        kindJSON,
	"bytea":                       kindBytea,
	"float4":                      kindFloat4,
	"real":                        kindFloat4,
	"float8":                      kindFloat8,
	"double precision":            kindFloat8,
	"float":                       kindFloat8,
}

// Lookup returns the logical type named name: a pg_type name or an SQL
// spelling, case-insensitive, optionally schema-qualified with pg_catalog and
// optionally with a type modifier, e.g. "int4", "integer", "varchar(40)",
// "character varying", "char(2)", "numeric(12,2)", "timestamp(3) with time
// zone", "float(24)". As in SQL, "char"/"character" without a length means
// character(1). It reports false for an unsupported type or a modifier
// PostgreSQL would reject.
func Lookup(name string) (Type, bool) {
	s := strings.ToLower(strings.TrimSpace(name))
	s = strings.TrimPrefix(s, "pg_catalog.")
	var args []int
	if open := strings.IndexByte(s, '('); open >= 0 {
		end := strings.IndexByte(s[open:], ')')
		if end < 0 {
			return Type{}, false
		}
		end += open
		for _, a := range strings.Split(s[open+1:end], ",") {
			n, err := strconv.Atoi(strings.TrimSpace(a))
			if err != nil {
				return Type{}, false
			}
			args = append(args, n)
		}
		s = s[:open] + " " + s[end+1:]
	}
	s = strings.Join(strings.Fields(s), " ")
	k, ok := aliases[s]
	if !ok {
		return Type{}, false
	}
	typmod := int32(-1)
	switch k {
	case kindVarchar, kindBpchar:
		if len(args) == 0 && (s == "char" || s == "character") {
			args = []int{1}
		}
		if len(args) > 1 {
			return Type{}, false
		}
		if len(args) == 1 {
			// src/backend/utils/adt/varchar.c, anychar_typmodin: 1..MaxAttrSize.
			if args[0] < 1 || args[0] > 10485760 {
				return Type{}, false
			}
			typmod = int32(args[0]) + 4
		}
	case kindNumeric:
		// src/backend/utils/adt/numeric.c, numerictypmodin.
		switch len(args) {
		case 0:
		case 1, 2:
			p, sc := args[0], 0
			if len(args) == 2 {
				sc = args[1]
			}
			if p < 1 || p > 1000 || sc < -1000 || sc > 1000 {
				return Type{}, false
			}
			typmod = int32((p<<16)|(sc&0x7ff)) + 4
		default:
			return Type{}, false
		}
	case kindTimestamp, kindTimestamptz:
		// src/backend/utils/adt/timestamp.c, anytimestamp_typmod_check:
		// precisions above 6 are reduced to 6.
		switch len(args) {
		case 0:
		case 1:
			if args[0] < 0 {
				return Type{}, false
			}
			typmod = int32(min(args[0], 6))
		default:
			return Type{}, false
		}
	case kindFloat8:
		// float(p): src/backend/parser/gram.y, opt_float.
		if s == "float" && len(args) == 1 {
			switch {
			case args[0] >= 1 && args[0] <= 24:
				k = kindFloat4
			case args[0] >= 25 && args[0] <= 53:
			default:
				return Type{}, false
			}
			args = nil
		}
		if len(args) != 0 {
			return Type{}, false
		}
	default:
		if len(args) != 0 {
			return Type{}, false
		}
	}
	return makeType(k, typmod), true
}

// ForOID returns the logical type with pg_type OID oid and type modifier
// typmod (pg_attribute.atttypmod; -1 for none), as found in the catalog.
func ForOID(oid uint32, typmod int32) (Type, bool) {
	for k := kindText; int(k) < len(typeInfos); k++ {
		if typeInfos[k].oid != oid {
			continue
		}
		switch k {
		case kindVarchar, kindBpchar:
			if typmod >= 0 && typmod < 5 {
				return Type{}, false
			}
		case kindNumeric:
			if _, _, ok := numericTypmod(typmod); !ok && typmod != -1 {
				return Type{}, false
			}
		case kindTimestamp, kindTimestamptz:
			if typmod > 6 {
				return Type{}, false
			}
		default:
			typmod = -1
		}
		if typmod < -1 {
			typmod = -1
		}
		return makeType(k, typmod), true
	}
	return Type{}, false
}

// numericTypmod decodes a numeric type modifier into precision and scale
// (src/backend/utils/adt/numeric.c, is_valid_numeric_typmod and
// numeric_typmod_scale).
func numericTypmod(typmod int32) (precision, scale int, ok bool) {
	if typmod < 4 {
		return 0, 0, false
	}
	v := typmod - 4
	precision = int(v>>16) & 0xffff
	scale = int(((v & 0x7ff) ^ 1024) - 1024)
	return precision, scale, precision >= 1 && precision <= 1000
}
