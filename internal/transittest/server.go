package transittest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// maxBody bounds a request body, as Vault's max_request_size does (32 MiB).
const maxBody = 32 << 20

// Server is a Vault-compatible HTTP server for tests. Create it with [New]
// or [NewTLS]; it is closed by the test's cleanup. It is safe for
// concurrent use.
type Server struct {
	tb      testing.TB
	useTLS  bool
	rootTok string

	mu      sync.Mutex
	srv     *httptest.Server // nil while stopped
	addr    string           // host:port, kept across Stop and Start
	url     string
	certPEM []byte
	sealed  bool
	closed  bool
	tokens  map[string]*token
	nss     map[string]*namespace
	calls   map[string]int
}

// namespace holds what Vault keeps per namespace: mounts and roles.
type namespace struct {
	transit map[string]*transitMount       // mount path → keys
	approle map[string]map[string]*AppRole // auth mount → role ID → role
	k8s     map[string]map[string]*KubernetesRole
}

func newNamespace() *namespace {
	return &namespace{
		transit: map[string]*transitMount{},
		approle: map[string]map[string]*AppRole{},
		k8s:     map[string]map[string]*KubernetesRole{},
	}
}

// New starts a plain-HTTP server with Transit enabled at "transit" in the
// root namespace and a non-expiring root token ([Server.RootToken]).
func New(tb testing.TB) *Server { return start(tb, false) }

// NewTLS is [New] over HTTPS, with httptest's self-signed certificate for
// 127.0.0.1 and "example.com" ([Server.CACertPEM]).
func NewTLS(tb testing.TB) *Server { return start(tb, true) }

func start(tb testing.TB, useTLS bool) *Server {
	tb.Helper()
	s := &Server{
		tb:     tb,
		useTLS: useTLS,
		tokens: map[string]*token{},
		nss:    map[string]*namespace{"": newNamespace()},
		calls:  map[string]int{},
	}
	s.nss[""].transit["transit"] = newTransitMount()
	s.rootTok = s.CreateToken(TokenOptions{Policies: []string{"root"}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("transittest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	tb.Cleanup(s.Close)
	return s
}

// serve starts the HTTP server on ln. s.mu must not be held.
func (s *Server) serve(ln net.Listener) {
	hs := httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	// Handshakes that a test makes fail on purpose are not worth a log line.
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.Listener.Close()
	hs.Listener = ln
	if s.useTLS {
		hs.StartTLS()
	} else {
		hs.Start()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv = hs
	s.url = hs.URL
	if s.useTLS && s.certPEM == nil {
		s.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
	}
}

// URL is the server's address as VAULT_ADDR takes it, e.g.
// "http://127.0.0.1:34567". It stays the same across Stop and Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// CACertPEM is the PEM certificate that verifies a [NewTLS] server (nil for
// plain HTTP), for VAULT_CACERT or a CA file.
func (s *Server) CACertPEM() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.certPEM)
}

// RootToken is a non-expiring token that may do everything, in every
// namespace.
func (s *Server) RootToken() string { return s.rootTok }

// Stop closes the listener and every connection: until [Server.Start],
// clients get "connection refused", as from a Vault that is down. State
// (keys, tokens) is kept.
func (s *Server) Stop() {
	s.mu.Lock()
	hs := s.srv
	s.srv = nil
	s.mu.Unlock()
	if hs != nil {
		hs.CloseClientConnections()
		hs.Close()
	}
}

// Start reopens the listener on the address the server had, after
// [Server.Stop]. It does nothing if the server is running.
func (s *Server) Start() {
	s.tb.Helper()
	s.mu.Lock()
	running, closed, addr := s.srv != nil, s.closed, s.addr
	s.mu.Unlock()
	if running || closed {
		return
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may still be held briefly by the closed listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.tb.Fatalf("transittest: restart on %s: %v", addr, err)
	}
	s.serve(ln)
}

// Close stops the server for good.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Stop()
}

// SetSealed makes every request answer 503 {"errors": ["Vault is sealed"]}
// (sealed is true) or answer normally again.
func (s *Server) SetSealed(sealed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = sealed
}

// Calls reports how many requests reached path (without "/v1/" and
// without the namespace), e.g. "auth/approle/login" or
// "transit/encrypt/fleproxy", sealed answers included.
func (s *Server) Calls(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// EnableTransit mounts a Transit engine at mount in namespace ns ("" is the
// root namespace), creating the namespace if needed.
func (s *Server) EnableTransit(ns, mount string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.namespaceLocked(ns)
	if n.transit[mount] == nil {
		n.transit[mount] = newTransitMount()
	}
}

func (s *Server) namespaceLocked(ns string) *namespace {
	ns = normNamespace(ns)
	n := s.nss[ns]
	if n == nil {
		n = newNamespace()
		s.nss[ns] = n
	}
	return n
}

func normNamespace(ns string) string { return strings.Trim(ns, "/") }

// request is one API call as the handlers see it.
type request struct {
	method string // "read", "write", "delete" or "list", as Vault's logical operations
	ns     string
	path   string // without "/v1/" and the namespace
	params map[string]any
	token  *token // nil on unauthenticated paths
	seen   map[string]bool
}

// response is Vault's envelope (https://developer.hashicorp.com/vault/api-docs#responses).
type response struct {
	RequestID     string         `json:"request_id"`
	LeaseID       string         `json:"lease_id"`
	Renewable     bool           `json:"renewable"`
	LeaseDuration int            `json:"lease_duration"`
	Data          map[string]any `json:"data"`
	WrapInfo      any            `json:"wrap_info"`
	Warnings      []string       `json:"warnings"`
	Auth          *authBlock     `json:"auth"`
	MountType     string         `json:"mount_type"`
}

// apiError is an error answer: status and Vault's "errors" list.
type apiError struct {
	status int
	errors []string
}

func (e *apiError) Error() string {
	return strconv.Itoa(e.status) + ": " + strings.Join(e.errors, "; ")
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, []string{fmt.Sprintf(format, args...)}}
}

var (
	errPermissionDenied = &apiError{http.StatusForbidden, []string{"permission denied"}}
	// errInvalidToken is how Vault 1.21 answers an unknown, expired or
	// revoked token (vault/request_handling.go: ErrPermissionDenied and
	// ErrInvalidToken).
	errInvalidToken      = &apiError{http.StatusForbidden, []string{"permission denied", "invalid token"}}
	errUnsupportedPath   = &apiError{http.StatusNotFound, []string{"unsupported path"}}
	errUnsupportedMethod = &apiError{http.StatusMethodNotAllowed, []string{"unsupported operation"}}
	errSealed            = &apiError{http.StatusServiceUnavailable, []string{"Vault is sealed"}}
)

func notImplemented(what string) *apiError {
	return badRequest("transittest: %s not implemented", what)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeError(w, &apiError{http.StatusNotFound, []string{}})
		return
	}
	req := &request{ns: normNamespace(r.Header.Get("X-Vault-Namespace")), path: strings.TrimSuffix(path, "/"), seen: map[string]bool{}}
	switch {
	case r.Method == "LIST" || (r.Method == http.MethodGet && r.URL.Query().Get("list") == "true"):
		req.method = "list"
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		req.method = "read"
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		req.method = "write"
	case r.Method == http.MethodDelete:
		req.method = "delete"
	default:
		writeError(w, errUnsupportedMethod)
		return
	}
	params, err := readParams(r)
	if err != nil {
		writeError(w, err)
		return
	}
	req.params = params

	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[req.path]++
	if s.sealed {
		writeError(w, errSealed)
		return
	}
	resp, status, aerr := s.route(req, r.Header.Get("X-Vault-Token"))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if unknown := req.unknownParams(); len(unknown) > 0 {
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown))
	}
	resp.RequestID = newID(16)
	writeJSON(w, status, resp)
}

// route authenticates req and dispatches it. s.mu is held.
func (s *Server) route(req *request, tokenID string) (*response, int, *apiError) {
	n := s.nss[req.ns]
	if n == nil {
		return nil, 0, &apiError{http.StatusNotFound, []string{fmt.Sprintf("no handler for route %q. route entry not found.", req.path)}}
	}
	if resp, aerr, ok := s.login(n, req); ok {
		if aerr != nil {
			return nil, 0, aerr
		}
		return resp, http.StatusOK, nil
	}
	tok, aerr := s.authenticate(req, tokenID)
	if aerr != nil {
		return nil, 0, aerr
	}
	req.token = tok
	if strings.HasPrefix(req.path, "auth/token/") {
		resp, aerr := s.tokenSelf(req)
		return resp, http.StatusOK, aerr
	}
	if !tok.allows(req.path) {
		return nil, 0, errPermissionDenied
	}
	mount, rest := n.transitMountFor(req.path)
	if mount == nil {
		return nil, 0, &apiError{http.StatusNotFound, []string{fmt.Sprintf("no handler for route %q. route entry not found.", req.path)}}
	}
	resp, aerr := mount.handle(req, rest)
	if aerr != nil {
		return nil, 0, aerr
	}
	status := http.StatusOK
	if resp == nil {
		status = http.StatusNoContent
	}
	return resp, status, nil
}

// transitMountFor finds the Transit mount path is under, the longest match
// first, and returns the rest of the path.
func (n *namespace) transitMountFor(path string) (*transitMount, string) {
	best := ""
	for m := range n.transit {
		if strings.HasPrefix(path, m+"/") && len(m) > len(best) {
			best = m
		}
	}
	if best == "" {
		if m := n.transit[path]; m != nil {
			return m, ""
		}
		return nil, ""
	}
	return n.transit[best], path[len(best)+1:]
}

func readParams(r *http.Request) (map[string]any, *apiError) {
	params := map[string]any{}
	for k, v := range r.URL.Query() {
		if k != "list" && len(v) > 0 {
			params[k] = v[0]
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest("failed to read request body: %v", err)
	}
	if len(body) > maxBody {
		return nil, &apiError{http.StatusRequestEntityTooLarge, []string{"http: request body too large"}}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return params, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, badRequest("failed to parse JSON input: %v", err)
	}
	for k, v := range m {
		params[k] = v
	}
	return params, nil
}

// str returns string parameter k ("" if absent).
func (r *request) str(k string) (string, *apiError) {
	r.seen[k] = true
	switch v := r.params[k].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	default:
		return "", badRequest("error converting input for field %q: expected a string", k)
	}
}

// integer returns integer parameter k and whether it was given; like
// Vault's TypeInt it accepts a JSON number or a numeric string.
func (r *request) integer(k string) (int, bool, *apiError) {
	r.seen[k] = true
	var s string
	switch v := r.params[k].(type) {
	case nil:
		return 0, false, nil
	case json.Number:
		s = v.String()
	case string:
		s = v
	default:
		return 0, false, badRequest("error converting input for field %q: expected an integer", k)
	}
	i, err := strconv.Atoi(s)
	if err != nil {
		return 0, false, badRequest("error converting input %v for field %q: %v", s, k, err)
	}
	return i, true, nil
}

// boolean returns boolean parameter k and whether it was given.
func (r *request) boolean(k string) (bool, bool, *apiError) {
	r.seen[k] = true
	switch v := r.params[k].(type) {
	case nil:
		return false, false, nil
	case bool:
		return v, true, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, false, badRequest("error converting input %v for field %q: %v", v, k, err)
		}
		return b, true, nil
	default:
		return false, false, badRequest("error converting input for field %q: expected a boolean", k)
	}
}

// seconds returns a duration parameter k given in seconds or as a Go
// duration string, as Vault's TypeDurationSecond.
func (r *request) seconds(k string) (time.Duration, *apiError) {
	r.seen[k] = true
	switch v := r.params[k].(type) {
	case nil:
		return 0, nil
	case json.Number:
		i, err := v.Int64()
		if err != nil {
			return 0, badRequest("error converting input %v for field %q: %v", v, k, err)
		}
		return time.Duration(i) * time.Second, nil
	case string:
		if i, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Duration(i) * time.Second, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, badRequest("error converting input %v for field %q: %v", v, k, err)
		}
		return d, nil
	default:
		return 0, badRequest("error converting input for field %q: expected a duration", k)
	}
}

// ignore marks parameters the endpoint knows but this server does not act
// on, so they produce no "unrecognized" warning.
func (r *request) ignore(keys ...string) {
	for _, k := range keys {
		r.seen[k] = true
	}
}

// refuse answers "not implemented" if any of keys was given a value.
func (r *request) refuse(what string, keys ...string) *apiError {
	for _, k := range keys {
		r.seen[k] = true
		if v, ok := r.params[k]; ok && v != nil && v != "" && v != false {
			return notImplemented(what + " (" + k + ")")
		}
	}
	return nil
}

func (r *request) unknownParams() []string {
	var out []string
	for k := range r.params {
		if !r.seen[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func writeError(w http.ResponseWriter, err *apiError) {
	errs := err.errors
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, err.status, map[string]any{"errors": errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errors":["transittest: cannot encode response"]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// newID returns n random bytes in hex.
func newID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("transittest: no randomness"))
	}
	return hex.EncodeToString(b)
}
