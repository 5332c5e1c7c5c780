package analyze

import "sort"

// testSchema is an in-memory Schema: protected columns and column orders by
// "schema.table".
type testSchema struct {
	prot  map[string][]string
	order map[string][]string
}

func (s testSchema) ProtectedColumns(schema, table string) map[string]Column {
	names := s.prot[schema+"."+table]
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]Column, len(names))
	for _, n := range names {
		m[n] = Column{Schema: schema, Table: table, Name: n}
	}
	return m
}

func (s testSchema) SchemasOf(table string) []string {
	var out []string
	for k := range s.prot {
		for i := 0; i < len(k); i++ {
			if k[i] == '.' && k[i+1:] == table {
				out = append(out, k[:i])
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

func (s testSchema) ColumnOrder(schema, table string) ([]string, bool) {
	cols, ok := s.order[schema+"."+table]
	return cols, ok
}

// fixture is the test schema: pagila-like tables.
var fixture = testSchema{
	prot: map[string][]string{
		"public.customer":  {"email"},
		"public.address":   {"address", "postal_code", "phone"},
		"sales.contact":    {"email"},
		"crm.contact":      {"email"},
		"public.People":    {"SSN"},
		"public.secret":    {"token"},
		"vault.long_names": {"x"},
	},
	order: map[string][]string{
		"public.customer": {"customer_id", "store_id", "first_name", "last_name", "email", "address_id", "active"},
		"public.address":  {"address_id", "address", "address2", "district", "city_id", "postal_code", "phone"},
		"public.orders":   {"id", "customer_id", "email", "note"},
		"sales.contact":   {"id", "email"},
		"crm.contact":     {"id", "email"},
		"public.People":   {"id", "SSN", "Name"},
	},
}

var (
	email      = Column{"public", "customer", "email"}
	addr       = Column{"public", "address", "address"}
	postal     = Column{"public", "address", "postal_code"}
	phone      = Column{"public", "address", "phone"}
	salesEmail = Column{"sales", "contact", "email"}
	ssn        = Column{"public", "People", "SSN"}
	token      = Column{"public", "secret", "token"}
)
