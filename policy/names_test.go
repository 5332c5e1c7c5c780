package policy

import (
	"strings"
	"testing"
)

func TestParseColumnName(t *testing.T) {
	tests := []struct {
		in      string
		want    ColumnName
		wantErr string
		str     string
	}{
		{in: "public.customer.email", want: ColumnName{"public", "customer", "email"}, str: "public.customer.email"},
		{in: "Public.CUSTOMER.Email", want: ColumnName{"public", "customer", "email"}, str: "public.customer.email"},
		{in: `public."Customer".email`, want: ColumnName{"public", "Customer", "email"}, str: `public."Customer".email`},
		{in: `"public"."customer"."email"`, want: ColumnName{"public", "customer", "email"}, str: "public.customer.email"},
		{in: `s."a.b"."c""d"`, want: ColumnName{"s", "a.b", `c"d`}, str: `s."a.b"."c""d"`},
		{in: `s.t."1st"`, want: ColumnName{"s", "t", "1st"}, str: `s.t."1st"`},
		{in: "_s.t$1.c_2", want: ColumnName{"_s", "t$1", "c_2"}, str: `_s."t$1".c_2`},
		{in: "s.Straße.c", want: ColumnName{"s", "straße", "c"}, str: `s."straße".c`},
		{in: `s."ÉTÉ".c`, want: ColumnName{"s", "ÉTÉ", "c"}, str: `s."ÉTÉ".c`},
		{in: "s." + strings.Repeat("a", 63) + ".c", want: ColumnName{"s", strings.Repeat("a", 63), "c"}, str: "s." + strings.Repeat("a", 63) + ".c"},
		{in: "", wantErr: "empty name"},
		{in: "a.b", wantErr: "want schema.table.column, got 2 part(s)"},
		{in: "a . b . c", wantErr: `unexpected " " at offset 1`},
		{in: `a."b`, wantErr: "unterminated quoted identifier"},
		{in: `a."b"c.d`, wantErr: `unexpected "c" at offset 5`},
		{in: `a."".c`, wantErr: "zero-length quoted identifier"},
		{in: "a.b.c.", wantErr: "name ends with '.'"},
		{in: ".b.c", wantErr: "empty identifier at offset 0"},
		{in: "$a.b.c", wantErr: `unexpected "$" at offset 0 (quote the identifier)`},
		{in: "a.b.\xff", wantErr: "not valid UTF-8"},
		{in: "a.\"b\x00\".c", wantErr: "identifier contains NUL"},
		{in: "s." + strings.Repeat("a", 64) + ".c", wantErr: "is longer than 63 bytes"},
		{in: `s."` + strings.Repeat("a", 64) + `".c`, wantErr: "is longer than 63 bytes"},
	}
	for _, tt := range tests {
		got, err := ParseColumnName(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseColumnName(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseColumnName(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.str {
			t.Errorf("String() = %q, want %q", s, tt.str)
		}
		if again, err := ParseColumnName(got.String()); err != nil || again != got {
			t.Errorf("String() %q does not round-trip: %#v, %v", got.String(), again, err)
		}
	}
}

func TestParseType(t *testing.T) {
	for in, want := range map[string]Type{
		"text": TypeText, "TEXT": TypeText,
		"varchar": TypeVarchar, "character  varying": TypeVarchar, "char varying": TypeVarchar,
		"pg_catalog.int4": TypeInt4, "PG_CATALOG.text": TypeText,
		"bpchar": TypeBpchar, "character": TypeBpchar, "char": TypeBpchar,
		"int2": TypeInt2, "smallint": TypeInt2,
		"int4": TypeInt4, "integer": TypeInt4, "int": TypeInt4,
		"int8": TypeInt8, "bigint": TypeInt8,
		"numeric": TypeNumeric, "decimal": TypeNumeric,
		"bool": TypeBool, "boolean": TypeBool,
		"date":      TypeDate,
		"timestamp": TypeTimestamp, "timestamp without time zone": TypeTimestamp,
		"timestamptz": TypeTimestamptz, "Timestamp With Time Zone": TypeTimestamptz,
		"uuid": TypeUUID, "jsonb": TypeJSONB, "json": TypeJSON, "bytea": TypeBytea,
		"float4": TypeFloat4, "real": TypeFloat4,
		"float8": TypeFloat8, "double precision": TypeFloat8, "float": TypeFloat8,
	} {
		if got, err := ParseType(in); err != nil || got != want {
			t.Errorf("ParseType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, typ := range Types() {
		if got, err := ParseType(string(typ)); err != nil || got != typ {
			t.Errorf("ParseType(%q) = %q, %v", typ, got, err)
		}
	}
	for in, want := range map[string]string{
		"":              "empty type",
		"strng":         `unknown type "strng"`,
		"varchar(10)":   `type modifiers are not supported: write "varchar" instead of "varchar(10)"`,
		"numeric(10,2)": `type modifiers are not supported: write "numeric" instead of "numeric(10,2)"`,
		"foo(1)":        `unknown type "foo(1)"`,
		"int[]":         `array types are not supported: "int[]"`,
		"_int4":         `array types are not supported: "_int4"`,
		"interval":      `unknown type "interval"`,
	} {
		if _, err := ParseType(in); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ParseType(%q) error = %v, want %q", in, err, want)
		}
	}
}
