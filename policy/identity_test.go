package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/netip"
	"net/url"
	"testing"
	"time"
)

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testCert returns a certificate as the TLS stack hands it over after
// verification; only the fields that matching reads are set.
func testCert(cn, org, issuer string, uris []string, dns ...string) *x509.Certificate {
	c := &x509.Certificate{
		Subject:  pkix.Name{CommonName: cn},
		Issuer:   pkix.Name{CommonName: issuer},
		DNSNames: dns,
	}
	if org != "" {
		c.Subject.Organization = []string{org}
	}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		if err != nil {
			panic(err)
		}
		c.URIs = append(c.URIs, parsed)
	}
	return c
}

func TestMatch(t *testing.T) {
	p := mustParse(t, `version: 1
columns: []
identities:
  - name: by-role
    match: {roles: [us_service, us_batch]}
  - name: by-cn
    match: {cert_common_name: us-billing}
  - name: by-subject
    match: {cert_subject: "CN=us-reports,O=Example"}
  - name: by-issuer
    match: {cert_issuer: "CN=Example SG CA"}
  - name: by-uri
    match: {san_uri: ["spiffe://example.org/ns/us/*", "spiffe://example.org/exact"]}
  - name: by-dns
    match: {san_dns: ["billing.us.example.org", "batch-*"]}
  - name: by-source
    match: {source: ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"]}
  - name: all-of
    match:
      roles: [analyst]
      cert_common_name: alice
      source: ["172.16.0.0/12"]
  - name: everyone
`)
	v4 := netip.MustParseAddr
	tests := []struct {
		name string
		id   Identity
		want string // "" for no match... never, there is a catch-all
	}{
		{"role", Identity{Role: "us_service"}, "by-role"},
		{"second role", Identity{Role: "us_batch", TLS: true, Cert: testCert("us-billing", "", "", nil)}, "by-role"},
		{"role is case-sensitive", Identity{Role: "US_SERVICE"}, "everyone"},
		{"empty role", Identity{}, "everyone"},
		{"common name", Identity{Role: "x", TLS: true, Cert: testCert("us-billing", "", "", nil)}, "by-cn"},
		{"common name without TLS", Identity{Role: "x", Cert: testCert("us-billing", "", "", nil)}, "everyone"},
		{"TLS without a certificate", Identity{Role: "x", TLS: true}, "everyone"},
		{"other common name", Identity{TLS: true, Cert: testCert("us-billing2", "", "", nil)}, "everyone"},
		{"subject", Identity{TLS: true, Cert: testCert("us-reports", "Example", "", nil)}, "by-subject"},
		{"subject needs every attribute", Identity{TLS: true, Cert: testCert("us-reports", "", "", nil)}, "everyone"},
		{"subject with another attribute", Identity{TLS: true, Cert: testCert("us-reports", "Other", "", nil)}, "everyone"},
		{"issuer", Identity{TLS: true, Cert: testCert("x", "", "Example SG CA", nil)}, "by-issuer"},
		{"issuer is not the subject", Identity{TLS: true, Cert: testCert("Example SG CA", "", "", nil)}, "everyone"},
		{"SAN URI prefix", Identity{TLS: true, Cert: testCert("", "", "", []string{"spiffe://example.org/ns/us/sa/billing"})}, "by-uri"},
		{"SAN URI prefix itself", Identity{TLS: true, Cert: testCert("", "", "", []string{"spiffe://example.org/ns/us/"})}, "by-uri"},
		{"SAN URI exact", Identity{TLS: true, Cert: testCert("", "", "", []string{"spiffe://example.org/other", "spiffe://example.org/exact"})}, "by-uri"},
		{"SAN URI exact is not a prefix", Identity{TLS: true, Cert: testCert("", "", "", []string{"spiffe://example.org/exact/more"})}, "everyone"},
		{"SAN URI outside the prefix", Identity{TLS: true, Cert: testCert("", "", "", []string{"spiffe://example.org/ns/sg/sa/billing"})}, "everyone"},
		{"SAN URI case-sensitive", Identity{TLS: true, Cert: testCert("", "", "", []string{"spiffe://example.org/NS/us/x"})}, "everyone"},
		{"SAN DNS exact", Identity{TLS: true, Cert: testCert("", "", "", nil, "other.example.org", "billing.us.example.org")}, "by-dns"},
		{"SAN DNS ignores ASCII case", Identity{TLS: true, Cert: testCert("", "", "", nil, "Billing.US.example.org")}, "by-dns"},
		{"SAN DNS prefix", Identity{TLS: true, Cert: testCert("", "", "", nil, "BATCH-7.example.org")}, "by-dns"},
		{"SAN DNS Kelvin sign is not k", Identity{TLS: true, Cert: testCert("", "", "", nil, "billing.us.example.org\u212a")}, "everyone"},
		{"SAN DNS suffix is not enough", Identity{TLS: true, Cert: testCert("", "", "", nil, "x.billing.us.example.org")}, "everyone"},
		{"SAN DNS shorter than the prefix", Identity{TLS: true, Cert: testCert("", "", "", nil, "batch")}, "everyone"},
		{"source v4 in CIDR", Identity{Source: v4("10.1.2.3")}, "by-source"},
		{"source v4 bare address", Identity{Source: v4("192.168.1.7")}, "by-source"},
		{"source v4 next to the bare address", Identity{Source: v4("192.168.1.8")}, "everyone"},
		{"source v4 outside", Identity{Source: v4("11.0.0.1")}, "everyone"},
		{"source v4-mapped v6", Identity{Source: v4("::ffff:10.9.9.9")}, "by-source"},
		{"source v6 in CIDR", Identity{Source: v4("2001:db8:1::5")}, "by-source"},
		{"source v6 with a zone", Identity{Source: v4("2001:db8::5%eth0")}, "by-source"},
		{"source v6 loopback", Identity{Source: v4("::1")}, "by-source"},
		{"source v6 outside", Identity{Source: v4("2001:db9::1")}, "everyone"},
		{"source v4 loopback is not v6 loopback", Identity{Source: v4("127.0.0.1")}, "everyone"},
		{"source unknown", Identity{}, "everyone"},
		{"all of", Identity{Role: "analyst", Source: v4("172.16.5.5"), TLS: true, Cert: testCert("alice", "", "", nil)}, "all-of"},
		{"all of, wrong role", Identity{Role: "analyst2", Source: v4("172.16.5.5"), TLS: true, Cert: testCert("alice", "", "", nil)}, "everyone"},
		{"all of, wrong source", Identity{Role: "analyst", Source: v4("172.32.0.1"), TLS: true, Cert: testCert("alice", "", "", nil)}, "everyone"},
		{"all of, no certificate", Identity{Role: "analyst", Source: v4("172.16.5.5"), TLS: true}, "everyone"},
		{"first match wins", Identity{Role: "us_service", Source: v4("10.0.0.1"), TLS: true, Cert: testCert("us-billing", "", "", nil)}, "by-role"},
		{"nil SAN URI", Identity{TLS: true, Cert: &x509.Certificate{URIs: []*url.URL{nil}}}, "everyone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := p.Match(tt.id)
			if r == nil {
				t.Fatalf("Match = nil, want %s", tt.want)
			}
			if r.Name != tt.want {
				t.Errorf("Match = %s, want %s", r.Describe(), tt.want)
			}
		})
	}

	none := mustParse(t, "version: 1\ncolumns: []\nidentities:\n  - {name: a, match: {roles: [a]}}\ncleared:\n  roles: [b]\n")
	if r := none.Match(Identity{Role: "b"}); r != nil {
		t.Errorf("Match of a cleared role = %s, want nil (cleared.roles is not a rule)", r.Describe())
	}
	if r := mustParse(t, "version: 1\ncolumns: []\n").Match(Identity{Role: "a"}); r != nil {
		t.Errorf("Match without identities = %s", r.Describe())
	}
}

// TestMatchParsedCertificate checks the DN spelling the policy documents
// against a certificate that went through x509.ParseCertificate, as one from
// a TLS handshake does.
func TestMatchParsedCertificate(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spiffe, _ := url.Parse("spiffe://example.org/ns/us/sa/billing")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "us-billing", Organization: []string{"Example"}, Country: []string{"US"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		URIs:         []*url.URL{spiffe},
		DNSNames:     []string{"billing.us.example.org"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range []string{
		"cert_common_name: us-billing",
		`cert_subject: "CN=us-billing,O=Example,C=US"`,
		`cert_issuer: "CN=us-billing,O=Example,C=US"`,
		`san_uri: ["spiffe://example.org/ns/us/*"]`,
		`san_uri: ["spiffe://example.org/ns/us/sa/billing"]`,
		`san_dns: ["billing.us.example.org"]`,
	} {
		p := mustParse(t, "version: 1\ncolumns: []\nidentities:\n  - name: a\n    match: {"+cond+"}\n")
		if r := p.Match(Identity{TLS: true, Cert: cert}); r == nil {
			t.Errorf("%s does not match %s", cond, cert.Subject)
		}
	}
}

func TestClearanceResolution(t *testing.T) {
	p := mustParse(t, `version: 1
columns:
  - {column: public.customer.email, type: text, key: pii}
  - {column: public.customer.birth, type: date, key: pii}
  - {column: public.address.phone, type: varchar, key: pii}
  - {column: public.staff.email, type: text, key: staff}
  - {column: public.staff.pay, type: numeric, key: pay}
identities:
  - name: us
    match: {roles: [us]}
    clearance:
      default: deny
      keys: {pii: plaintext, staff: mask}
      columns: {public.address.phone: mask, public.customer.birth: null}
  - name: no-clearance
    match: {roles: [quiet]}
  - name: masked
    match: {roles: [masked]}
    clearance: {default: mask}
  - name: cleared-but-matched
    match: {roles: [cleared_too]}
    clearance: {default: null}
cleared:
  roles: [analyst, cleared_too]
`)
	col := func(s, tb, c string) *Column {
		col, ok := p.Column(s, tb, c)
		if !ok {
			t.Fatalf("no column %s.%s.%s", s, tb, c)
		}
		return col
	}
	email, birth, phone := col("public", "customer", "email"), col("public", "customer", "birth"), col("public", "address", "phone")
	staffEmail, pay := col("public", "staff", "email"), col("public", "staff", "pay")
	tests := []struct {
		role string
		col  *Column
		want Clearance
	}{
		{"us", email, Plaintext},                                  // by key
		{"us", birth, Null},                                       // by column, over the key
		{"us", phone, Mask},                                       // by column, over the key
		{"us", staffEmail, Mask},                                  // by key
		{"us", pay, Deny},                                         // default
		{"quiet", email, Ciphertext},                              // no clearance block
		{"quiet", pay, Ciphertext},                                //
		{"masked", email, Mask},                                   // default mask on text
		{"masked", phone, Mask},                                   // and varchar
		{"masked", birth, Ciphertext},                             // a date cannot be masked
		{"masked", pay, Ciphertext},                               // nor a number
		{"analyst", email, Plaintext},                             // cleared.roles after identities
		{"analyst", pay, Plaintext},                               //
		{"cleared_too", email, Null},                              // an identity wins over cleared.roles
		{"nobody", email, Ciphertext},                             // neither
		{"", email, Ciphertext},                                   //
		{"us", nil, Ciphertext},                                   // no column
		{"us", &Column{Name: email.Name, Key: "pii"}, Ciphertext}, // not this policy's column
	}
	for _, tt := range tests {
		if got := p.ClearanceFor(Identity{Role: tt.role}, tt.col); got != tt.want {
			t.Errorf("ClearanceFor(%q, %v) = %v, want %v", tt.role, tt.col, got, tt.want)
		}
	}
}

func TestRequireMTLSForPlaintext(t *testing.T) {
	const body = `
columns:
  - {column: public.customer.email, type: text, key: pii}
  - {column: public.customer.phone, type: text, key: pii}
  - {column: public.customer.code, type: text, key: pii}
  - {column: public.customer.note, type: text, key: pii}
identities:
  - name: us
    match: {source: ["10.0.0.0/8"]}
    clearance:
      keys: {pii: plaintext}
      columns: {public.customer.phone: mask, public.customer.code: null, public.customer.note: deny}
cleared:
  roles: [analyst]
`
	strict := mustParse(t, "version: 1\nrequire_mtls_for_plaintext: true"+body)
	lax := mustParse(t, "version: 1"+body)
	src := netip.MustParseAddr("10.0.0.1")
	cert := testCert("us-billing", "", "", nil)
	ids := map[string]Identity{
		"no TLS":             {Role: "analyst", Source: src},
		"TLS without cert":   {Role: "analyst", Source: src, TLS: true},
		"cert without TLS":   {Role: "analyst", Source: src, Cert: cert},
		"verified client":    {Role: "analyst", Source: src, TLS: true, Cert: cert},
		"cleared, no TLS":    {Role: "analyst"},
		"cleared, with cert": {Role: "analyst", TLS: true, Cert: cert},
	}
	tests := []struct {
		id                  string
		column              string
		strictWant, laxWant Clearance
	}{
		{"no TLS", "email", Ciphertext, Plaintext},
		{"no TLS", "phone", Ciphertext, Mask},
		{"no TLS", "code", Null, Null},
		{"no TLS", "note", Deny, Deny},
		{"TLS without cert", "email", Ciphertext, Plaintext},
		{"TLS without cert", "phone", Ciphertext, Mask},
		{"cert without TLS", "email", Ciphertext, Plaintext},
		{"verified client", "email", Plaintext, Plaintext},
		{"verified client", "phone", Mask, Mask},
		{"verified client", "code", Null, Null},
		{"verified client", "note", Deny, Deny},
		{"cleared, no TLS", "email", Ciphertext, Plaintext},
		{"cleared, with cert", "email", Plaintext, Plaintext},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			p    *Policy
			want Clearance
		}{{strict, tt.strictWant}, {lax, tt.laxWant}} {
			col, _ := c.p.Column("public", "customer", tt.column)
			if got := c.p.ClearanceFor(ids[tt.id], col); got != c.want {
				t.Errorf("require_mtls_for_plaintext %v, %s, %s: got %v, want %v", c.p.RequireMTLSForPlaintext(), tt.id, tt.column, got, c.want)
			}
		}
	}
}

func TestMayWrite(t *testing.T) {
	p := mustParse(t, `version: 1
columns: []
identities:
  - {name: sg-ops, match: {roles: [sg_ops]}, write: false}
  - {name: us, match: {roles: [us]}, write: true}
  - {name: default, match: {roles: [app]}}
cleared:
  roles: [analyst]
`)
	for role, want := range map[string]bool{"sg_ops": false, "us": true, "app": true, "analyst": true, "other": true, "": true} {
		if got := p.MayWrite(Identity{Role: role}); got != want {
			t.Errorf("MayWrite(%q) = %v, want %v", role, got, want)
		}
	}
	readOnly := mustParse(t, "version: 1\ncolumns: []\nidentities:\n  - {name: everyone, write: false}\n")
	if readOnly.MayWrite(Identity{Role: "anyone"}) {
		t.Error("a catch-all with write: false lets a caller write")
	}
}

func TestRoleRefs(t *testing.T) {
	p := mustParse(t, `version: 1
columns: []
identities:
  - {name: a, match: {roles: [r1, r2]}}
  - name: b
    match:
      roles:
        - r2
        - r3
cleared:
  roles: [r1, r4]
`)
	want := []roleRef{
		{"r1", 4, "identities[0].match.roles[0]"},
		{"r2", 4, "identities[0].match.roles[1]"},
		{"r2", 8, "identities[1].match.roles[0]"},
		{"r3", 9, "identities[1].match.roles[1]"},
		{"r1", 11, "cleared.roles[0]"},
		{"r4", 11, "cleared.roles[1]"},
	}
	got := p.roleRefs()
	if len(got) != len(want) {
		t.Fatalf("roleRefs = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("roleRefs[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestSANURIDotSegments refuses URIs whose path could escape a cleared prefix.
func TestSANURIDotSegments(t *testing.T) {
	pol, err := Parse([]byte(`version: 1
columns:
  - {column: public.t.c, type: text, key: k}
identities:
  - name: us
    match: {san_uri: ["spiffe://fle.test/us/*"]}
    clearance: {default: plaintext}
`), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for uri, want := range map[string]bool{
		"spiffe://fle.test/us/billing":        true,
		"spiffe://fle.test/us/../sg/x":        false,
		"spiffe://fle.test/us/./x":            false,
		"spiffe://fle.test/us/%2e%2e/sg":      false,
		"spiffe://fle.test/us/billing%2Fsg/x": false,
	} {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		id := Identity{TLS: true, Cert: &x509.Certificate{URIs: []*url.URL{u}}}
		if got := pol.Match(id) != nil; got != want {
			t.Errorf("%s: matched %v, want %v", uri, got, want)
		}
	}
}
