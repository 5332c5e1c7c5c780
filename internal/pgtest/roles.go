package pgtest

// Roles created by [Start]. Each test role may log in only over TCP from
// 127.0.0.1 and only with the pg_hba.conf method its name says; the
// proxy's authentication-relay tests rely on that one-to-one mapping.
const (
	// SuperUser is the bootstrap superuser; trust over TCP and the socket.
	SuperUser = "postgres"

	// TrustUser logs in without a password (method trust).
	TrustUser = "trust_user"

	// PasswordUser must send its password in cleartext (method password).
	PasswordUser = "password_user"
	// PasswordUserPassword is PasswordUser's password.
	PasswordUserPassword = "password-secret"

	// MD5User authenticates with method md5; its stored password is an MD5
	// hash, so the server does not upgrade the exchange to SCRAM.
	MD5User = "md5_user"
	// MD5UserPassword is MD5User's password.
	MD5UserPassword = "md5-secret"

	// SCRAMUser authenticates with method scram-sha-256.
	SCRAMUser = "scram_user"
	// SCRAMUserPassword is SCRAMUser's password.
	SCRAMUserPassword = "scram-secret"

	// AppUser authenticates with scram-sha-256 and owns AppDatabase and
	// every database made by [Cluster.CreateDatabase].
	AppUser = "app"
	// AppPassword is AppUser's password.
	AppPassword = "app-secret"
	// AppDatabase is the default test database.
	AppDatabase = "app"
)

// grantees lists the roles, besides the owner AppUser, that may connect to
// and create tables in every test database.
const grantees = TrustUser + ", " + PasswordUser + ", " + MD5User + ", " + SCRAMUser

// hbaConf is the whole pg_hba.conf. "host" lines match TCP connections with
// and without TLS. Roles that tests create themselves fall through to the
// last line.
const hbaConf = `# Written by fleproxy internal/pgtest.
# TYPE  DATABASE  USER           ADDRESS       METHOD
local   all       postgres                     trust
host    all       postgres       127.0.0.1/32  trust
host    all       trust_user     127.0.0.1/32  trust
host    all       password_user  127.0.0.1/32  password
host    all       md5_user       127.0.0.1/32  md5
host    all       scram_user     127.0.0.1/32  scram-sha-256
host    all       app            127.0.0.1/32  scram-sha-256
host    all       all            127.0.0.1/32  scram-sha-256
`
