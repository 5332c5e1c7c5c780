// Package policy reads and validates fleproxy's policy file: which columns are
// protected, how their values are encrypted, and which callers are cleared to
// read them in plaintext.
//
// A policy file is YAML:
//
//	version: 1
//	columns:
//	  - column: public.customer.email   # schema.table.column, SQL identifier syntax
//	    id: customer.email              # bound into every ciphertext; keep it when renaming
//	    type: text                      # logical type the application sees
//	    mode: randomized                # the only mode for now
//	    key: pii                        # keyring name
//	    storage: text                   # bytea (default) or text (armoured)
//	cleared:
//	  roles: [us_service, us_analyst]   # authenticated database roles cleared for plaintext
//
// [Parse] and [Load] validate the file strictly: an unknown field, a malformed
// column name, a duplicate, an unsupported type, mode or storage, or a missing
// key is an error, never a silently unprotected column. Every problem is
// reported at once, with its line, in a [*ValidationError].
// [Policy.CheckAgainstCatalog] then checks the file against a live database:
// every protected column must exist and its type must hold the chosen storage.
//
// The main types are [Policy], one immutable, validated file, safe for
// concurrent use; [Column], one protected column; and [Identity] and
// [Clearance], the verified facts about a caller and what the policy lets that
// caller see. The package knows nothing of sockets or the wire protocol: the
// proxy establishes an Identity and asks the policy for a Clearance.
package policy
