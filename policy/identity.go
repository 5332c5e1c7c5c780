package policy

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Identity is what the proxy has verified about a caller's connection. It
// holds only facts the caller cannot simply claim: application_name, SQL
// comments and SET ROLE never reach it.
type Identity struct {
	// Role is the database role the server authenticated the connection as:
	// the startup message's user, once the server accepted the credentials.
	Role string
	// Source is the client's address as the proxy's listener saw it; the
	// zero Addr when unknown, which matches no source condition.
	Source netip.Addr
	// TLS reports whether the client connection uses TLS.
	TLS bool
	// Cert is the client certificate's leaf, after the TLS handshake
	// verified its chain; nil if the client sent none. It counts only when
	// TLS is true: a certificate on a connection without TLS cannot have been
	// verified, so it is ignored.
	Cert *x509.Certificate
}

// verifiedCert returns the verified client certificate, or nil.
func (id Identity) verifiedCert() *x509.Certificate {
	if !id.TLS {
		return nil
	}
	return id.Cert
}

// Rule is one entry of the policy's identities list: conditions over the
// verified facts of a connection, and what a connection that meets them may
// see and do. Values are read-only and shared, like [Column].
type Rule struct {
	// Name names the identity in logs and the audit trail.
	Name string
	// Line is where the entry starts in the policy file.
	Line int

	// Conditions; an empty one is not checked. Validation guarantees that
	// the strings are non-empty when given and the lists non-empty.
	roles      []string
	roleAt     []int // line of each of roles
	commonName string
	subject    string
	issuer     string
	sanURI     []sanPattern
	sanDNS     []sanPattern
	sources    []netip.Prefix

	// Clearance: columns wins over keys, keys over def.
	def     Clearance
	keys    map[string]Clearance
	columns map[ColumnName]Clearance

	write bool
}

// sanPattern is one san_uri or san_dns entry: an exact value, or with a
// trailing '*' a prefix.
type sanPattern struct {
	text   string // without the '*'
	prefix bool
}

// Describe returns a one-line description for logs and audit records, such as
// `identity "us-billing" (line 12)`. It names the entry, never a fact about
// the connection.
func (r *Rule) Describe() string {
	return fmt.Sprintf("identity %q (line %d)", r.Name, r.Line)
}

// Identities returns the identity entries in file order, the order in which
// [Policy.Match] tries them. The slice is the caller's; the rules are shared.
func (p *Policy) Identities() []*Rule { return slices.Clone(p.rules) }

// Match returns the first identity entry whose conditions id meets, or nil if
// none does. cleared.roles is not an entry: a caller that matches no entry
// but has a cleared role gets nil here and Plaintext from
// [Policy.ClearanceFor].
func (p *Policy) Match(id Identity) *Rule {
	for _, r := range p.rules {
		if r.matches(id) {
			return r
		}
	}
	return nil
}

// catchAll reports whether r has no conditions and so matches every caller.
func (r *Rule) catchAll() bool {
	return len(r.roles) == 0 && len(r.sources) == 0 && !r.needsCert()
}

// needsCert reports whether r has a condition on the client certificate.
func (r *Rule) needsCert() bool {
	return r.commonName != "" || r.subject != "" || r.issuer != "" || len(r.sanURI) > 0 || len(r.sanDNS) > 0
}

// matches reports whether id meets every condition of r. A condition on the
// certificate fails without a verified certificate; a source condition fails
// without a known source address.
func (r *Rule) matches(id Identity) bool {
	if len(r.roles) > 0 && (id.Role == "" || !slices.Contains(r.roles, id.Role)) {
		return false
	}
	if len(r.sources) > 0 && !inPrefixes(id.Source, r.sources) {
		return false
	}
	if !r.needsCert() {
		return true
	}
	cert := id.verifiedCert()
	switch {
	case cert == nil,
		r.commonName != "" && cert.Subject.CommonName != r.commonName,
		r.subject != "" && cert.Subject.String() != r.subject,
		r.issuer != "" && cert.Issuer.String() != r.issuer,
		len(r.sanURI) > 0 && !matchURIs(cert, r.sanURI),
		len(r.sanDNS) > 0 && !matchDNS(cert, r.sanDNS):
		return false
	}
	return true
}

// clearance returns r's clearance for col: by column, else by key, else the
// default.
func (r *Rule) clearance(col *Column) Clearance {
	if c, ok := r.columns[col.Name]; ok {
		return c
	}
	if c, ok := r.keys[col.Key]; ok {
		return c
	}
	return r.def
}

// inPrefixes reports whether a is in one of ps. An IPv4-mapped IPv6 address
// counts as its IPv4 address, and a zone is ignored, so that a dual-stack
// listener's view of a client matches the policy's IPv4 prefixes.
func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// matchURIs reports whether one of cert's SAN URIs meets one of pats. URIs
// compare exactly, as url.URL.String prints them.
func matchURIs(cert *x509.Certificate, pats []sanPattern) bool {
	for _, u := range cert.URIs {
		if u == nil {
			continue
		}
		s := u.String()
		if p := u.EscapedPath(); strings.Contains(p, "%") || slices.Contains(strings.Split(p, "/"), "..") || slices.Contains(strings.Split(p, "/"), ".") {
			// Dot segments and percent-encoding would let a path that only starts with a
			// cleared prefix point elsewhere (SPIFFE forbids both in IDs); such a URI matches
			// nothing.
			continue
		}
		for _, p := range pats {
			if s == p.text || p.prefix && strings.HasPrefix(s, p.text) {
				return true
			}
		}
	}
	return false
}

// matchDNS reports whether one of cert's SAN DNS names meets one of pats.
// DNS names compare without regard to ASCII case (RFC 4343).
func matchDNS(cert *x509.Certificate, pats []sanPattern) bool {
	for _, name := range cert.DNSNames {
		for _, p := range pats {
			if asciiEqualFold(name, p.text) ||
				p.prefix && len(name) >= len(p.text) && asciiEqualFold(name[:len(p.text)], p.text) {
				return true
			}
		}
	}
	return false
}

// asciiEqualFold is strings.EqualFold folding only ASCII letters, as DNS
// does: Unicode folding would equate "k" with the Kelvin sign.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Sees returns what a caller matched by r sees of col: r's clearance for the column, adjusted as
// ClearanceFor adjusts it (masks only on text columns; with require_mtls_for_plaintext,
// plaintext and masks only for a caller with a verified client certificate, withCert).
func (p *Policy) Sees(r *Rule, col *Column, withCert bool) Clearance {
	c := r.clearance(col)
	if c == Mask && !col.Type.maskable() {
		c = Ciphertext
	}
	if (c == Plaintext || c == Mask) && p.requireMTLS && !withCert {
		c = Ciphertext
	}
	return c
}

// MayWrite reports whether callers matched by r may write protected columns.
func (r *Rule) MayWrite() bool { return r.write }
