package catalog

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// testDB is one throwaway database. Tests query it through conn; each Cache
// gets a connection of its own from connect, since a *pgx.Conn serves one
// caller at a time.
type testDB struct {
	connString string
	conn       *pgx.Conn
}

// connect opens a new connection to the database, closed when the test ends.
func (db *testDB) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), db.connString)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
