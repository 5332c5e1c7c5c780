package policy

import (
	"fmt"
	"slices"
)

// Clearance is what a caller may see of a protected column's values.
// The zero value is Ciphertext, so an unset clearance fails closed.
type Clearance uint8

const (
	// Ciphertext passes stored values through unchanged.
	Ciphertext Clearance = iota
	// Plaintext decrypts values for the caller.
	Plaintext
	// Null returns NULL in place of every value.
	Null
	// Mask decrypts values and returns them masked with [Column.MaskText].
	// [Policy.ClearanceFor] gives it only for text, varchar and bpchar
	// columns.
	Mask
	// Deny refuses any statement whose results include the column.
	Deny
)

// String returns the clearance's policy-file spelling.
func (c Clearance) String() string {
	switch c {
	case Ciphertext:
		return "ciphertext"
	case Plaintext:
		return "plaintext"
	case Null:
		return "null"
	case Mask:
		return "mask"
	case Deny:
		return "deny"
	}
	return "unknown"
}

// ParseClearance returns the clearance s names: plaintext, ciphertext, null,
// mask or deny, in lower case. The error suggests the closest spelling.
func ParseClearance(s string) (Clearance, error) {
	known := make([]string, 0, Deny+1)
	for c := Ciphertext; c <= Deny; c++ {
		if s == c.String() {
			return c, nil
		}
		known = append(known, c.String())
	}
	return Ciphertext, fmt.Errorf("unknown clearance %q %s", s, suggest(s, known, "clearances"))
}

// ClearanceFor returns what id may see of col's values. It is resolved in
// this order:
//
//  1. the first identity that id matches ([Policy.Match]) decides, by its
//     clearance for col's name, else for col's key, else its default
//     (Ciphertext unless given);
//  2. with no matching identity, Plaintext if id's authenticated role is
//     listed under cleared.roles, else Ciphertext.
//
// Mask on a column that is not text, varchar or bpchar becomes Ciphertext.
// When the policy sets require_mtls_for_plaintext, Plaintext and Mask become
// Ciphertext unless id carries a verified client certificate. A nil col, or a
// col of another Policy (such as one from before a reload), gives Ciphertext.
func (p *Policy) ClearanceFor(id Identity, col *Column) Clearance {
	if col == nil || p.byName[col.Name] != col {
		return Ciphertext
	}
	c := Ciphertext
	if r := p.Match(id); r != nil {
		c = r.clearance(col)
	} else if p.IsCleared(id.Role) {
		c = Plaintext
	}
	if c == Mask && !col.Type.maskable() {
		c = Ciphertext
	}
	if (c == Plaintext || c == Mask) && p.requireMTLS && id.verifiedCert() == nil {
		c = Ciphertext
	}
	return c
}

// MayWrite reports whether id may write protected columns: the write setting
// of the first identity id matches (true unless the identity says
// write: false), and true when no identity matches.
func (p *Policy) MayWrite(id Identity) bool {
	if r := p.Match(id); r != nil {
		return r.write
	}
	return true
}

// IsCleared reports whether the authenticated database role is listed under
// cleared.roles. Role names compare exactly, as the catalog stores them. It
// says nothing of identities: use [Policy.ClearanceFor] for a decision.
func (p *Policy) IsCleared(role string) bool {
	if role == "" {
		return false
	}
	_, ok := p.cleared[role]
	return ok
}

// ClearedRoles returns the roles listed under cleared.roles, in file order.
func (p *Policy) ClearedRoles() []string { return slices.Clone(p.roles) }

// RequireMTLSForPlaintext reports whether the policy sets
// require_mtls_for_plaintext: Plaintext and Mask clearances then apply only
// to connections with a verified client certificate.
func (p *Policy) RequireMTLSForPlaintext() bool { return p.requireMTLS }
