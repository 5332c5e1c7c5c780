package policy

import (
	"cmp"
	"fmt"
	"os"
	"slices"
)

// Version is the policy file format version this package reads.
const Version = 1

// Policy is one validated policy file. It is immutable and safe for
// concurrent use; reloading the policy means parsing a new one.
type Policy struct {
	source  string
	columns []*Column // file order
	byName  map[ColumnName]*Column
	byTable map[TableName][]*Column // file order within a table
	tables  []TableName             // sorted
	cleared map[string]struct{}     // authenticated roles cleared for plaintext
	roles   []string                // cleared roles, file order
	roleAt  []int                   // line of each of roles
	rules   []*Rule                 // identities, file order

	requireMTLS bool // require_mtls_for_plaintext
}

// Column is one protected column. Values are read-only: a *Column handed out
// by a Policy is shared by every caller.
type Column struct {
	// Name is the column's catalog name.
	Name ColumnName
	// ID is the stable column identity authenticated with every ciphertext of
	// the column, so a value copied to another column fails to decrypt. It
	// defaults to Name.String(); a column that is renamed keeps decrypting
	// only if its entry keeps the old ID.
	ID string
	// Type is the logical type the application reads and writes.
	Type Type
	// Mode is how values are encrypted.
	Mode Mode
	// Key names the keyring whose primary data key encrypts new values.
	Key string
	// Storage is how the database holds the ciphertext.
	Storage Storage
	// Mask is how the Mask clearance shows values; the zero TextMask is the
	// default. Only text, varchar and bpchar columns may set one.
	Mask TextMask
	// Line is where the column's entry starts in the policy file, for
	// messages about it.
	Line int
}

// Load reads and validates the policy file at path. A file that is read but
// invalid gives a [*ValidationError] listing every problem.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(data, path)
}

// Source returns the name the policy was parsed under (the path, for [Load]).
func (p *Policy) Source() string { return p.source }

// Columns returns every protected column in file order. The slice is the
// caller's; the columns are shared.
func (p *Policy) Columns() []*Column { return slices.Clone(p.columns) }

// Column returns the protected column schema.table.col, named as the catalog
// stores it (case-sensitive, unquoted).
func (p *Policy) Column(schema, table, col string) (*Column, bool) {
	c, ok := p.byName[ColumnName{Schema: schema, Table: table, Column: col}]
	return c, ok
}

// Tables returns every table that has a protected column, sorted by schema
// and then table name.
func (p *Policy) Tables() []TableName { return slices.Clone(p.tables) }

// ColumnsOf returns the protected columns of schema.table in file order, or
// nil if the table has none. Names are as the catalog stores them.
func (p *Policy) ColumnsOf(schema, table string) []*Column {
	return slices.Clone(p.byTable[TableName{Schema: schema, Table: table}])
}

// index builds the lookup maps from p.columns and p.roles.
func (p *Policy) index() {
	p.byName = make(map[ColumnName]*Column, len(p.columns))
	p.byTable = make(map[TableName][]*Column)
	for _, c := range p.columns {
		p.byName[c.Name] = c
		t := c.Name.TableName()
		if _, seen := p.byTable[t]; !seen {
			p.tables = append(p.tables, t)
		}
		p.byTable[t] = append(p.byTable[t], c)
	}
	slices.SortFunc(p.tables, func(a, b TableName) int {
		return cmp.Or(cmp.Compare(a.Schema, b.Schema), cmp.Compare(a.Table, b.Table))
	})
	p.cleared = make(map[string]struct{}, len(p.roles))
	for _, r := range p.roles {
		p.cleared[r] = struct{}{}
	}
}
