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
// Views and materialized views are attributed too. PostgreSQL describes a
// column selected through a view with the view's OID and attribute number, not
// the table's, so [Cache.Refresh] reads every view that depends, at any depth,
// on a protected table (pg_depend on the view's _RETURN rule), and
// analyze.ViewColumns reads its definition (pg_get_viewdef): a view column
// that is a plain reference to a protected column, through aliases, joins,
// sub-selects, CTEs and other views, is attributed to that policy column, as
// the table's own column is. Every other view column — an expression, a
// UNION's column, anything the analysis cannot be certain of — stays
// unattributed and its values stay ciphertext: the cache fails closed. A view
// with an attributed column is also a protected relation for the write path,
// its columns mapped to the base policy columns, so a write through an
// updatable view is encrypted for the base column. Expressions, whole-row
// values and anything else RowDescription does not tie to a table or view
// column resolve to nothing.
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
	c.snap.Store(build(pol, nil, nil))
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
// the table is one the policy names, a descendant of one, or a view passing
// one of their protected columns on (for which it returns the base column).
// Names are as the catalog stores them (case-sensitive, unquoted). A column
// claimed by two policy columns through inheritance does not resolve, nor does
// a view column passing such a column on.
func (c *Cache) Column(schema, table, column string) (*policy.Column, bool) {
	t := c.snap.Load().tables[policy.TableName{Schema: schema, Table: table}]
	if t == nil {
		return nil, false
	}
	col := t.protected[column]
	return col, col != nil
}

// ProtectedColumns returns the names of the protected columns of
// schema.table (a table the policy names, a descendant of one, or a view
// passing one of their protected columns on), in policy file order of the
// base columns, or nil. It includes a column whose attribution is in conflict
// (last, for a view).
func (c *Cache) ProtectedColumns(schema, table string) []string {
	t := c.snap.Load().tables[policy.TableName{Schema: schema, Table: table}]
	if t == nil {
		return nil
	}
	return slices.Clone(t.protectedNames)
}

// SchemasOf returns, sorted, the schemas that hold a protected table (or a
// descendant of one, or a view with a protected column) called table, as the
// catalog spells it. An analyzer that resolves an unqualified name should
// treat it as protected when any of these schemas is on the session's
// search_path: guessing wrong then costs an encrypted value in an unprotected
// column, never a plaintext one in a protected column.
func (c *Cache) SchemasOf(table string) []string {
	return slices.Clone(c.snap.Load().schemasOf[table])
}

// ColumnOrder returns every column of schema.table that is not dropped, in
// attribute-number order: the order in which INSERT without a column list and
// COPY without one assign values. ok is false unless schema.table is a
// protected table, a descendant of one, or a view with a protected column,
// that existed at the last Refresh.
func (c *Cache) ColumnOrder(schema, table string) (columns []string, ok bool) {
	t := c.snap.Load().tables[policy.TableName{Schema: schema, Table: table}]
	if t == nil || !t.exists {
		return nil, false
	}
	return slices.Clone(t.columns), true
}

// IsProtectedTableName reports whether name, compared without regard to case,
// is the name of a protected table, of a descendant of one, or of a view with
// a protected column, in any schema.
// It is a cheap pre-check: false means a statement naming only other tables
// cannot touch a protected column; true means look closer.
func (c *Cache) IsProtectedTableName(name string) bool {
	_, ok := c.snap.Load().lowerNames[strings.ToLower(name)]
	return ok
}

// Refresh re-reads the OIDs, attribute numbers and descendants of the
// protected tables, and the views that read them. The proxy calls it after a
// DDL statement completes and periodically; a column dropped and added again
// gets a new attribute number, and a new partition, a new view or a changed
// view definition takes effect only here. If the tables cannot be read, the
// previous snapshot stays in place. If only the views cannot be (a view
// dropped while Refresh reads it, a lock taken by DDL in progress), the tables
// are refreshed, the views keep their previous definitions, and the error is
// returned all the same. A view that DDL in progress holds locked, or whose
// relations it holds locked, keeps its previous definition too, without an
// error; a view first seen so is attributed from the next Refresh on.
func (c *Cache) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	rels, err := readRelations(ctx, c.q, c.pol.Tables())
	if err != nil {
		return fmt.Errorf("catalog: refresh: %w", err)
	}
	prev := c.snap.Load().views
	views, verr := readViews(ctx, c.q, relationOIDs(rels))
	if verr != nil {
		views = prev
	} else {
		views = keepLocked(views, prev)
	}
	c.snap.Store(build(c.pol, rels, views))
	if verr != nil {
		return fmt.Errorf("catalog: refresh: %w (tables refreshed, views kept as they were)", verr)
	}
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
