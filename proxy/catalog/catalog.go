// Package catalog maps the database's catalog onto a policy: which result
// column is a protected column, and which table names a statement may use to
// reach one.
//
// The read path asks [Cache.Lookup] about every RowDescription field: the
// field's table OID and attribute number (protocol chapter "Message Formats",
// RowDescription) resolve to the [policy.Column] they come from, or to
// nothing, in which case the values pass through as they are. The write path's
// SQL analyzer asks by name ([Cache.Column], [Cache.ProtectedColumns],
// [Cache.SchemasOf], [Cache.ColumnOrder], [Cache.IsProtectedTableName]).
//
// A protected table's descendants, found through pg_inherits at any depth
// (partitions of a partitioned table, and children of plain inheritance), are
// protected by the same policy columns, matched by column name since their
// attribute numbers may differ. A table column reached by two different
// policy columns (a partition listed beside its parent, or a child of two
// protected parents) is attributed to neither: its values stay ciphertext and
// [Cache.Column] does not resolve it, so the analyzer refuses the write;
// [policy.Policy.CheckAgainstCatalog] reports the conflict.
//
// Views are not attributed yet. PostgreSQL describes a column selected through
// a view with the view's OID and attribute number, not the table's, so such a
// column resolves to nothing and stays ciphertext even for cleared callers:
// the cache fails closed. The same holds for expressions, whole-row values and
// anything else RowDescription does not tie to a table column. Nor are view
// names reported to the write path: a write through an updatable view is
// caught only by the database-side ciphertext CHECK on the base column.
package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleproxy/fleproxy/policy"
)

// Cache resolves catalog identifiers to a policy's protected columns. It is
// safe for concurrent use: lookups read an immutable snapshot without locking,
// and [Cache.Refresh] replaces the snapshot whole.
type Cache struct {
	pol *policy.Policy
	q   policy.Querier

	refreshMu sync.Mutex // serialises Refresh, so an older snapshot never replaces a newer one
	snap      atomic.Pointer[snapshot]
}

// New returns a cache for pol, reading the catalog through q, and loads it
// once with [Cache.Refresh]. q may be a *pgxpool.Pool or a *pgx.Conn of its
// own (refreshes are serialised, so one connection suffices). The cache
// belongs to one policy: when the policy is reloaded, build a new cache.
func New(ctx context.Context, pol *policy.Policy, q policy.Querier) (*Cache, error) {
	c := &Cache{pol: pol, q: q}
	c.snap.Store(build(pol, nil))
	if err := c.Refresh(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Policy returns the policy the cache was built from.
func (c *Cache) Policy() *policy.Policy { return c.pol }

// Lookup returns the protected column a RowDescription field comes from,
// given the field's table OID and attribute number. It takes no lock and
// allocates nothing.
func (c *Cache) Lookup(tableOID uint32, attnum int16) (*policy.Column, bool) {
	col, ok := c.snap.Load().attrs[attrKey{tableOID, attnum}]
	return col, ok
}

// Column returns the policy column that protects schema.table.column, where
// the table is one the policy names or a descendant of one. Names are as the
// catalog stores them (case-sensitive, unquoted). A column claimed by two
// policy columns through inheritance does not resolve.
func (c *Cache) Column(schema, table, column string) (*policy.Column, bool) {
	t := c.snap.Load().tables[policy.TableName{Schema: schema, Table: table}]
	if t == nil {
		return nil, false
	}
	col := t.protected[column]
	return col, col != nil
}

// ProtectedColumns returns the names of the protected columns of
// schema.table (a table the policy names, or a descendant of one), in policy
// file order, or nil. It includes a column whose attribution is in conflict.
func (c *Cache) ProtectedColumns(schema, table string) []string {
	t := c.snap.Load().tables[policy.TableName{Schema: schema, Table: table}]
	if t == nil {
		return nil
	}
	return slices.Clone(t.protectedNames)
}

// SchemasOf returns, sorted, the schemas that hold a protected table (or a
// descendant of one) called table, as the catalog spells it. An analyzer that
// resolves an unqualified name should treat it as protected when any of these
// schemas is on the session's search_path: guessing wrong then costs an
// encrypted value in an unprotected column, never a plaintext one in a
// protected column.
func (c *Cache) SchemasOf(table string) []string {
	return slices.Clone(c.snap.Load().schemasOf[table])
}

// ColumnOrder returns every column of schema.table that is not dropped, in
// attribute-number order: the order in which INSERT without a column list and
// COPY without one assign values. ok is false unless schema.table is a
// protected table, or a descendant of one, that existed at the last Refresh.
func (c *Cache) ColumnOrder(schema, table string) (columns []string, ok bool) {
	t := c.snap.Load().tables[policy.TableName{Schema: schema, Table: table}]
	if t == nil || !t.exists {
		return nil, false
	}
	return slices.Clone(t.columns), true
}

// IsProtectedTableName reports whether name, compared without regard to case,
// is the name of a protected table or of a descendant of one in any schema.
// It is a cheap pre-check: false means a statement naming only other tables
// cannot touch a protected column; true means look closer.
func (c *Cache) IsProtectedTableName(name string) bool {
	_, ok := c.snap.Load().lowerNames[strings.ToLower(name)]
	return ok
}

// Refresh re-reads the OIDs, attribute numbers and descendants of the
// protected tables. The proxy calls it after a DDL statement completes and
// periodically; a column dropped and added again gets a new attribute number,
// and a new partition becomes protected only here. On error the previous
// snapshot stays in place.
func (c *Cache) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	rels, err := readRelations(ctx, c.q, c.pol.Tables())
	if err != nil {
		return fmt.Errorf("catalog: refresh: %w", err)
	}
	c.snap.Store(build(c.pol, rels))
	return nil
}

// RefreshEvery calls [Cache.Refresh] every interval (which must be positive)
// until ctx is done, passing each failure to report (which may be nil). It
// returns ctx.Err().
func (c *Cache) RefreshEvery(ctx context.Context, interval time.Duration, report func(error)) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := c.Refresh(ctx); err != nil && report != nil && ctx.Err() == nil {
				report(err)
			}
		}
	}
}
