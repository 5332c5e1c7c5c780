package policy

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\ncolumns:\n  - {column: public.customer.email, type: text, key: pii, storage: text}\ncleared:\n  roles: [us_service]\n"))
	f.Add([]byte("version: 1\ncolumns:\n  - column: 'a.\"B\"\"c\".d'\n    id: x\n    type: timestamp with time zone\n    key: k\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("version: 1\ncolumns: [\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte(fullPolicy))
	f.Add([]byte("version: 1\ncolumns:\n  - {column: s.t.c, type: text, key: k, mask: {keep_last: 0, char: \"•\"}}\nidentities:\n  - {name: a, match: {source: [\"::1\", 10.0.0.0/8]}, clearance: {columns: {s.t.c: mask}}}\n  - {name: b, clearance: {default: null}, write: false}\n"))
	f.Add([]byte("version: 1\ncolumns: []\nidentities:\n  - {name: a}\n  - {name: a, match: {san_uri: ['x*y'], san_dns: [], cert_subject: cn}}\ncleared: {roles: [r]}\n"))
	callers := []Identity{
		{},
		{Role: "us_service"},
		{Role: "r", Source: netip.MustParseAddr("10.1.1.1"), TLS: true, Cert: testCert("us-billing", "Example", "Example US CA", []string{"spiffe://example.org/ns/us/x"}, "billing.us.example.org")},
		{Source: netip.MustParseAddr("::1"), TLS: true},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error is not a non-empty *ValidationError: %v", err)
			}
			return
		}
		ids := make(map[string]bool)
		keys := make(map[string]bool)
		for _, c := range p.Columns() {
			if c.Key == "" || c.Type == "" || c.Mode == "" || c.Storage == "" || c.ID == "" || ids[c.ID] {
				t.Fatalf("incomplete or duplicate column %+v", c)
			}
			ids[c.ID] = true
			keys[c.Key] = true
			if got, ok := p.Column(c.Name.Schema, c.Name.Table, c.Name.Column); !ok || got != c {
				t.Fatalf("Column(%v) does not find its own column", c.Name)
			}
			if again, err := ParseColumnName(c.Name.String()); err != nil || again != c.Name {
				t.Fatalf("name %#v does not round-trip through %q", c.Name, c.Name.String())
			}
			if c.Mask != (TextMask{}) && (!c.Type.maskable() || c.Mask.KeepLast < 0 || c.Mask.Char == 0) {
				t.Fatalf("column %v has mask %+v", c.Name, c.Mask)
			}
		}
		rules := p.Identities()
		names := make(map[string]bool)
		for i, r := range rules {
			if r.Name == "" || names[r.Name] || r.Describe() == "" {
				t.Fatalf("unnamed or duplicate identity %+v", r)
			}
			names[r.Name] = true
			if r.catchAll() && i != len(rules)-1 {
				t.Fatalf("catch-all %s is not last", r.Describe())
			}
			for k := range r.keys {
				if !keys[k] {
					t.Fatalf("%s has a clearance for unused key %q", r.Describe(), k)
				}
			}
			for n := range r.columns {
				if _, ok := p.Column(n.Schema, n.Table, n.Column); !ok {
					t.Fatalf("%s has a clearance for unprotected column %v", r.Describe(), n)
				}
			}
		}
		for _, id := range callers {
			if r := p.Match(id); r != nil && !slices.Contains(rules, r) {
				t.Fatalf("Match returned a rule not in Identities")
			}
			p.MayWrite(id)
			for _, c := range p.Columns() {
				if cl := p.ClearanceFor(id, c); cl > Deny {
					t.Fatalf("ClearanceFor = %d", cl)
				}
			}
		}
	})
}
