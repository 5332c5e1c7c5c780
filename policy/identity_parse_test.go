package policy

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// fullPolicy uses every field of the file format.
const fullPolicy = `version: 1
require_mtls_for_plaintext: true
columns:
  - column: public.customer.email
    type: text
    key: pii
    storage: text
    mask: {keep_last: 2, char: "#"}
  - column: public.address.phone
    type: varchar
    key: pii
  - column: public.customer.birth
    type: date
    key: dob
  - column: public.customer.code
    type: bpchar
    key: dob
    mask: {}
identities:
  - name: us-billing
    match:
      roles: [us_service, us_batch]
      cert_common_name: us-billing
      cert_subject: "CN=us-billing,O=Example"
      cert_issuer: "CN=Example US CA"
      san_uri: ["spiffe://example.org/ns/us/*", "spiffe://example.org/billing"]
      san_dns: ["billing.us.example.org"]
      source: ["10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "::1"]
    clearance:
      default: ciphertext
      keys: {pii: plaintext}
      columns: {public.address.phone: mask, public.customer.birth: null}
    write: false
  - name: sg.ops_1
    match: {roles: [sg_ops]}
    clearance: {default: deny, keys: {dob: "null"}}
  - name: everyone
    match: {}
    clearance:
      default: null
cleared:
`

func TestParseIdentities(t *testing.T) {
	p, err := Parse([]byte(fullPolicy), "p.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !p.RequireMTLSForPlaintext() {
		t.Error("RequireMTLSForPlaintext = false")
	}
	email, _ := p.Column("public", "customer", "email")
	code, _ := p.Column("public", "customer", "code")
	phone, _ := p.Column("public", "address", "phone")
	if email.Mask != (TextMask{KeepLast: 2, Char: '#'}) {
		t.Errorf("email mask = %+v", email.Mask)
	}
	if code.Mask != (TextMask{KeepLast: 4, Char: '*'}) {
		t.Errorf("code mask = %+v, want the default written out", code.Mask)
	}
	if phone.Mask != (TextMask{}) {
		t.Errorf("phone mask = %+v, want the zero TextMask", phone.Mask)
	}

	rules := p.Identities()
	var got []string
	for _, r := range rules {
		got = append(got, r.Describe())
	}
	want := []string{`identity "us-billing" (line 20)`, `identity "sg.ops_1" (line 34)`, `identity "everyone" (line 37)`}
	if !slices.Equal(got, want) {
		t.Errorf("Identities = %q, want %q", got, want)
	}
	rules[0] = nil
	if p.Identities()[0] == nil {
		t.Error("Identities aliases the policy's state")
	}

	us := p.Identities()[0]
	if !slices.Equal(us.roles, []string{"us_service", "us_batch"}) || !slices.Equal(us.roleAt, []int{22, 22}) {
		t.Errorf("roles = %q at %v", us.roles, us.roleAt)
	}
	if us.commonName != "us-billing" || us.subject != "CN=us-billing,O=Example" || us.issuer != "CN=Example US CA" {
		t.Errorf("certificate names = %q, %q, %q", us.commonName, us.subject, us.issuer)
	}
	if want := []sanPattern{{"spiffe://example.org/ns/us/", true}, {"spiffe://example.org/billing", false}}; !slices.Equal(us.sanURI, want) {
		t.Errorf("sanURI = %+v", us.sanURI)
	}
	if want := []sanPattern{{"billing.us.example.org", false}}; !slices.Equal(us.sanDNS, want) {
		t.Errorf("sanDNS = %+v", us.sanDNS)
	}
	wantSrc := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("::1/128"),
	}
	if !slices.Equal(us.sources, wantSrc) {
		t.Errorf("sources = %v", us.sources)
	}
	if us.def != Ciphertext || us.keys["pii"] != Plaintext || len(us.keys) != 1 ||
		us.columns[phone.Name] != Mask || us.columns[ColumnName{"public", "customer", "birth"}] != Null || len(us.columns) != 2 {
		t.Errorf("clearance = %v %v %v", us.def, us.keys, us.columns)
	}
	if us.write {
		t.Error("write: false was not read")
	}
	sg := p.Identities()[1]
	if sg.def != Deny || sg.keys["dob"] != Null || !sg.write {
		t.Errorf("sg clearance = %v %v, write %v", sg.def, sg.keys, sg.write)
	}
	if all := p.Identities()[2]; !all.catchAll() || all.def != Null {
		t.Errorf("catch-all = %+v", all)
	}
}

func TestParseIdentitiesMinimal(t *testing.T) {
	p, err := Parse([]byte("version: 1\ncolumns: []\nidentities:\n  - name: a\n  - name: b\nrequire_mtls_for_plaintext: false\n"), "p.yaml")
	if err == nil {
		t.Fatalf("two catch-alls parsed: %v", p.Identities())
	}
	p, err = Parse([]byte("version: 1\ncolumns: []\nidentities: []\nrequire_mtls_for_plaintext: false\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.RequireMTLSForPlaintext() || len(p.Identities()) != 0 {
		t.Errorf("empty identities: %v, %v", p.RequireMTLSForPlaintext(), p.Identities())
	}
	p, err = Parse([]byte("version: 1\ncolumns: []\nidentities:\n  - name: all\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Identities()[0]; !r.catchAll() || r.def != Ciphertext || !r.write || r.Line != 4 {
		t.Errorf("identity with a name only = %+v", r)
	}
}

func TestParseIdentitiesInvalid(t *testing.T) {
	const cols = `version: 1
columns:
  - {column: public.customer.email, type: text, key: pii}
  - {column: public.customer.age, type: int4, key: pii}
  - {column: public.staff.email, type: text, key: staff}
`
	tests := []struct {
		name string
		in   string
		want []Problem
	}{{
		name: "identities not a list",
		in:   cols + "identities:\n  us-billing: {}\n",
		want: []Problem{{7, "identities", "must be a list of identity entries"}},
	}, {
		name: "entry not a mapping",
		in:   cols + "identities:\n  - us-billing\n",
		want: []Problem{{7, "identities[0]", "must be a mapping with the fields name, match, clearance, write"}},
	}, {
		name: "unknown fields with suggestions",
		in: cols + `identities:
  - name: a
    mach: {roles: [r]}
    match: {role: [r], cert_cn: x, source: [10.0.0.0/8]}
    clearance: {defualt: plaintext, key: {pii: mask}}
    writes: false
`,
		want: []Problem{
			{8, "identities[0].mach", `unknown field "mach" (did you mean match?)`},
			{9, "identities[0].match.role", `unknown field "role" (did you mean roles?)`},
			{9, "identities[0].match.cert_cn", `unknown field "cert_cn" (known fields: roles, cert_common_name, cert_subject, cert_issuer, san_uri, san_dns, source)`},
			{10, "identities[0].clearance.defualt", `unknown field "defualt" (did you mean default?)`},
			{10, "identities[0].clearance.key", `unknown field "key" (did you mean keys?)`},
			{11, "identities[0].writes", `unknown field "writes" (did you mean write?)`},
		},
	}, {
		name: "names",
		in: cols + `identities:
  - match: {roles: [a]}
  - name: ''
    match: {roles: [b]}
  - name: us billing
    match: {roles: [c]}
  - name: x
    match: {roles: [d]}
  - name: x
    match: {roles: [e]}
  - name: [y]
    match: {roles: [f]}
`,
		want: []Problem{
			{7, "identities[0].name", "missing: name the identity (the name appears in logs and audit records)"},
			{8, "identities[1].name", "empty name"},
			{10, "identities[2].name", `bad identity name "us billing": use letters, digits, '_', '-' and '.', starting with a letter or digit, at most 64 characters`},
			{14, "identities[4].name", `identity "x" is already defined at line 12`},
			{16, "identities[5].name", "must be a single value, not a list or mapping"},
			{16, "identities[5].name", "missing: name the identity (the name appears in logs and audit records)"},
		},
	}, {
		name: "catch-all not last",
		in: cols + `identities:
  - name: all
  - name: also-all
    match: {}
  - name: us
    match: {roles: [us]}
`,
		want: []Problem{
			{7, "identities[0]", "no match conditions: this identity matches every caller, so the identities after it never apply; make it the last one"},
			{8, "identities[1]", "no match conditions: this identity matches every caller, so the identities after it never apply; make it the last one"},
		},
	}, {
		name: "catch-all last is fine, cleared.roles behind it is not",
		in: cols + `identities:
  - name: us
    match: {roles: [us]}
  - name: all
    clearance: {default: mask}
cleared:
  roles: [us_analyst]
`,
		want: []Problem{
			{12, "cleared.roles", `never applies: identity "all" (line 9) has no match conditions and so matches every caller first; give these roles an identity before it`},
		},
	}, {
		name: "empty and malformed conditions",
		in: cols + `identities:
  - name: a
    match:
  - name: b
    match:
      roles: []
      cert_common_name: ''
      cert_subject: us-billing
      cert_issuer: ~
      san_uri:
      san_dns: billing.example.org
      source: [~]
  - name: c
    match:
      roles: [r, r, '', [x]]
      cert_common_name: [x]
      cert_subject: "CN=a\u0007"
  - name: d
    match: [roles]
`,
		want: []Problem{
			{8, "identities[0].match", "empty: give at least one condition, or leave match out for an identity that matches every caller"},
			{11, "identities[1].match.roles", "empty: list at least one, or leave the field out"},
			{12, "identities[1].match.cert_common_name", "empty: give a value, or leave the field out"},
			{13, "identities[1].match.cert_subject", `"us-billing" is not a distinguished name: write it as Go's pkix.Name.String prints it, e.g. CN=us-billing,O=Example`},
			{14, "identities[1].match.cert_issuer", "empty: give a value, or leave the field out"},
			{15, "identities[1].match.san_uri", "empty: list at least one, or leave the field out"},
			{16, "identities[1].match.san_dns", "must be a list of DNS names"},
			{17, "identities[1].match.source[0]", "empty address"},
			{20, "identities[2].match.roles[1]", `role "r" is listed twice`},
			{20, "identities[2].match.roles[2]", "empty role name"},
			{20, "identities[2].match.roles[3]", "must be a single value, not a list or mapping"},
			{20, "identities[2].match.roles[3]", "empty role name"},
			{21, "identities[2].match.cert_common_name", "must be a single value, not a list or mapping"},
			{22, "identities[2].match.cert_subject", `"CN=a\a" contains control characters or invalid UTF-8`},
			{24, "identities[3].match", "must be a mapping with the fields roles, cert_common_name, cert_subject, cert_issuer, san_uri, san_dns, source"},
		},
	}, {
		name: "SAN patterns",
		in: cols + `identities:
  - name: a
    match:
      san_uri: ["spiffe://example.org/*/billing", "*", "spiffe://a b", "spiffe://ok/*", ""]
      san_dns: ["*.example.org", "bïlling.example.org", "billing.*", "x**"]
`,
		want: []Problem{
			{9, "identities[0].match.san_uri[0]", `pattern "spiffe://example.org/*/billing": '*' is allowed only at the end, for a prefix match (a leading wildcard such as *.example.org is not supported)`},
			{9, "identities[0].match.san_uri[1]", `pattern "*" matches any value; give a prefix before the '*'`},
			{9, "identities[0].match.san_uri[2]", `pattern "spiffe://a b" contains spaces, control characters or invalid UTF-8`},
			{9, "identities[0].match.san_uri[4]", "empty pattern"},
			{10, "identities[0].match.san_dns[0]", `pattern "*.example.org": '*' is allowed only at the end, for a prefix match (a leading wildcard such as *.example.org is not supported)`},
			{10, "identities[0].match.san_dns[1]", `pattern "bïlling.example.org" is not ASCII: write an internationalised DNS name in its xn-- form`},
			{10, "identities[0].match.san_dns[3]", `pattern "x**": '*' is allowed only at the end, for a prefix match (a leading wildcard such as *.example.org is not supported)`},
		},
	}, {
		name: "sources",
		in: cols + `identities:
  - name: a
    match:
      source:
        - 10.0.0.0/33
        - 10.0.0.1/8
        - 300.1.1.1
        - "fe80::1%eth0"
        - "::ffff:10.0.0.1"
        - "::ffff:10.0.0.0/104"
        - "2001:db8::1/32"
        - example.org
        - 10.0.0.0/8
        - "::/0"
`,
		want: []Problem{
			{10, "identities[0].match.source[0]", `bad CIDR "10.0.0.0/33": want an address or address/length, e.g. 10.0.0.0/8, 2001:db8::/32 or 127.0.0.1`},
			{11, "identities[0].match.source[1]", `CIDR "10.0.0.1/8" has bits set after its prefix length; write 10.0.0.0/8`},
			{12, "identities[0].match.source[2]", `bad address "300.1.1.1": want an address or address/length, e.g. 10.0.0.0/8, 2001:db8::/32 or 127.0.0.1`},
			{13, "identities[0].match.source[3]", `address "fe80::1%eth0" has a zone, which a source condition cannot use`},
			{14, "identities[0].match.source[4]", `"::ffff:10.0.0.1" is an IPv4-mapped IPv6 address; write the IPv4 form (IPv4 clients are matched as IPv4)`},
			{15, "identities[0].match.source[5]", `"::ffff:10.0.0.0/104" is an IPv4-mapped IPv6 address; write the IPv4 form (IPv4 clients are matched as IPv4)`},
			{16, "identities[0].match.source[6]", `CIDR "2001:db8::1/32" has bits set after its prefix length; write 2001:db8::/32`},
			{17, "identities[0].match.source[7]", `bad address "example.org": want an address or address/length, e.g. 10.0.0.0/8, 2001:db8::/32 or 127.0.0.1`},
		},
	}, {
		name: "clearances",
		in: cols + `identities:
  - name: a
    match: {roles: [a]}
    clearance:
      default: Plaintext
      keys: {pii: plain, staf: mask, nope: deny, staff: ~}
      columns:
        public.customer.emial: plaintext
        public.customer.phone: plaintext
        public.customer: plaintext
        PUBLIC.customer.email: mask
        public.customer.EMAIL: deny
        public.customer.age: mask
        public.staff.email: [plaintext]
  - name: b
    match: {roles: [b]}
    clearance:
      default: [plaintext]
      keys: [pii]
      columns: plaintext
    write: yes
  - name: c
    match: {roles: [c]}
    clearance: plaintext
    write: ~
`,
		want: []Problem{
			{10, "identities[0].clearance.default", `unknown clearance "Plaintext" (did you mean plaintext?)`},
			{11, "identities[0].clearance.keys.pii", `unknown clearance "plain" (known clearances: ciphertext, plaintext, null, mask, deny)`},
			{11, "identities[0].clearance.keys.staf", `no protected column uses key "staf" (did you mean staff?)`},
			{11, "identities[0].clearance.keys.nope", `no protected column uses key "nope" (known keys: pii, staff)`},
			{11, "identities[0].clearance.keys.staff", "missing: write plaintext, ciphertext, null, mask or deny"},
			{13, "identities[0].clearance.columns.public.customer.emial", "column public.customer.emial is not protected by this policy (did you mean public.customer.email?)"},
			{14, "identities[0].clearance.columns.public.customer.phone", "column public.customer.phone is not protected by this policy"},
			{15, "identities[0].clearance.columns.public.customer", `bad column name "public.customer": want schema.table.column, got 2 part(s)`},
			{17, "identities[0].clearance.columns.public.customer.EMAIL", "column public.customer.email is given twice (first at line 16)"},
			{18, "identities[0].clearance.columns.public.customer.age", "mask applies only to text, varchar and bpchar columns; public.customer.age is int4"},
			{19, "identities[0].clearance.columns.public.staff.email", "must be a single value, not a list or mapping"},
			{23, "identities[1].clearance.default", "must be a single value, not a list or mapping"},
			{24, "identities[1].clearance.keys", "must be a mapping from keyring names to clearances"},
			{25, "identities[1].clearance.columns", "must be a mapping from column names to clearances"},
			{26, "identities[1].write", "must be true or false"},
			{29, "identities[2].clearance", "must be a mapping with the fields default, keys, columns"},
			{30, "identities[2].write", "must be true or false"},
		},
	}, {
		name: "masks and require_mtls_for_plaintext",
		in: `version: 1
require_mtls_for_plaintext: yes
columns:
  - {column: s.t.a, type: int4, key: k, mask: {keep_last: 2}}
  - {column: s.t.b, type: text, key: k, mask: {keep_last: -1, char: ""}}
  - {column: s.t.c, type: text, key: k, mask: {keep_last: 1.5, char: "ab"}}
  - {column: s.t.d, type: text, key: k, mask: {keep_last: "2", char: "\t", keep: 1}}
  - {column: s.t.e, type: text, key: k, mask: "****"}
  - {column: s.t.f, type: strng, key: k, mask: {char: "e\u0301"}}
  - {column: s.t.g, type: varchar, key: k, mask: {char: [x]}}
`,
		want: []Problem{
			{2, "require_mtls_for_plaintext", "must be true or false"},
			{4, "columns[0].mask", "a mask applies only to text, varchar and bpchar columns, not int4"},
			{5, "columns[1].mask.keep_last", "must not be negative, got -1"},
			{5, "columns[1].mask.char", `must be exactly one printable character, got ""`},
			{6, "columns[2].mask.keep_last", "must be a whole number"},
			{6, "columns[2].mask.char", `must be exactly one printable character, got "ab"`},
			{7, "columns[3].mask.keep", `unknown field "keep" (known fields: keep_last, char)`},
			{7, "columns[3].mask.keep_last", "must be a whole number"},
			{7, "columns[3].mask.char", `must be exactly one printable character, got "\t"`},
			{8, "columns[4].mask", "must be a mapping with the fields keep_last, char"},
			{9, "columns[5].type", `unknown type "strng" (known: text, varchar, bpchar, int2, int4, int8, numeric, bool, date, timestamp, timestamptz, uuid, jsonb, json, bytea, float4, float8)`},
			{9, "columns[5].mask.char", "must be exactly one printable character, got \"e\u0301\""},
			{10, "columns[6].mask.char", "must be a single value, not a list or mapping"},
		},
	}, {
		name: "clearances refer to columns with other problems",
		in: `version: 1
columns:
  - {column: public.customer.email, type: strng, key: pii}
  - {column: public.customer.phone, type: text, key: 'a/b'}
identities:
  - name: a
    clearance:
      keys: {pii: plaintext}
      columns: {public.customer.email: mask, public.customer.phone: plaintext}
`,
		want: []Problem{
			{3, "columns[0].type", `unknown type "strng" (known: text, varchar, bpchar, int2, int4, int8, numeric, bool, date, timestamp, timestamptz, uuid, jsonb, json, bytea, float4, float8)`},
			{4, "columns[1].key", `bad key name "a/b": use letters, digits, '_', '-' and '.', starting with a letter or digit, at most 64 characters`},
		},
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
			if !slices.Equal(ve.Problems, tt.want) {
				t.Errorf("problems:\n got %s\nwant %s", fmtProblems(ve.Problems), fmtProblems(tt.want))
			}
		})
	}
}

func TestParseClearance(t *testing.T) {
	for c := Ciphertext; c <= Deny; c++ {
		got, err := ParseClearance(c.String())
		if err != nil || got != c {
			t.Errorf("ParseClearance(%q) = %v, %v", c.String(), got, err)
		}
	}
	if got := Clearance(Deny + 1).String(); got != "unknown" {
		t.Errorf("String of an unknown clearance = %q", got)
	}
	for _, s := range []string{"", "PLAINTEXT", "unknown", "plain text"} {
		if c, err := ParseClearance(s); err == nil || c != Ciphertext {
			t.Errorf("ParseClearance(%q) = %v, %v", s, c, err)
		}
	}
	if _, err := ParseClearance("mask "); err == nil || err.Error() != `unknown clearance "mask " (did you mean mask?)` {
		t.Errorf("ParseClearance(mask ) error = %v", err)
	}
}
