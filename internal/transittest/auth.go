package transittest

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// token is a service token in the token store.
type token struct {
	id, accessor string
	namespace    string
	policies     []string
	allow        []string // path patterns; nil: everything
	path         string   // where it was made, e.g. "auth/approle/login"
	meta         map[string]string
	issued       time.Time
	ttl          time.Duration // creation TTL and renewal default; 0: never expires
	maxTTL       time.Duration // from issued; 0: no cap
	expires      time.Time     // zero: never
	renewable    bool
	revoked      bool
}

// TokenOptions describes a token made by [Server.CreateToken].
type TokenOptions struct {
	// Namespace the token belongs to ("" is the root namespace); it works
	// there and in the namespaces below.
	Namespace string
	// TTL is the token's lifetime and what renew-self extends it by; 0
	// makes a token that never expires (and cannot be renewed).
	TTL time.Duration
	// MaxTTL caps the lifetime from creation across renewals; 0: no cap.
	MaxTTL time.Duration
	// NotRenewable makes renew-self fail with "lease is not renewable".
	NotRenewable bool
	// Policies are reported by lookup-self; they grant nothing by
	// themselves.
	Policies []string
	// Allow lists the paths (without namespace) the token may use: an exact
	// path, or a prefix ending in "*", as in Vault policy paths. nil allows
	// every path. auth/token/lookup-self, renew-self and revoke-self are
	// always allowed, as Vault's default policy does.
	Allow []string
}

// CreateToken issues a service token and returns its ID.
func (s *Server) CreateToken(o TokenOptions) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	policies := o.Policies
	if policies == nil {
		policies = []string{"default"}
	}
	return s.issueLocked(o.Namespace, "auth/token/create", policies, o.Allow, nil, o.TTL, o.MaxTTL, !o.NotRenewable).id
}

func (s *Server) issueLocked(ns, madeBy string, policies, allow []string, meta map[string]string, ttl, maxTTL time.Duration, renewable bool) *token {
	now := time.Now()
	t := &token{
		id:        "hvs." + newID(16),
		accessor:  newID(12),
		namespace: normNamespace(ns),
		policies:  slices.Clone(policies),
		allow:     slices.Clone(allow),
		path:      madeBy,
		meta:      meta,
		issued:    now,
		ttl:       ttl,
		maxTTL:    maxTTL,
		renewable: renewable && ttl > 0,
	}
	if ttl > 0 {
		t.expires = now.Add(ttl)
		if maxTTL > 0 && maxTTL < ttl {
			t.expires = now.Add(maxTTL)
		}
	}
	s.tokens[t.id] = t
	return t
}

// RevokeToken revokes the token with ID id: from then on it gets 403
// "permission denied", "invalid token".
func (s *Server) RevokeToken(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tokens[id]; t != nil {
		t.revoked = true
	}
}

// TokenTTL reports how long the token with ID id has left (0 for a token
// that never expires) and whether it is valid at all.
func (s *Server) TokenTTL(id string) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[id]
	if t == nil || !t.valid(time.Now()) {
		return 0, false
	}
	if t.expires.IsZero() {
		return 0, true
	}
	return time.Until(t.expires), true
}

func (t *token) valid(now time.Time) bool {
	return !t.revoked && (t.expires.IsZero() || now.Before(t.expires))
}

func (t *token) allows(p string) bool {
	if t.allow == nil {
		return true
	}
	for _, a := range t.allow {
		if prefix, ok := strings.CutSuffix(a, "*"); ok && strings.HasPrefix(p, prefix) || a == p {
			return true
		}
	}
	return false
}

// authenticate checks X-Vault-Token for req (vault/request_handling.go,
// fetchACLTokenEntryAndEntity). s.mu is held.
func (s *Server) authenticate(req *request, id string) (*token, *apiError) {
	if id == "" {
		return nil, errPermissionDenied
	}
	t := s.tokens[id]
	if t == nil || !t.valid(time.Now()) {
		return nil, errInvalidToken
	}
	if t.namespace != "" && req.ns != t.namespace && !strings.HasPrefix(req.ns, t.namespace+"/") {
		return nil, errPermissionDenied
	}
	return t, nil
}

// authBlock is the "auth" part of a login or renewal response.
type authBlock struct {
	ClientToken   string            `json:"client_token"`
	Accessor      string            `json:"accessor"`
	Policies      []string          `json:"policies"`
	TokenPolicies []string          `json:"token_policies"`
	Metadata      map[string]string `json:"metadata"`
	LeaseDuration int               `json:"lease_duration"`
	Renewable     bool              `json:"renewable"`
	EntityID      string            `json:"entity_id"`
	TokenType     string            `json:"token_type"`
	Orphan        bool              `json:"orphan"`
}

// auth is the token as a login or renewal answers it, with a lease of ttl.
func (t *token) auth(ttl time.Duration) *authBlock {
	return &authBlock{
		ClientToken: t.id, Accessor: t.accessor, Policies: t.policies, TokenPolicies: t.policies,
		Metadata: t.meta, LeaseDuration: int(ttl / time.Second), Renewable: t.renewable,
		TokenType: "service", Orphan: true,
	}
}

func (t *token) secondsLeft(now time.Time) int {
	if t.expires.IsZero() {
		return 0
	}
	return int(t.expires.Sub(now) / time.Second)
}

// tokenSelf serves auth/token/lookup-self, renew-self and revoke-self
// (https://developer.hashicorp.com/vault/api-docs/auth/token). s.mu is held.
func (s *Server) tokenSelf(req *request) (*response, *apiError) {
	t, now := req.token, time.Now()
	switch req.path {
	case "auth/token/lookup-self":
		if req.method != "read" && req.method != "write" {
			return nil, errUnsupportedMethod
		}
		data := map[string]any{
			"id": t.id, "accessor": t.accessor, "policies": t.policies, "path": t.path,
			"meta": t.meta, "display_name": "token", "num_uses": 0, "orphan": true,
			"creation_time": t.issued.Unix(), "creation_ttl": int64(t.ttl / time.Second),
			"explicit_max_ttl": int64(t.maxTTL / time.Second), "expire_time": nil,
			"ttl": t.secondsLeft(now), "renewable": t.renewable, "entity_id": "", "type": "service",
			"issue_time": t.issued.Format(time.RFC3339Nano),
		}
		if !t.expires.IsZero() {
			data["expire_time"] = t.expires.Format(time.RFC3339Nano)
		}
		if t.namespace != "" {
			data["namespace_path"] = t.namespace + "/"
		}
		return &response{Data: data}, nil
	case "auth/token/renew-self":
		if req.method != "write" {
			return nil, errUnsupportedMethod
		}
		inc, aerr := req.seconds("increment")
		if aerr != nil {
			return nil, aerr
		}
		// vault/expiration.go RenewToken: leaseEntry.renewable.
		if !t.renewable || t.expires.IsZero() {
			return nil, badRequest("lease is not renewable")
		}
		ttl := t.ttl
		if inc > 0 {
			ttl = inc
		}
		resp := &response{}
		// sdk/framework.CalculateTTL caps the TTL at the max TTL.
		if t.maxTTL > 0 && now.Add(ttl).After(t.issued.Add(t.maxTTL)) {
			capped := t.issued.Add(t.maxTTL).Sub(now)
			resp.Warnings = append(resp.Warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly", ttl.String(), capped.Truncate(time.Second).String()))
			ttl = capped
		}
		t.expires = now.Add(ttl)
		resp.Auth = t.auth(ttl)
		return resp, nil
	case "auth/token/revoke-self":
		if req.method != "write" {
			return nil, errUnsupportedMethod
		}
		t.revoked = true
		return nil, nil
	default:
		if !t.allows(req.path) {
			return nil, errPermissionDenied
		}
		return nil, notImplemented("token store path " + req.path)
	}
}

// AppRole is a role of the AppRole auth method
// (https://developer.hashicorp.com/vault/api-docs/auth/approle).
type AppRole struct {
	// Namespace and Mount place the auth method; Mount defaults to
	// "approle".
	Namespace, Mount string
	// RoleID and SecretID are the credentials login takes.
	RoleID, SecretID string
	// TokenTTL and TokenMaxTTL shape the issued tokens (token_ttl,
	// token_max_ttl); TokenTTL defaults to one hour.
	TokenTTL, TokenMaxTTL time.Duration
	// Allow is the issued tokens' allow-list (see TokenOptions.Allow).
	Allow []string
}

// AddAppRole registers r; logins at auth/MOUNT/login with its role ID and
// secret ID succeed from then on.
func (s *Server) AddAppRole(r AppRole) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Mount == "" {
		r.Mount = "approle"
	}
	n := s.namespaceLocked(r.Namespace)
	if n.approle[r.Mount] == nil {
		n.approle[r.Mount] = map[string]*AppRole{}
	}
	n.approle[r.Mount][r.RoleID] = &r
}

// KubernetesRole is a role of the Kubernetes auth method
// (https://developer.hashicorp.com/vault/api-docs/auth/kubernetes).
type KubernetesRole struct {
	// Namespace and Mount place the auth method; Mount defaults to
	// "kubernetes".
	Namespace, Mount string
	// Role is the role name login takes; JWT is the one service-account
	// token it accepts (no TokenReview is made).
	Role, JWT string
	// TokenTTL and TokenMaxTTL shape the issued tokens; TokenTTL defaults
	// to one hour.
	TokenTTL, TokenMaxTTL time.Duration
	// Allow is the issued tokens' allow-list (see TokenOptions.Allow).
	Allow []string
}

// AddKubernetesRole registers r.
func (s *Server) AddKubernetesRole(r KubernetesRole) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Mount == "" {
		r.Mount = "kubernetes"
	}
	n := s.namespaceLocked(r.Namespace)
	if n.k8s[r.Mount] == nil {
		n.k8s[r.Mount] = map[string]*KubernetesRole{}
	}
	n.k8s[r.Mount][r.Role] = &r
}

// login serves auth/:mount/login of AppRole and Kubernetes mounts; ok is
// false for any other path. s.mu is held.
func (s *Server) login(n *namespace, req *request) (resp *response, aerr *apiError, ok bool) {
	rest, found := strings.CutPrefix(req.path, "auth/")
	if !found {
		return nil, nil, false
	}
	mount, found := strings.CutSuffix(rest, "/login")
	if !found {
		return nil, nil, false
	}
	approles, isAppRole := n.approle[mount]
	k8sRoles, isK8s := n.k8s[mount]
	if !isAppRole && !isK8s {
		return nil, nil, false
	}
	if req.method != "write" {
		return nil, errUnsupportedMethod, true
	}
	madeBy := path.Join("auth", mount, "login")
	if isAppRole {
		// builtin/credential/approle/path_login.go
		roleID, aerr := req.str("role_id")
		if aerr != nil {
			return nil, aerr, true
		}
		secretID, aerr := req.str("secret_id")
		if aerr != nil {
			return nil, aerr, true
		}
		if roleID == "" {
			return nil, badRequest("missing role_id"), true
		}
		r := approles[roleID]
		if r == nil {
			return nil, badRequest("invalid role or secret ID"), true
		}
		if secretID == "" {
			return nil, badRequest("missing secret_id"), true
		}
		if secretID != r.SecretID {
			return nil, badRequest("invalid role or secret ID"), true
		}
		t := s.issueLocked(req.ns, madeBy, []string{"default"}, r.Allow, map[string]string{"role_name": r.RoleID}, defaultTTL(r.TokenTTL), r.TokenMaxTTL, true)
		return &response{Auth: t.auth(t.expires.Sub(t.issued))}, nil, true
	}
	// vault-plugin-auth-kubernetes path_login.go
	role, aerr := req.str("role")
	if aerr != nil {
		return nil, aerr, true
	}
	jwt, aerr := req.str("jwt")
	if aerr != nil {
		return nil, aerr, true
	}
	if role == "" {
		return nil, badRequest("missing role"), true
	}
	if jwt == "" {
		return nil, badRequest("missing jwt"), true
	}
	r := k8sRoles[role]
	if r == nil {
		return nil, badRequest("invalid role name %q", role), true
	}
	if strings.TrimSpace(jwt) != strings.TrimSpace(r.JWT) {
		return nil, errPermissionDenied, true
	}
	t := s.issueLocked(req.ns, madeBy, []string{"default"}, r.Allow, map[string]string{"role": r.Role}, defaultTTL(r.TokenTTL), r.TokenMaxTTL, true)
	return &response{Auth: t.auth(t.expires.Sub(t.issued))}, nil, true
}

func defaultTTL(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Hour
	}
	return d
}
