package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// maxIdentityNameLen bounds identity names, which appear in every audit
// record.
const maxIdentityNameLen = 64

// identities reads the identities list. It runs after columns, whose names
// and keys the clearances refer to.
func (ps *parser) identities(seq *yaml.Node, pol *Policy) {
	byName := make(map[string]*Rule)
	for i, n := range seq.Content {
		path := fmt.Sprintf("identities[%d]", i)
		start := len(ps.problems)
		f := ps.mapping(n, path, []string{"name", "match", "clearance", "write"})
		if f == nil {
			continue
		}
		r := &Rule{Line: n.Line, write: true}

		s, present := ps.scalar(f["name"], path+".name")
		switch err := checkIdentityName(s); {
		case !present:
			ps.add(n.Line, path+".name", "missing: name the identity (the name appears in logs and audit records)")
		case err != nil:
			ps.add(f["name"].Line, path+".name", "%v", err)
		case byName[s] != nil:
			ps.add(f["name"].Line, path+".name", "identity %q is already defined at line %d", s, byName[s].Line)
		default:
			r.Name = s
			byName[s] = r
		}

		conditions := 0
		if m := f["match"]; m != nil {
			conditions = ps.match(m, path+".match", r)
		}
		if conditions == 0 {
			if i < len(seq.Content)-1 {
				ps.add(n.Line, path, "no match conditions: this identity matches every caller, so the identities after it never apply; make it the last one")
			}
			if ps.catchAll == nil {
				ps.catchAll = r
			}
		}

		if c := f["clearance"]; c != nil && !isNull(c) {
			ps.ruleClearance(c, path+".clearance", r)
		}
		if w := f["write"]; w != nil {
			r.write, _ = ps.boolean(w, path+".write")
		}

		if len(ps.problems) == start {
			pol.rules = append(pol.rules, r)
		}
	}
}

// match reads an identity's conditions into r and returns how many are
// given, well-formed or not (1 for a match that is null or not a mapping), so
// that an identity whose conditions are malformed is not also reported as a
// catch-all.
func (ps *parser) match(n *yaml.Node, path string, r *Rule) int {
	if isNull(n) {
		ps.add(n.Line, path, "empty: give at least one condition, or leave match out for an identity that matches every caller")
		return 1
	}
	f := ps.mapping(n, path, []string{"roles", "cert_common_name", "cert_subject", "cert_issuer", "san_uri", "san_dns", "source"})
	if f == nil {
		return 1
	}

	seen := make(map[string]bool)
	for j, e := range ps.list(f["roles"], path+".roles", "database role names") {
		p := fmt.Sprintf("%s.roles[%d]", path, j)
		s, _ := ps.scalar(e, p)
		switch err := checkRole(s); {
		case err != nil:
			ps.add(e.Line, p, "%v", err)
		case seen[s]:
			ps.add(e.Line, p, "role %q is listed twice", s)
		default:
			seen[s] = true
			r.roles = append(r.roles, s)
			r.roleAt = append(r.roleAt, e.Line)
		}
	}

	r.commonName = ps.condText(f["cert_common_name"], path+".cert_common_name", false)
	r.subject = ps.condText(f["cert_subject"], path+".cert_subject", true)
	r.issuer = ps.condText(f["cert_issuer"], path+".cert_issuer", true)

	for j, e := range ps.list(f["san_uri"], path+".san_uri", "URIs") {
		p := fmt.Sprintf("%s.san_uri[%d]", path, j)
		if s, present := ps.scalar(e, p); present {
			if pat, err := parseSANPattern(s, false); err != nil {
				ps.add(e.Line, p, "%v", err)
			} else {
				r.sanURI = append(r.sanURI, pat)
			}
		} else if isNull(e) {
			ps.add(e.Line, p, "empty pattern")
		}
	}
	for j, e := range ps.list(f["san_dns"], path+".san_dns", "DNS names") {
		p := fmt.Sprintf("%s.san_dns[%d]", path, j)
		if s, present := ps.scalar(e, p); present {
			if pat, err := parseSANPattern(s, true); err != nil {
				ps.add(e.Line, p, "%v", err)
			} else {
				r.sanDNS = append(r.sanDNS, pat)
			}
		} else if isNull(e) {
			ps.add(e.Line, p, "empty pattern")
		}
	}

	for j, e := range ps.list(f["source"], path+".source", "addresses or CIDRs") {
		p := fmt.Sprintf("%s.source[%d]", path, j)
		if s, present := ps.scalar(e, p); present {
			if pfx, err := parseSource(s); err != nil {
				ps.add(e.Line, p, "%v", err)
			} else {
				r.sources = append(r.sources, pfx)
			}
		} else if isNull(e) {
			ps.add(e.Line, p, "empty address")
		}
	}
	return len(n.Content) / 2
}

// list returns the entries of the list n, reporting n if it is not a list or
// is empty; a nil n (the field is absent) gives nil silently. An empty list
// is refused rather than read as "no condition" or "matches nothing": either
// reading would surprise someone.
func (ps *parser) list(n *yaml.Node, path, what string) []*yaml.Node {
	switch {
	case n == nil:
		return nil
	case isNull(n) || n.Kind == yaml.SequenceNode && len(n.Content) == 0:
		ps.add(n.Line, path, "empty: list at least one, or leave the field out")
		return nil
	case n.Kind != yaml.SequenceNode:
		ps.add(n.Line, path, "must be a list of %s", what)
		return nil
	}
	return n.Content
}

// condText reads a certificate name condition; dn asks for a distinguished
// name. It returns "" after a problem or when n is nil.
func (ps *parser) condText(n *yaml.Node, path string, dn bool) string {
	if n == nil {
		return ""
	}
	if isNull(n) {
		ps.add(n.Line, path, "empty: give a value, or leave the field out")
		return ""
	}
	s, present := ps.scalar(n, path)
	switch {
	case !present:
	case s == "":
		ps.add(n.Line, path, "empty: give a value, or leave the field out")
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		ps.add(n.Line, path, "%q contains control characters or invalid UTF-8", s)
	case dn && !strings.Contains(s, "="):
		ps.add(n.Line, path, "%q is not a distinguished name: write it as Go's pkix.Name.String prints it, e.g. CN=us-billing,O=Example", s)
	default:
		return s
	}
	return ""
}

// ruleClearance reads an identity's clearance block into r.
func (ps *parser) ruleClearance(n *yaml.Node, path string, r *Rule) {
	f := ps.mapping(n, path, []string{"default", "keys", "columns"})
	if f == nil {
		return
	}
	if v := f["default"]; v != nil {
		r.def, _ = ps.clearanceValue(v, path+".default")
	}

	keyAt := make(map[string]int)
	for k, v := range ps.pairs(f["keys"], path+".keys", "keyring names") {
		p := joinPath(path+".keys", k.Value)
		c, ok := ps.clearanceValue(v, p)
		switch {
		case !slices.Contains(ps.keys, k.Value):
			msg := fmt.Sprintf("no protected column uses key %q", k.Value)
			if len(ps.keys) > 0 {
				msg += " " + suggest(k.Value, ps.keys, "keys")
			}
			ps.add(k.Line, p, "%s", msg)
		case keyAt[k.Value] > 0:
			ps.add(k.Line, p, "key %q is given twice (first at line %d)", k.Value, keyAt[k.Value])
		default:
			keyAt[k.Value] = k.Line
			if ok {
				if r.keys == nil {
					r.keys = make(map[string]Clearance)
				}
				r.keys[k.Value] = c
			}
		}
	}

	firstAt := make(map[ColumnName]int)
	for k, v := range ps.pairs(f["columns"], path+".columns", "column names") {
		p := joinPath(path+".columns", k.Value)
		c, ok := ps.clearanceValue(v, p)
		name, err := ParseColumnName(k.Value)
		if err != nil {
			ps.add(k.Line, p, "bad column name %q: %v", k.Value, err)
			continue
		}
		typ, protected := ps.protected[name]
		switch {
		case !protected:
			ps.add(k.Line, p, "column %s is not protected by this policy%s", name, ps.nearestColumn(name))
			continue
		case firstAt[name] > 0:
			ps.add(k.Line, p, "column %s is given twice (first at line %d)", name, firstAt[name])
			continue
		}
		firstAt[name] = k.Line
		switch {
		case !ok:
		case c == Mask && typ != "" && !typ.maskable():
			ps.add(v.Line, p, "mask applies only to text, varchar and bpchar columns; %s is %s", name, typ)
		default:
			if r.columns == nil {
				r.columns = make(map[ColumnName]Clearance)
			}
			r.columns[name] = c
		}
	}
}

// pairs returns an iterator over the key and value nodes of the mapping n,
// reporting n if it is not a mapping and any key that is not a plain scalar.
// A nil or null n gives nothing.
func (ps *parser) pairs(n *yaml.Node, path, what string) func(yield func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		if n == nil || isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			ps.add(n.Line, path, "must be a mapping from %s to clearances", what)
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				ps.add(k.Line, path, "must be a mapping from %s to clearances", what)
				continue
			}
			if !yield(k, v) {
				return
			}
		}
	}
}

// nearestColumn returns " (did you mean x?)" for the protected column whose
// name is nearest to name, or "".
func (ps *parser) nearestColumn(name ColumnName) string {
	names := make([]string, 0, len(ps.protected))
	for c := range ps.protected {
		names = append(names, c.String())
	}
	slices.Sort(names)
	if best := closest(name.String(), names); best != "" {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return ""
}

// clearanceValue reads one clearance word. YAML reads a bare null as the
// null value, which here means the Null clearance; ~ or nothing at all is a
// missing value.
func (ps *parser) clearanceValue(n *yaml.Node, path string) (Clearance, bool) {
	if isNull(n) {
		if strings.EqualFold(n.Value, "null") {
			return Null, true
		}
		ps.add(n.Line, path, "missing: write plaintext, ciphertext, null, mask or deny")
		return Ciphertext, false
	}
	s, present := ps.scalar(n, path)
	if !present {
		return Ciphertext, false
	}
	c, err := ParseClearance(s)
	if err != nil {
		ps.add(n.Line, path, "%v", err)
		return Ciphertext, false
	}
	return c, true
}

// checkIdentityName restricts identity names to characters that are safe in
// logs and metric labels.
func checkIdentityName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	ok := len(s) <= maxIdentityNameLen && isAlnum(s[0])
	for i := 0; ok && i < len(s); i++ {
		ok = isAlnum(s[i]) || s[i] == '_' || s[i] == '-' || s[i] == '.'
	}
	if !ok {
		return fmt.Errorf("bad identity name %q: use letters, digits, '_', '-' and '.', starting with a letter or digit, at most %d characters", s, maxIdentityNameLen)
	}
	return nil
}

// parseSANPattern parses a san_uri (dns false) or san_dns (dns true) entry:
// an exact value, or a prefix followed by '*'.
func parseSANPattern(s string, dns bool) (sanPattern, error) {
	text, prefix := strings.CutSuffix(s, "*")
	switch {
	case s == "":
		return sanPattern{}, errors.New("empty pattern")
	case strings.Contains(text, "*"):
		return sanPattern{}, fmt.Errorf("pattern %q: '*' is allowed only at the end, for a prefix match (a leading wildcard such as *.example.org is not supported)", s)
	case text == "":
		return sanPattern{}, fmt.Errorf("pattern %q matches any value; give a prefix before the '*'", s)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }):
		return sanPattern{}, fmt.Errorf("pattern %q contains spaces, control characters or invalid UTF-8", s)
	case dns && strings.ContainsFunc(s, func(r rune) bool { return r >= utf8.RuneSelf }):
		return sanPattern{}, fmt.Errorf("pattern %q is not ASCII: write an internationalised DNS name in its xn-- form", s)
	}
	return sanPattern{text: text, prefix: prefix}, nil
}

// parseSource parses a source entry: a CIDR, or a bare address standing for
// its /32 or /128.
func parseSource(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q: want an address or address/length, e.g. 10.0.0.0/8, 2001:db8::/32 or 127.0.0.1", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			return netip.Prefix{}, fmt.Errorf("bad address %q: want an address or address/length, e.g. 10.0.0.0/8, 2001:db8::/32 or 127.0.0.1", s)
		case a.Zone() != "":
			return netip.Prefix{}, fmt.Errorf("address %q has a zone, which a source condition cannot use", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	switch {
	case p.Addr().Is4In6():
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write the IPv4 form (IPv4 clients are matched as IPv4)", s)
	case p.Masked() != p:
		return netip.Prefix{}, fmt.Errorf("CIDR %q has bits set after its prefix length; write %s", s, p.Masked())
	}
	return p, nil
}
