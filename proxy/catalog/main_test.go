package catalog

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fleproxy/fleproxy/internal/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

// databases numbers the test databases, which share one cluster.
var databases atomic.Int64

// newDB creates a database for one test, runs setup in it as the superuser,
// and returns it.
func newDB(t *testing.T, setup string) *testDB {
	t.Helper()
	ctx := context.Background()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(t.Name()))
	name = fmt.Sprintf("%.40s_%d", name, databases.Add(1))
	if err := cluster.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	db := &testDB{connString: cluster.ConnString("postgres", "", name)}
	db.conn = db.connect(t)
	if setup != "" {
		if _, err := db.conn.Exec(ctx, setup); err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	return db
}
