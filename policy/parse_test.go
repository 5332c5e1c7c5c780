package policy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  []Column
		roles []string
	}{{
		name: "defaults",
		in: `version: 1
columns:
  - column: public.customer.email
    type: text
    key: pii
`,
		want: []Column{{
			Name: ColumnName{"public", "customer", "email"}, ID: "public.customer.email",
			Type: TypeText, Mode: ModeRandomized, Key: "pii", Storage: StorageBytea, Line: 3,
		}},
	}, {
		name: "every field, aliases and quoting",
		in: `# a comment
version: 1
columns:
  - column: public.customer.email   # trailing comment
    id: customer.email
    type: character varying
    mode: randomized
    key: pii
    storage: text
  - column: 'Sales."Customer".Phone'
    type: timestamp  with TIME zone
    key: pii.v2
  - column: '"my schema"."a""b".x$1'
    type: Integer
    key: k-1
    storage: bytea
cleared:
  roles: [us_service, US_Analyst]
`,
		want: []Column{{
			Name: ColumnName{"public", "customer", "email"}, ID: "customer.email",
			Type: TypeVarchar, Mode: ModeRandomized, Key: "pii", Storage: StorageText, Line: 4,
		}, {
			Name: ColumnName{"sales", "Customer", "phone"}, ID: `sales."Customer".phone`,
			Type: TypeTimestamptz, Mode: ModeRandomized, Key: "pii.v2", Storage: StorageBytea, Line: 10,
		}, {
			Name: ColumnName{"my schema", `a"b`, "x$1"}, ID: `"my schema"."a""b"."x$1"`,
			Type: TypeInt4, Mode: ModeRandomized, Key: "k-1", Storage: StorageBytea, Line: 13,
		}},
		roles: []string{"us_service", "US_Analyst"},
	}, {
		name: "nothing protected",
		in:   "version: 1\ncolumns: []\ncleared:\n",
	}, {
		name: "null roles",
		in:   "version: 1\ncolumns: []\ncleared:\n  roles:\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.in), "p.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got []Column
			for _, c := range p.Columns() {
				got = append(got, *c)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("columns:\n got %+v\nwant %+v", got, tt.want)
			}
			if got := p.ClearedRoles(); !slices.Equal(got, tt.roles) {
				t.Errorf("roles = %q, want %q", got, tt.roles)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Problem
	}{{
		name: "empty",
		in:   "",
		want: []Problem{{0, "", "the policy is empty (it needs at least version: 1 and columns)"}},
	}, {
		name: "only comments",
		in:   "# nothing\n\n",
		want: []Problem{{0, "", "the policy is empty (it needs at least version: 1 and columns)"}},
	}, {
		name: "explicit null document",
		in:   "---\n~\n",
		want: []Problem{{2, "", "the policy is empty (it needs at least version: 1 and columns)"}},
	}, {
		name: "not a mapping",
		in:   "- public.customer.email\n",
		want: []Problem{{1, "", "the policy must be a mapping with the fields version, columns, identities, cleared, require_mtls_for_plaintext"}},
	}, {
		name: "syntax error",
		in:   "version: 1\ncolumns: [\n",
		want: []Problem{{2, "", "invalid YAML: did not find expected node content"}},
	}, {
		name: "two documents",
		in:   "version: 1\ncolumns: []\n---\nversion: 1\n",
		want: []Problem{{3, "", "a policy file holds one YAML document; a second one starts here"}},
	}, {
		name: "anchors",
		in:   "version: 1\ncolumns:\n  - &c {column: a.b.c, type: text, key: k}\n  - *c\n",
		want: []Problem{
			{3, "", "YAML anchors and aliases are not allowed in a policy file; write each value out"},
			{4, "", "YAML anchors and aliases are not allowed in a policy file; write each value out"},
		},
	}, {
		name: "missing version and columns",
		in:   "cleared:\n  roles: [r]\n",
		want: []Problem{
			{1, "version", "missing: write version: 1"},
			{1, "columns", "missing: list the protected columns (or write columns: [] to protect none)"},
		},
	}, {
		name: "unsupported version",
		in:   "version: 2\ncolumns: [{bogus: 1}]\n",
		want: []Problem{{1, "version", "unsupported version 2 (this fleproxy reads version 1)"}},
	}, {
		name: "version as string",
		in:   "version: '1'\ncolumns: []\n",
		want: []Problem{{1, "version", "must be the number 1"}},
	}, {
		name: "unknown and repeated fields",
		in: `version: 1
columns:
  - column: public.customer.email
    tyep: text
    type: text
    key: pii
    key: pii2
    encrypt: yes
clear:
  roles: [a]
cleared:
  role: [a]
`,
		want: []Problem{
			{4, "columns[0].tyep", `unknown field "tyep" (did you mean type?)`},
			{7, "columns[0].key", "given twice (first at line 6)"},
			{8, "columns[0].encrypt", `unknown field "encrypt" (known fields: column, id, type, mode, key, storage, mask)`},
			{9, "clear", `unknown field "clear" (did you mean cleared?)`},
			{12, "cleared.role", `unknown field "role" (did you mean roles?)`},
		},
	}, {
		name: "bad column names",
		in: `version: 1
columns:
  - {column: customer.email, type: text, key: k}
  - {column: public.customer.email.x, type: text, key: k}
  - {column: 'public."customer.email', type: text, key: k}
  - {column: public.1customer.email, type: text, key: k}
  - {column: 'public..email', type: text, key: k}
  - {column: 'public.customer.', type: text, key: k}
  - {column: 'public."".email', type: text, key: k}
  - {column: 'public.customer-x.email', type: text, key: k}
  - {column: public.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.email, type: text, key: k}
  - {column: [public, customer, email], type: text, key: k}
`,
		want: []Problem{
			{3, "columns[0].column", `bad column name "customer.email": want schema.table.column, got 2 part(s)`},
			{4, "columns[1].column", `bad column name "public.customer.email.x": want schema.table.column, got 4 part(s)`},
			{5, "columns[2].column", `bad column name "public.\"customer.email": unterminated quoted identifier`},
			{6, "columns[3].column", `bad column name "public.1customer.email": unexpected "1" at offset 7 (quote the identifier)`},
			{7, "columns[4].column", `bad column name "public..email": empty identifier at offset 7`},
			{8, "columns[5].column", `bad column name "public.customer.": name ends with '.'`},
			{9, "columns[6].column", `bad column name "public.\"\".email": zero-length quoted identifier`},
			{10, "columns[7].column", `bad column name "public.customer-x.email": unexpected "-" at offset 15`},
			{11, "columns[8].column", `bad column name "public.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.email": identifier "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" is longer than 63 bytes`},
			{12, "columns[9].column", "must be a single value, not a list or mapping"},
			{12, "columns[9].column", "missing: name the protected column as schema.table.column"},
		},
	}, {
		name: "duplicates",
		in: `version: 1
columns:
  - column: public.customer.email
    type: text
    key: pii
  - column: PUBLIC.Customer.EMAIL
    type: text
    key: pii
  - column: public."Customer".email
    id: public.customer.email
    type: text
    key: pii
  - column: public.staff.email
    id: x
    type: text
    key: pii
  - column: public.staff.phone
    id: x
    type: text
    key: pii
`,
		want: []Problem{
			{6, "columns[1].column", "column public.customer.email is already listed at line 3"},
			{10, "columns[2].id", `id "public.customer.email" is already used by public.customer.email at line 3; each protected column needs its own id so that ciphertext cannot be moved between columns`},
			{18, "columns[4].id", `id "x" is already used by public.staff.email at line 13; each protected column needs its own id so that ciphertext cannot be moved between columns`},
		},
	}, {
		name: "types, modes, storage, keys, ids",
		in: `version: 1
columns:
  - {column: s.t.a, type: strng, key: k}
  - {column: s.t.b, type: varchar(255), key: k}
  - {column: s.t.c, type: 'text[]', key: k}
  - {column: s.t.d, type: text, mode: deterministic, key: k}
  - {column: s.t.e, type: text, mode: fast, key: k}
  - {column: s.t.f, type: text, storage: blob, key: k}
  - {column: s.t.g, type: text, key: 'a/b'}
  - {column: s.t.h, type: text, key: ''}
  - {column: s.t.i, type: text, key: k, id: ''}
  - {column: s.t.j, type: text, key: k, id: ' x'}
  - {column: s.t.k, type: text}
  - {column: s.t.l, key: k}
  - {type: text, key: k}
  - 'public.customer.email'
`,
		want: []Problem{
			{3, "columns[0].type", `unknown type "strng" (known: text, varchar, bpchar, int2, int4, int8, numeric, bool, date, timestamp, timestamptz, uuid, jsonb, json, bytea, float4, float8)`},
			{4, "columns[1].type", `type modifiers are not supported: write "varchar" instead of "varchar(255)"`},
			{5, "columns[2].type", `array types are not supported: "text[]"`},
			{6, "columns[3].mode", `mode "deterministic" is not supported yet: use randomized (equality search on protected columns comes later)`},
			{7, "columns[4].mode", `unknown mode "fast" (known: randomized)`},
			{8, "columns[5].storage", `unknown storage "blob" (known: bytea, text)`},
			{9, "columns[6].key", `bad key name "a/b": use letters, digits, '_', '-' and '.', starting with a letter or digit, at most 64 characters`},
			{10, "columns[7].key", `bad key name "": use letters, digits, '_', '-' and '.', starting with a letter or digit, at most 64 characters`},
			{11, "columns[8].id", "empty id (leave id out to use the column name)"},
			{12, "columns[9].id", `id " x" has leading or trailing spaces`},
			{13, "columns[10].key", "missing: name the keyring that encrypts this column"},
			{14, "columns[11].type", "missing: give the logical type (text, varchar, bpchar, int2, int4, int8, numeric, bool, date, timestamp, timestamptz, uuid, jsonb, json, bytea, float4, float8)"},
			{15, "columns[12].column", "missing: name the protected column as schema.table.column"},
			{16, "columns[13]", "must be a mapping with the fields column, id, type, mode, key, storage, mask"},
		},
	}, {
		name: "columns not a list",
		in:   "version: 1\ncolumns:\n  public.customer.email: text\n",
		want: []Problem{{3, "columns", "must be a list of column entries"}},
	}, {
		name: "bad roles",
		in:   "version: 1\ncolumns: []\ncleared:\n  roles:\n    - a\n    - a\n    - ''\n    - [b]\n",
		want: []Problem{
			{6, "cleared.roles[1]", `role "a" is listed twice`},
			{7, "cleared.roles[2]", "empty role name"},
			{8, "cleared.roles[3]", "must be a single value, not a list or mapping"},
			{8, "cleared.roles[3]", "empty role name"},
		},
	}, {
		name: "roles not a list",
		in:   "version: 1\ncolumns: []\ncleared:\n  roles: us_service\n",
		want: []Problem{{4, "cleared.roles", "must be a list of database role names"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.in), "p.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *ValidationError: %v", err, err)
			}
			if ve.Source != "p.yaml" {
				t.Errorf("Source = %q", ve.Source)
			}
			if !slices.Equal(ve.Problems, tt.want) {
				t.Errorf("problems:\n got %s\nwant %s", fmtProblems(ve.Problems), fmtProblems(tt.want))
			}
		})
	}
}

func fmtProblems(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("\n\t")
		b.WriteString(p.String())
	}
	return b.String()
}

func TestValidationErrorMessage(t *testing.T) {
	_, err := Parse([]byte("version: 1\ncolumns:\n  - {column: public.customer.email, type: strng, key: pii}\n"), "policy.yaml")
	want := `policy: policy.yaml:3: columns[0].type: unknown type "strng" (known: text, varchar, bpchar, int2, int4, int8, numeric, bool, date, timestamp, timestamptz, uuid, jsonb, json, bytea, float4, float8)`
	if err == nil || err.Error() != want {
		t.Errorf("error =\n%v\nwant\n%s", err, want)
	}

	_, err = Parse([]byte("version: 1\ncolumns:\n  - {column: public.customer.email, type: text}\nextra: 1\n"), "policy.yaml")
	want = "policy: 2 problems in policy.yaml:\n" +
		"\tpolicy.yaml:3: columns[0].key: missing: name the keyring that encrypts this column\n" +
		"\tpolicy.yaml:4: extra: unknown field \"extra\" (known fields: version, columns, identities, cleared, require_mtls_for_plaintext)"
	if err == nil || err.Error() != want {
		t.Errorf("error =\n%v\nwant\n%s", err, want)
	}

	_, err = Parse(nil, "")
	if want := "policy: policy: the policy is empty (it needs at least version: 1 and columns)"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte("version: 1\ncolumns:\n  - {column: public.customer.email, type: text, key: pii}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if p.Source() != path {
		t.Errorf("Source = %q, want %q", p.Source(), path)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "policy: ") {
		t.Errorf("Load of a missing file: %v", err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\ncolumns: []\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Source != bad || len(ve.Problems) != 1 || ve.Problems[0].Line != 3 {
		t.Errorf("Load of an invalid file: %v", err)
	}
}

func TestLookups(t *testing.T) {
	p, err := Parse([]byte(`version: 1
columns:
  - {column: public.customer.email, type: text, key: pii}
  - {column: public.address.phone, type: text, key: pii}
  - {column: public.address.address, type: text, key: pii}
  - {column: 'public."Customer".email', type: text, key: pii}
  - {column: archive.customer.email, type: text, key: pii}
cleared:
  roles: [us_service]
`), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, ok := p.Column("public", "customer", "email")
	if !ok || c.Line != 3 || c.ID != "public.customer.email" {
		t.Errorf("Column(public, customer, email) = %+v, %v", c, ok)
	}
	if c, ok := p.Column("public", "Customer", "email"); !ok || c.ID != `public."Customer".email` {
		t.Errorf(`Column(public, Customer, email) = %+v, %v`, c, ok)
	}
	if _, ok := p.Column("public", "customer", "Email"); ok {
		t.Error("Column lookup is not case-sensitive")
	}
	if _, ok := p.Column("public", "customer", "first_name"); ok {
		t.Error("Column found an unprotected column")
	}

	wantTables := []TableName{{"archive", "customer"}, {"public", "Customer"}, {"public", "address"}, {"public", "customer"}}
	if got := p.Tables(); !slices.Equal(got, wantTables) {
		t.Errorf("Tables = %v, want %v", got, wantTables)
	}
	var names []string
	for _, c := range p.ColumnsOf("public", "address") {
		names = append(names, c.Name.Column)
	}
	if !slices.Equal(names, []string{"phone", "address"}) {
		t.Errorf("ColumnsOf(public, address) = %v", names)
	}
	if got := p.ColumnsOf("public", "film"); got != nil {
		t.Errorf("ColumnsOf(public, film) = %v", got)
	}

	// Returned slices are the caller's.
	p.Tables()[0] = TableName{}
	p.ColumnsOf("public", "address")[0] = nil
	p.Columns()[0] = nil
	if p.Tables()[0] != wantTables[0] || p.ColumnsOf("public", "address")[0] == nil || p.Columns()[0] == nil {
		t.Error("a returned slice aliases the policy's state")
	}
}

func TestClearance(t *testing.T) {
	p, err := Parse([]byte(`version: 1
columns:
  - {column: public.customer.email, type: text, key: pii}
cleared:
  roles: [us_service, US_Analyst]
`), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	other, err := Parse([]byte("version: 1\ncolumns:\n  - {column: public.customer.email, type: text, key: pii}\n"), "other.yaml")
	if err != nil {
		t.Fatal(err)
	}
	email, _ := p.Column("public", "customer", "email")
	otherEmail, _ := other.Column("public", "customer", "email")
	tests := []struct {
		role string
		col  *Column
		want Clearance
	}{
		{"us_service", email, Plaintext},
		{"US_Analyst", email, Plaintext},
		{"us_analyst", email, Ciphertext},
		{"sg_service", email, Ciphertext},
		{"", email, Ciphertext},
		{"us_service", nil, Ciphertext},
		{"us_service", otherEmail, Ciphertext},
		{"us_service", &Column{Name: email.Name}, Ciphertext},
	}
	for _, tt := range tests {
		if got := p.ClearanceFor(Identity{Role: tt.role}, tt.col); got != tt.want {
			t.Errorf("ClearanceFor(%q, %v) = %v, want %v", tt.role, tt.col, got, tt.want)
		}
	}
	if !p.IsCleared("us_service") || p.IsCleared("sg_service") || p.IsCleared("") {
		t.Error("IsCleared is wrong")
	}
	if got := other.ClearanceFor(Identity{Role: "us_service"}, otherEmail); got != Ciphertext {
		t.Errorf("a policy without cleared roles gave %v", got)
	}
	var zero Clearance
	if zero != Ciphertext || zero.String() != "ciphertext" || Plaintext.String() != "plaintext" {
		t.Error("the zero Clearance must be Ciphertext")
	}
}
