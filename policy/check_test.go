package policy

// CheckAgainstCatalog is tested against PostgreSQL in proxy/catalog; this
// test covers only how identities' roles are reported, against a fake
// catalog, so that the package's own tests stay pure Go.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// fakeCatalog answers the role query from a list of existing roles and every
// other query with no rows.
type fakeCatalog struct {
	roles   []string
	queried [][]string // the role lists asked about
}

func (f *fakeCatalog) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	if !strings.Contains(sql, "pg_roles") {
		return &fakeRows{}, nil
	}
	asked := args[0].([]string)
	f.queried = append(f.queried, asked)
	var missing []string
	for _, r := range asked {
		if !slices.Contains(f.roles, r) {
			missing = append(missing, r)
		}
	}
	return &fakeRows{vals: missing, i: -1}, nil
}

func (f *fakeCatalog) QueryRow(context.Context, string, ...any) pgx.Row {
	panic("QueryRow is not used by CheckAgainstCatalog")
}

// fakeRows is a result of one text column.
type fakeRows struct {
	vals []string
	i    int
}

func (r *fakeRows) Close()                                       {}
func (r *fakeRows) Err() error                                   { return nil }
func (r *fakeRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (r *fakeRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r *fakeRows) Next() bool                                   { r.i++; return r.i < len(r.vals) }
func (r *fakeRows) Values() ([]any, error)                       { return []any{r.vals[r.i]}, nil }
func (r *fakeRows) RawValues() [][]byte                          { return [][]byte{[]byte(r.vals[r.i])} }
func (r *fakeRows) Conn() *pgx.Conn                              { return nil }
func (r *fakeRows) TypeMap() *pgtype.Map                         { return nil }

func (r *fakeRows) Scan(dest ...any) error {
	if len(dest) != 1 {
		return errors.New("fakeRows has one column")
	}
	*dest[0].(*string) = r.vals[r.i]
	return nil
}

func TestCheckAgainstCatalogIdentityRoles(t *testing.T) {
	p := mustParse(t, `version: 1
columns: []
identities:
  - {name: a, match: {roles: [us_service, ghost]}}
  - name: b
    match:
      roles: [ghost, us_batch]
cleared:
  roles: [us_analyst, phantom]
`)
	cat := &fakeCatalog{roles: []string{"us_service", "us_batch", "us_analyst"}}
	err := p.CheckAgainstCatalog(context.Background(), cat)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("CheckAgainstCatalog = %v, want a *ValidationError", err)
	}
	want := []Problem{
		{4, "identities[0].match.roles[1]", `role "ghost" does not exist`},
		{7, "identities[1].match.roles[0]", `role "ghost" does not exist`},
		{9, "cleared.roles[1]", `role "phantom" does not exist`},
	}
	if !slices.Equal(ve.Problems, want) {
		t.Errorf("problems:\n got %s\nwant %s", fmtProblems(ve.Problems), fmtProblems(want))
	}
	wantAsked := [][]string{{"us_service", "ghost", "us_batch", "us_analyst", "phantom"}}
	if !slices.EqualFunc(cat.queried, wantAsked, slices.Equal) {
		t.Errorf("roles queried = %q, want each role once: %q", cat.queried, wantAsked)
	}

	cat = &fakeCatalog{roles: []string{"us_service", "us_batch", "us_analyst", "ghost", "phantom"}}
	if err := p.CheckAgainstCatalog(context.Background(), cat); err != nil {
		t.Errorf("CheckAgainstCatalog with every role present = %v", err)
	}
}
