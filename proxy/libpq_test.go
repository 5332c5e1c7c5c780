package proxy

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/lib/pq"
)

// TestLibPQ drives the proxy with lib/pq through database/sql, a second Go driver with its own
// protocol habits (unnamed statements, text formats, its COPY and LISTEN implementations), and
// compares every result with a direct connection.
func TestLibPQ(t *testing.T) {
	h := startProxy(t, nil)
	compare(t, h, func(t *testing.T, addr string) []string {
		db, err := sql.Open("postgres", connString(addr, "app", "app-secret", "app"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ctx := ctxT(t)
		table := uniqueName(t)
		var out []string
		note := func(err error) {
			if err != nil {
				if pe, ok := err.(*pq.Error); ok {
					out = append(out, string(pe.Code)+" "+strings.ReplaceAll(pe.Message, table, "TBL"))
					return
				}
				out = append(out, strings.ReplaceAll(err.Error(), table, "TBL"))
			}
		}
		_, err = db.ExecContext(ctx, "create table "+table+" (id int primary key, name text, at timestamptz)")
		note(err)
		stmt, err := db.PrepareContext(ctx, "insert into "+table+" values ($1, $2, $3)")
		note(err)
		for i := range 3 {
			_, err = stmt.ExecContext(ctx, i, fmt.Sprintf("name %d ☃", i), "2024-01-02 03:04:05+00")
			note(err)
		}
		stmt.Close()
		tx, err := db.BeginTx(ctx, nil)
		note(err)
		copyStmt, err := tx.Prepare(pq.CopyIn(table, "id", "name"))
		note(err)
		for i := 10; i < 13; i++ {
			_, err = copyStmt.Exec(i, fmt.Sprintf("copied %d", i))
			note(err)
		}
		_, err = copyStmt.Exec()
		note(err)
		note(copyStmt.Close())
		note(tx.Commit())
		_, err = db.ExecContext(ctx, "insert into "+table+" values (1, 'dup', now())")
		note(err)
		rows, err := db.QueryContext(ctx, "select id, name, at::text from "+table+" where id >= $1 order by id", 0)
		note(err)
		for rows != nil && rows.Next() {
			var id int
			var name string
			var at sql.NullString
			note(rows.Scan(&id, &name, &at))
			out = append(out, fmt.Sprint(id, name, at.String))
		}
		if rows != nil {
			note(rows.Err())
			rows.Close()
		}
		var n int
		note(db.QueryRowContext(ctx, "select count(*) from "+table).Scan(&n))
		return append(out, fmt.Sprint(n))
	})
}
