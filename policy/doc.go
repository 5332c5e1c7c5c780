// Package policy reads and validates fleproxy's policy file: which columns are
// protected, how their values are encrypted, and what each caller, named by
// rules over the verified facts of its connection, may see of them.
//
// A policy file is YAML:
//
//	version: 1
//	require_mtls_for_plaintext: false   # true: plaintext and mask need a verified client certificate
//	columns:
//	  - column: public.customer.email   # schema.table.column, SQL identifier syntax
//	    id: customer.email              # bound into every ciphertext; keep it when renaming
//	    type: text                      # logical type the application sees
//	    mode: randomized                # the only mode for now
//	    key: pii                        # keyring name
//	    storage: text                   # bytea (default) or text (armoured)
//	    mask: {keep_last: 4, char: "*"} # text, varchar, bpchar only; what the mask clearance shows
//	identities:
//	  - name: us-billing                # in logs and audit records
//	    match:                          # every condition given must hold
//	      roles: [us_service]           # the role the database authenticated
//	      cert_common_name: us-billing  # verified client certificate's subject CN
//	      cert_subject: "CN=us-billing,O=Example"  # subject DN as pkix.Name.String prints it
//	      cert_issuer: "CN=Example US CA"          # the leaf's issuer DN, likewise
//	      san_uri: ["spiffe://example.org/ns/us/*"] # any SAN URI equals one; trailing * = prefix
//	      san_dns: ["billing.us.example.org"]       # likewise for SAN DNS names (ASCII case ignored)
//	      source: ["10.0.0.0/8", "::1"]             # client address in one of these CIDRs
//	    clearance:
//	      default: ciphertext           # plaintext | ciphertext | null | mask | deny
//	      keys: {pii: plaintext}        # per keyring, wins over default
//	      columns: {public.address.phone: mask}  # per column, wins over keys
//	    write: true                     # may write protected columns (default true)
//	  - name: everyone-else             # no match: a catch-all, allowed only last
//	    clearance: {default: null}
//	cleared:
//	  roles: [us_analyst]               # shorthand: plaintext of every column
//
// # Identities and clearances
//
// A caller's [Identity] is what the proxy verified about its connection: the
// authenticated database role, the source address, and the client
// certificate whose chain the TLS handshake verified. The identities list is
// tried in file order and the first matching identity wins. An identity
// matches when every condition it gives holds; a condition on the
// certificate fails without a verified certificate, a source condition
// without a known address. An identity without conditions matches everyone,
// and must be the last one.
//
// The winning identity's clearance for a column is its columns entry for
// the column, else its keys entry for the column's keyring, else its
// default, else ciphertext. cleared.roles is a shorthand evaluated after
// identities: a caller that matches no identity sees plaintext of every
// column if its role is listed there, and ciphertext otherwise. A mask
// clearance for a column that is not text, varchar or bpchar gives
// ciphertext. With require_mtls_for_plaintext, plaintext and mask apply only
// to connections with a verified client certificate and give ciphertext
// otherwise. See [Policy.ClearanceFor], [Policy.MayWrite] and
// [Policy.Match].
//
// # Validation
//
// [Parse] and [Load] validate the file strictly: an unknown field, a malformed
// column name, a duplicate, an unsupported type, mode or storage, a missing
// key, a malformed identity condition or clearance, or a clearance for a
// column or key the policy does not protect is an error, never a silently
// unprotected column or a silently broader identity. Every problem is
// reported at once, with its line, in a [*ValidationError].
// [Policy.CheckAgainstCatalog] then checks the file against a live database:
// every protected column must exist and its type must hold the chosen
// storage, and every role the file names must exist.
//
// The main types are [Policy], one immutable, validated file, safe for
// concurrent use; [Column], one protected column; [Rule], one identity entry;
// and [Identity] and [Clearance], the verified facts about a caller and what
// the policy lets that caller see. The package knows nothing of sockets or
// the wire protocol: the proxy establishes an Identity and asks the policy
// for a Clearance.
package policy
