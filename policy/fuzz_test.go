package policy

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\ncolumns:\n  - {column: public.customer.email, type: text, key: pii, storage: text}\ncleared:\n  roles: [us_service]\n"))
	f.Add([]byte("version: 1\ncolumns:\n  - column: 'a.\"B\"\"c\".d'\n    id: x\n    type: timestamp with time zone\n    key: k\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("version: 1\ncolumns: [\n"))
	f.Add([]byte("---\n---\n"))
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
		for _, c := range p.Columns() {
			if c.Key == "" || c.Type == "" || c.Mode == "" || c.Storage == "" || c.ID == "" || ids[c.ID] {
				t.Fatalf("incomplete or duplicate column %+v", c)
			}
			ids[c.ID] = true
			if got, ok := p.Column(c.Name.Schema, c.Name.Table, c.Name.Column); !ok || got != c {
				t.Fatalf("Column(%v) does not find its own column", c.Name)
			}
			if again, err := ParseColumnName(c.Name.String()); err != nil || again != c.Name {
				t.Fatalf("name %#v does not round-trip through %q", c.Name, c.Name.String())
			}
		}
	})
}
