package analyze

import (
	"reflect"
	"testing"
)

func strp(s string) *string { return &s }

func TestCopy(t *testing.T) {
	emailCol, phoneCol, postalCol := email, phone, postal
	custFields := func(mod func([]CopyField)) []CopyField {
		f := []CopyField{{Name: "customer_id"}, {Name: "store_id"}, {Name: "first_name"}, {Name: "last_name"},
			{Name: "email", Column: &emailCol}, {Name: "address_id"}, {Name: "active"}}
		if mod != nil {
			mod(f)
		}
		return f
	}
	tests := []struct {
		name string
		sql  string
		want *Copy
	}{
		{name: "text defaults, no column list",
			sql: "COPY customer FROM STDIN",
			want: &Copy{Direction: CopyIn, Schema: "public", Table: "customer", Format: CopyText,
				Delimiter: "\t", Null: `\N`, Fields: custFields(nil)}},
		{name: "column list",
			sql: "COPY address (phone, address_id, postal_code) FROM STDIN",
			want: &Copy{Direction: CopyIn, Schema: "public", Table: "address", Format: CopyText,
				Delimiter: "\t", Null: `\N`,
				Fields: []CopyField{{Name: "phone", Column: &phoneCol}, {Name: "address_id"}, {Name: "postal_code", Column: &postalCol}}}},
		{name: "new syntax csv",
			sql: "COPY customer (email, first_name) FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';')",
			want: &Copy{Direction: CopyIn, Schema: "public", Table: "customer", Format: CopyCSV,
				Delimiter: ";", Null: "", Header: true, Quote: `"`, Escape: `"`,
				Fields: []CopyField{{Name: "email", Column: &emailCol}, {Name: "first_name"}}}},
		{name: "old syntax csv header",
			sql: "COPY customer (email, first_name) FROM STDIN WITH CSV HEADER",
			want: &Copy{Direction: CopyIn, Schema: "public", Table: "customer", Format: CopyCSV,
				Delimiter: ",", Null: "", Header: true, Quote: `"`, Escape: `"`,
				Fields: []CopyField{{Name: "email", Column: &emailCol}, {Name: "first_name"}}}},
		{name: "old syntax with all options",
			sql: `COPY customer (email, first_name) FROM STDIN WITH DELIMITER AS '|' NULL AS 'nil' CSV QUOTE AS '''' ESCAPE AS '\' FORCE NOT NULL email`,
			want: &Copy{Direction: CopyIn, Schema: "public", Table: "customer", Format: CopyCSV,
				Delimiter: "|", Null: "nil", Quote: "'", Escape: `\`,
				Fields: []CopyField{{Name: "email", Column: &emailCol, ForceNotNull: true}, {Name: "first_name"}}}},
		{name: "header match, force null, default, encoding, freeze",
			sql: "COPY customer (email, first_name) FROM STDIN (FORMAT 'csv', HEADER MATCH, FORCE_NULL (email), DEFAULT '#d', ENCODING 'LATIN1', FREEZE, ON_ERROR ignore)",
			want: &Copy{Direction: CopyIn, Schema: "public", Table: "customer", Format: CopyCSV,
				Delimiter: ",", Null: "", Header: true, HeaderMatch: true, Quote: `"`, Escape: `"`,
				Default: strp("#d"), Encoding: "LATIN1",
				Fields: []CopyField{{Name: "email", Column: &emailCol, ForceNull: true}, {Name: "first_name"}}}},
		{name: "header off",
			sql: "COPY customer (email) FROM STDIN (FORMAT text, HEADER off)",
			want: &Copy{Direction: CopyIn, Schema: "public", Table: "customer", Format: CopyText,
				Delimiter: "\t", Null: `\N`, Fields: []CopyField{{Name: "email", Column: &emailCol}}}},
		{name: "binary old and new syntax",
			sql:  "COPY BINARY customer FROM STDIN",
			want: &Copy{Direction: CopyIn, Schema: "public", Table: "customer", Format: CopyBinary, Fields: custFields(nil)}},
		{name: "binary new syntax",
			sql:  "COPY customer FROM STDIN WITH (FORMAT binary)",
			want: &Copy{Direction: CopyIn, Schema: "public", Table: "customer", Format: CopyBinary, Fields: custFields(nil)}},
		{name: "copy out with force quote star",
			sql: "COPY customer TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)",
			want: &Copy{Direction: CopyOut, Schema: "public", Table: "customer", Format: CopyCSV,
				Delimiter: ",", Null: "", Quote: `"`, Escape: `"`,
				Fields: custFields(func(f []CopyField) {
					for i := range f {
						f[i].ForceQuote = true
					}
				})}},
		{name: "schema-qualified", sql: "COPY sales.contact (email) FROM STDIN",
			want: &Copy{Direction: CopyIn, Schema: "sales", Table: "contact", Format: CopyText, Delimiter: "\t", Null: `\N`,
				Fields: []CopyField{{Name: "email", Column: &salesEmail}}}},
		{name: "unprotected table", sql: "COPY orders FROM STDIN (FORMAT csv)"},
		{name: "copy to server file", sql: "COPY customer TO '/tmp/x'"},
		{name: "copy query", sql: "COPY (SELECT email FROM customer) TO STDOUT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Analyze(tc.sql, fixture)
			if err != nil {
				t.Fatal(err)
			}
			got := p.Statements[0].Copy
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Copy =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}
