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

// Session is the encryption layer of one client connection. Its Frontend methods must be called
// from one goroutine (the client→database pump) and its Backend methods from one other (the
// database→client pump); they share only the response queue and the session settings.
type Session struct {
	env      *Env
	identity policy.Identity
	log      zerolog.Logger
	// decrypts reports that the policy clears this session for at least one column.
	decrypts bool

	settingsMu     sync.RWMutex
	settings       codec.Session
	clientEncoding string
	// nonStandardStrings is set while the server reports standard_conforming_strings off.
	nonStandardStrings atomic.Bool

	queueMu sync.Mutex
	queue   []*pending

	fe frontendState
	be backendState
}

// NewSession starts the encryption layer of a session whose verified identity is id. params are
// the StartupMessage parameters and the ParameterStatus values seen during start-up, which set
// the session settings that text formats depend on (DateStyle, TimeZone, …).
func NewSession(env *Env, id policy.Identity, params map[string]string, log zerolog.Logger) *Session {
	s := &Session{env: env, identity: id, log: log}
	for name, value := range params {
		s.setting(name, value)
	}
	for col := range env.columns {
		if s.clearance(col) == policy.Plaintext {
			s.decrypts = true
		}
	}
	s.fe.statements = make(map[string]*statement)
	s.fe.portals = make(map[string]*statement)
	s.be.portals = make(map[string]*rowPlan)
	return s
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

// clearance returns what this session may see of col.
func (s *Session) clearance(col *policy.Column) policy.Clearance {
	return s.env.policy.ClearanceFor(s.identity, col)
}

// readSettings runs f with the session settings held for reading.
func (s *Session) readSettings() (*codec.Session, func()) {
	s.settingsMu.RLock()
	return &s.settings, s.settingsMu.RUnlock
}

// statement is what the proxy knows of a prepared statement (or of a simple Query).
type statement struct {
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
	return p
}

// skipToSync drops the requests the server skips after an error in the extended protocol, up to
// (not including) the next Sync (§55.2.3).
func (s *Session) skipToSync() {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	for len(s.queue) > 0 && s.queue[0].kind != 'S' && s.queue[0].kind != 'Q' && s.queue[0].kind != 'F' {
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
	// copyOut rewrites the data of a COPY TO STDOUT in progress.
	copyOut *copyfmt.Transformer
	// discard drops every message up to ReadyForQuery after the proxy reported an error
	// in the middle of a result.
	discard bool
	// refresh asks for a catalog refresh at the next ReadyForQuery.
	refresh bool
	buf     []byte
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
