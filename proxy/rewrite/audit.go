package rewrite

import (
	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy/analyze"
)

// The audit log is a separate zerolog stream (Env's audit logger) with one record per decision
// that matters to a reviewer: each session's identity and the rule it matched, each statement
// result that revealed plaintext (its fingerprint, the columns and how many values), and each
// refused or denied statement. It never holds a value: statements appear only as fingerprints
// or with their constants replaced.

// identityName names the policy rule a session matched, for messages and the audit log.
func (s *Session) identityName(v *view) string {
	if v.rule != nil {
		return v.rule.Describe()
	}
	return "role " + s.identity.Role
}

// auditSession records the session's verified facts and what they match.
func (s *Session) auditSession(v *view) {
	ev := v.env.audit.Info().Str("event", "session").Uint64("conn", s.id).
		Str("role", s.identity.Role).Bool("tls", s.identity.TLS).Bool("may_write", v.mayWrite).
		Bool("decrypts", v.decrypts).Str("policy", v.env.policy.Source())
	if s.identity.Source.IsValid() {
		ev = ev.Str("source", s.identity.Source.String())
	}
	if c := s.identity.Cert; c != nil {
		ev = ev.Str("cert_subject", c.Subject.String()).Str("cert_issuer", c.Issuer.String())
		var uris []string
		for _, u := range c.URIs {
			uris = append(uris, u.String())
		}
		ev = ev.Strs("cert_san_uri", uris).Strs("cert_san_dns", c.DNSNames)
	}
	if v.rule != nil {
		ev = ev.Str("identity", v.rule.Describe())
	} else {
		ev = ev.Str("identity", "none (cleared.roles and defaults apply)")
	}
	ev.Msg("session identity")
}

// fingerprint identifies a statement without its constants.
func fingerprint(sql string) string {
	if fp, err := analyze.Fingerprint(sql); err == nil {
		return fp
	}
	return analyze.Normalize(sql)
}

// auditRevealed records that a result showed n decrypted values of cols to this session.
func (s *Session) auditRevealed(h *pending, cols []string, n int64) {
	v := s.view()
	ev := v.env.audit.Info().Str("event", "plaintext").Uint64("conn", s.id).Str("role", s.identity.Role).
		Str("identity", s.identityName(v)).Strs("columns", cols).Int64("values", n)
	if h != nil && h.stmt != nil && h.stmt.sql != "" {
		ev = ev.Str("fingerprint", fingerprint(h.stmt.sql))
	}
	ev.Msg("plaintext revealed")
}

// auditRefusal records a statement the proxy refused, in the audit stream and, without the
// statement, in the operational log.
func (s *Session) auditRefusal(sql string, e *Error) {
	s.log.Info().Str("sqlstate", e.Code).Str("reason", e.logReason()).Msg("statement refused")
	v := s.view()
	v.env.audit.Warn().Str("event", "refused").Uint64("conn", s.id).Str("role", s.identity.Role).
		Str("identity", s.identityName(v)).Str("sqlstate", e.Code).Str("reason", e.logReason()).
		Str("fingerprint", fingerprint(sql)).Msg("statement refused")
}

// auditDenied records a read of a column the policy denies to this session.
func (s *Session) auditDenied(h *pending, col *policy.Column) {
	v := s.view()
	ev := v.env.audit.Warn().Str("event", "denied").Uint64("conn", s.id).Str("role", s.identity.Role).
		Str("identity", s.identityName(v)).Str("column", col.Name.String())
	if h != nil && h.stmt != nil && h.stmt.sql != "" {
		ev = ev.Str("fingerprint", fingerprint(h.stmt.sql))
	}
	ev.Msg("read denied")
}
