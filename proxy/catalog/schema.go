package catalog

import (
	"github.com/fleproxy/fleproxy/proxy/analyze"
)

// Schema presents the cache to the SQL analyzer (analyze.Schema).
func (c *Cache) Schema() analyze.Schema { return schema{c} }

// schema adapts a Cache to analyze.Schema.
type schema struct{ c *Cache }

// ProtectedColumns maps each protected column of schema.table to the policy column whose key
// encrypts it (the parent's, for a partition). A column the catalog cannot attribute to exactly
// one policy entry is mapped to itself, which is in no policy entry: writing it is then refused.
func (s schema) ProtectedColumns(schemaName, table string) map[string]analyze.Column {
	names := s.c.ProtectedColumns(schemaName, table)
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]analyze.Column, len(names))
	for _, n := range names {
		if col, ok := s.c.Column(schemaName, table, n); ok {
			m[n] = analyze.Column{Schema: col.Name.Schema, Table: col.Name.Table, Name: col.Name.Column}
		} else {
			m[n] = analyze.Column{Schema: schemaName, Table: table, Name: n}
		}
	}
	return m
}

// SchemasOf returns the schemas holding a protected relation named table.
func (s schema) SchemasOf(table string) []string { return s.c.SchemasOf(table) }

// ColumnOrder returns schema.table's columns in attnum order.
func (s schema) ColumnOrder(schemaName, table string) ([]string, bool) {
	return s.c.ColumnOrder(schemaName, table)
}
