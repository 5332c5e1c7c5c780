package rewrite

import (
	"bufio"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy/analyze"
	"github.com/fleproxy/fleproxy/proxy/codec"
	"github.com/fleproxy/fleproxy/proxy/copyfmt"
)

// EnvSource gives the Env sessions should use now; a policy reload swaps it. Sessions pick up a
// new Env at their next Query or Parse; prepared statements keep the Env they were prepared under.
type EnvSource interface {
	Env() *Env
}

// Static is an EnvSource that never changes.
func Static(env *Env) EnvSource { return staticEnv{env} }

type staticEnv struct{ env *Env }

func (s staticEnv) Env() *Env { return s.env }

// SessionInfo describes the session a rewriter is made for.
type SessionInfo struct {
	// ID is the connection id, as in the operational and audit logs.
	ID uint64
	// Identity holds the verified facts about the caller.
	Identity policy.Identity
	// Params are the StartupMessage parameters and the ParameterStatus values seen during
	// start-up, which set how values are written as text (DateStyle, TimeZone, …).
	Params map[string]string
	// Log is the session's operational logger.
	Log zerolog.Logger
}

// Session is the encryption layer of one client connection. Its Frontend methods must be called
// from one goroutine (the client→database pump) and its Backend methods from one other (the
// database→client pump); they share only the response queue, the session settings and the
// current view of the policy.
type Session struct {
	src      EnvSource
	id       uint64
	identity policy.Identity
	log      zerolog.Logger
	cur      atomic.Pointer[view]

	settingsMu     sync.RWMutex
	settings       codec.Session
	clientEncoding string
	// nonStandardStrings is set while the server reports standard_conforming_strings off;
	// scsUnknown from when a statement that may change it is sent until the server's next
	// ReadyForQuery, which comes after any ParameterStatus it causes.
	nonStandardStrings atomic.Bool
	scsUnknown         atomic.Int64

	queueMu sync.Mutex
	queue   []*pending

	fe frontendState
	be backendState
}

// view is what one Env means for this session's identity, worked out once per Env.
type view struct {
	env        *Env
	rule       *policy.Rule
	clearances map[*policy.Column]policy.Clearance
	// decrypts reports that some column is shown to this session decrypted (plaintext or mask);
	// transforms that some column is shown other than as stored (decrypted, masked, nulled or
	// denied), so every result that may hold one needs a decoding plan.
	decrypts   bool
	transforms bool
	// restricts reports a null, mask or deny clearance: values this session must not get even
	// as ciphertext through paths the proxy cannot attribute.
	restricts bool
	mayWrite  bool
}

// NewSession starts the encryption layer of a session.
func NewSession(src EnvSource, info SessionInfo) *Session {
	s := &Session{src: src, id: info.ID, identity: info.Identity, log: info.Log}
	for name, value := range info.Params {
		s.setting(name, value)
	}
	s.fe.statements = make(map[string]*statement)
	s.fe.portals = make(map[string]*statement)
	s.be.portals = make(map[string]*rowPlan)
	v := s.newView(src.Env())
	s.cur.Store(v)
	s.auditSession(v)
	return s
}

func (s *Session) newView(env *Env) *view {
	pol := env.policy
	v := &view{env: env, rule: pol.Match(s.identity), clearances: make(map[*policy.Column]policy.Clearance, len(env.columns)), mayWrite: pol.MayWrite(s.identity)}
	for col := range env.columns {
		c := pol.ClearanceFor(s.identity, col)
		v.clearances[col] = c
		if c == policy.Plaintext || c == policy.Mask {
			v.decrypts = true
		}
		if c != policy.Ciphertext {
			v.transforms = true
		}
		if c == policy.Null || c == policy.Mask || c == policy.Deny {
			v.restricts = true
		}
	}
	return v
}

// view returns the session's current view of the policy.
func (s *Session) view() *view { return s.cur.Load() }

// follow switches the session to the current Env if the policy was reloaded. The frontend side
// calls it at each Query, Parse and Bind; the backend side before sending rows of a result
// planned earlier. Safe for both goroutines: the first to notice a reload installs the new view.
func (s *Session) follow() *view {
	v := s.cur.Load()
	env := s.src.Env()
	if env == v.env {
		return v
	}
	nv := s.newView(env)
	if s.cur.CompareAndSwap(v, nv) {
		s.auditSession(nv)
		return nv
	}
	return s.cur.Load()
}

// setting records a session setting reported by the server (ParameterStatus) or sent at start-up.
func (s *Session) setting(name, value string) {
	if name == "standard_conforming_strings" {
		s.nonStandardStrings.Store(value != "on")
	}
	s.settingsMu.Lock()
	_ = s.settings.Set(name, value)
	if name == "client_encoding" {
		s.clientEncoding = value
	}
	s.settingsMu.Unlock()
}

// readSettings runs f with the session settings held for reading.
func (s *Session) readSettings() (*codec.Session, func()) {
	s.settingsMu.RLock()
	return &s.settings, s.settingsMu.RUnlock
}

// statement is what the proxy knows of a prepared statement (or of a simple Query).
type statement struct {
	// sql is the statement text as the client sent it, for the audit log's fingerprint.
	sql  string
	plan *analyze.Plan
	// params maps a 0-based parameter index to the column it is written into.
	params map[int]*columnCrypto
	// reads reports that results may carry protected columns, so the backend must see a
	// RowDescription for every portal of the statement.
	reads bool
	// copyIn and copyOut describe a COPY with protected fields.
	copyIn, copyOut *analyze.Copy
	// ddl asks for a catalog refresh once the statement completes.
	ddl bool
	// copies counts the COPY statements with protected fields.
	copies int
	// scs marks a statement that may change standard_conforming_strings.
	scs bool
}

// pending is one request the server will answer, in the order sent.
type pending struct {
	kind byte // the request's message type: 'Q', 'P', 'B', 'D', 'E', 'C', 'S', 'F'
	// injected marks a request of the proxy's own whose answers the client must not see.
	injected bool
	// describe is 'S' or 'P' for a Describe.
	describe byte
	// name is the statement or portal the request names.
	name string
	stmt *statement
	// reject, if set, replaces the server's ErrorResponse to this request.
	reject *Error
	// copyOuts lists the COPY TO STDOUT with protected fields that this request runs, in order.
	copyOuts []*analyze.Copy
	ddl      bool
	// scs marks a request that may change standard_conforming_strings: it counts in
	// Session.scsUnknown until the ReadyForQuery that follows its answer.
	scs bool
}

func (s *Session) push(p *pending) {
	s.queueMu.Lock()
	s.queue = append(s.queue, p)
	s.queueMu.Unlock()
}

// head returns the oldest unanswered request, or nil.
func (s *Session) head() *pending {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	if len(s.queue) == 0 {
		return nil
	}
	return s.queue[0]
}

func (s *Session) pop() *pending {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	if len(s.queue) == 0 {
		return nil
	}
	p := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	if p.scs {
		s.be.scsAnswered++
	}
	return p
}

// skipToSync drops the requests the server skips after an error in the extended protocol, up to
// (not including) the next Sync (§55.2.3).
func (s *Session) skipToSync() {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	for len(s.queue) > 0 && s.queue[0].kind != 'S' && s.queue[0].kind != 'Q' && s.queue[0].kind != 'F' {
		if s.queue[0].scs {
			s.be.scsAnswered++
		}
		s.queue[0] = nil
		s.queue = s.queue[1:]
	}
}

// frontendState is owned by the client→database goroutine.
type frontendState struct {
	// statements are the prepared statements by name ("" is the unnamed one).
	statements map[string]*statement
	// portals are the statements bound to each portal.
	portals map[string]*statement
	// copyIn rewrites the data of a COPY FROM STDIN in progress; copyFailed discards the rest
	// of one the proxy has failed.
	copyIn     *copyfmt.Transformer
	copyFailed bool
	buf        []byte
}

// backendState is owned by the database→client goroutine.
type backendState struct {
	// current is the decoding plan for the DataRows of the result being received.
	current *rowPlan
	// portals are the plans of portals the proxy has described.
	portals map[string]*rowPlan
	// copyOut rewrites the data of a COPY TO STDOUT in progress; copyRevealed counts the values
	// it showed decrypted, of copyColumns.
	copyOut      *copyfmt.Transformer
	copyRevealed int64
	copyColumns  []string
	// discard drops every message up to ReadyForQuery after the proxy reported an error
	// in the middle of a result.
	discard bool
	// refresh asks for a catalog refresh at the next ReadyForQuery.
	refresh bool
	// scsAnswered counts answered requests that may have changed standard_conforming_strings;
	// the next ReadyForQuery settles them.
	scsAnswered int64
	buf         []byte
}

// writeMessage writes one regular protocol message.
func writeMessage(w *bufio.Writer, typ byte, body []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	n := uint32(len(body) + 4)
	hdr[1], hdr[2], hdr[3], hdr[4] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}
