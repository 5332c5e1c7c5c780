// Package pgtest starts throwaway PostgreSQL clusters for tests and for the
// `fleproxy demo` command.
//
// [Start] runs initdb into a fresh temporary directory, configures TLS (a
// server certificate from a new [testcerts.CA]), writes a pg_hba.conf with one
// role per authentication method (see the constants such as [SCRAMUser]),
// starts the server on a free 127.0.0.1 port and waits until it accepts
// connections. [Cluster.Stop] kills it and removes the directory. [Main] wraps
// both around a package's tests:
//
//	var pg *pgtest.Cluster
//
//	func TestMain(m *testing.M) { pgtest.Main(m, &pg) }
//
// The server binaries come from `pg_config --bindir` or the newest
// /usr/lib/postgresql/*/bin that contains initdb and postgres. PostgreSQL
// refuses to run as root, so when the caller is root the server runs as the
// "postgres" OS user (or "nobody" if there is none), owning the temporary
// directory.
//
// Authentication methods: https://www.postgresql.org/docs/current/auth-methods.html
package pgtest
