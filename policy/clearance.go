package policy

import "slices"

// Identity is what the proxy has verified about a caller's connection. It
// holds only facts the caller cannot simply claim: application_name, SQL
// comments and SET ROLE never reach it.
//
// Only the authenticated role is used so far; the TLS client certificate
// (subject, SAN URIs, issuer) and the source address will join it when the
// policy can name identities by rules over them.
type Identity struct {
	// Role is the database role the server authenticated the connection as:
	// the startup message's user, once the server accepted the credentials.
	Role string
}

// Clearance is what a caller may see of a protected column's values.
// The zero value is Ciphertext, so an unset clearance fails closed.
type Clearance uint8

const (
	// Ciphertext passes stored values through unchanged.
	Ciphertext Clearance = iota
	// Plaintext decrypts values for the caller.
	Plaintext
)

// String returns the clearance's policy-file spelling.
func (c Clearance) String() string {
	switch c {
	case Ciphertext:
		return "ciphertext"
	case Plaintext:
		return "plaintext"
	}
	return "unknown"
}

// ClearanceFor returns what id may see of col's values: Plaintext when id's
// authenticated role is listed under cleared.roles, Ciphertext otherwise,
// including for a nil col or a col of another Policy (such as one from before
// a reload).
func (p *Policy) ClearanceFor(id Identity, col *Column) Clearance {
	if col == nil || p.byName[col.Name] != col {
		return Ciphertext
	}
	if p.IsCleared(id.Role) {
		return Plaintext
	}
	return Ciphertext
}

// IsCleared reports whether the authenticated database role is cleared for
// plaintext. Role names compare exactly, as the catalog stores them.
func (p *Policy) IsCleared(role string) bool {
	if role == "" {
		return false
	}
	_, ok := p.cleared[role]
	return ok
}

// ClearedRoles returns the roles cleared for plaintext, in file order.
func (p *Policy) ClearedRoles() []string { return slices.Clone(p.roles) }
