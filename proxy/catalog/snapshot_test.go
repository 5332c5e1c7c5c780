package catalog

import (
	"testing"

	"github.com/fleproxy/fleproxy/policy"
)

// These tests index hand-made catalog rows, without a server.

func TestBuildConflicts(t *testing.T) {
	p := mustPolicy(t, `version: 1
columns:
  - {column: public.parent.email, type: text, key: pii}
  - {column: public.child.email, type: text, key: pii}
  - {column: public.child.phone, type: text, key: pii}
`)
	parent, _ := p.Column("public", "parent", "email")
	phone, _ := p.Column("public", "child", "phone")
	tn := func(table string) policy.TableName { return policy.TableName{Schema: "public", Table: table} }
	// public.child is listed in the policy and is also a partition of
	// public.parent; public.leaf is a partition of public.child.
	rels := []relation{
		{root: tn("parent"), oid: 10, name: tn("parent"), columns: []string{"id", "email"}, attnums: []int16{1, 2}},
		{root: tn("parent"), oid: 11, name: tn("child"), columns: []string{"id", "email", "phone"}, attnums: []int16{1, 2, 3}},
		{root: tn("parent"), oid: 12, name: tn("leaf"), columns: []string{"email", "phone", "id"}, attnums: []int16{1, 2, 4}},
		{root: tn("child"), oid: 11, name: tn("child"), columns: []string{"id", "email", "phone"}, attnums: []int16{1, 2, 3}},
		{root: tn("child"), oid: 12, name: tn("leaf"), columns: []string{"email", "phone", "id"}, attnums: []int16{1, 2, 4}},
	}
	s := build(p, rels, nil)
	c := &Cache{pol: p}
	c.snap.Store(s)

	for _, tc := range []struct {
		oid    uint32
		attnum int16
		want   *policy.Column
	}{
		{10, 2, parent},
		{11, 2, nil}, // claimed by parent.email and child.email
		{12, 1, nil},
		{11, 3, phone},
		{12, 2, phone},
		{12, 4, nil},
		{10, 1, nil},
	} {
		got, ok := c.Lookup(tc.oid, tc.attnum)
		if got != tc.want || ok != (tc.want != nil) {
			t.Errorf("Lookup(%d, %d) = %v, %v; want %v", tc.oid, tc.attnum, got, ok, tc.want)
		}
	}
	if _, ok := c.Column("public", "leaf", "email"); ok {
		t.Error("Column(leaf, email) resolved a conflicted column")
	}
	if got, ok := c.Column("public", "leaf", "phone"); !ok || got != phone {
		t.Errorf("Column(leaf, phone) = %v, %v", got, ok)
	}
	wantStrings(t, "ProtectedColumns(leaf)", c.ProtectedColumns("public", "leaf"), []string{"email", "phone"})
	wantStrings(t, "ProtectedColumns(parent)", c.ProtectedColumns("public", "parent"), []string{"email"})
	if order, ok := c.ColumnOrder("public", "leaf"); !ok || len(order) != 3 {
		t.Errorf("ColumnOrder(leaf) = %v, %v", order, ok)
	}
}

func TestBuildWithoutCatalog(t *testing.T) {
	p := mustPolicy(t, `version: 1
columns:
  - {column: public.customer.email, type: text, key: pii}
  - {column: crm.customer.phone, type: text, key: pii}
`)
	c := &Cache{pol: p}
	c.snap.Store(build(p, nil, nil))
	wantStrings(t, "SchemasOf(customer)", c.SchemasOf("customer"), []string{"crm", "public"})
	wantStrings(t, "ProtectedColumns(crm, customer)", c.ProtectedColumns("crm", "customer"), []string{"phone"})
	if _, ok := c.ColumnOrder("crm", "customer"); ok {
		t.Error("ColumnOrder without a catalog")
	}
	if _, ok := c.Lookup(1, 1); ok {
		t.Error("Lookup without a catalog")
	}
}

func BenchmarkLookup(b *testing.B) {
	p, err := policy.Parse([]byte(`version: 1
columns:
  - {column: public.customer.email, type: text, key: pii}
  - {column: public.address.phone, type: text, key: pii}
`), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	tn := func(table string) policy.TableName { return policy.TableName{Schema: "public", Table: table} }
	c := &Cache{pol: p}
	c.snap.Store(build(p, []relation{
		{root: tn("customer"), oid: 16384, name: tn("customer"), columns: []string{"id", "email"}, attnums: []int16{1, 2}},
		{root: tn("address"), oid: 16390, name: tn("address"), columns: []string{"id", "phone"}, attnums: []int16{1, 2}},
	}, nil))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := c.Lookup(16384, 2); !ok {
				b.Fatal("miss")
			}
			if _, ok := c.Lookup(16384, 1); ok {
				b.Fatal("hit")
			}
		}
	})
}
