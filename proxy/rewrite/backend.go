package rewrite

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy/analyze"
	"github.com/fleproxy/fleproxy/proxy/copyfmt"
)

// rowPlan says which fields of a result's rows this session decrypts, masks or nulls.
type rowPlan struct {
	// fields[i] is the column of field i to decrypt, nil to pass through.
	fields []*columnCrypto
	// shown[i] is the clearance that decides what field i becomes: Plaintext, Mask or Null.
	shown   []policy.Clearance
	formats []int16
	// revealed counts the values shown decrypted (plaintext or masked) since the last audit record.
	revealed int64
	// view is the policy view the plan was made under; origins are the fields' (table OID,
	// attribute number), to check the plan again after a reload.
	view    *view
	origins []origin
}

// origin is where a result field comes from (RowDescription, §55.7).
type origin struct {
	table  uint32
	attnum int16
}

// stale reports whether a policy reload since the plan was made changes what some field of the
// result must show this session: its rows can then no longer be sent as described.
func (s *Session) stale(p *rowPlan) bool {
	v := s.follow()
	if p.view == v {
		return false
	}
	for i, o := range p.origins {
		want := policy.Ciphertext
		if col, ok := v.env.catalog.Lookup(o.table, o.attnum); ok && o.table != 0 {
			want = v.clearances[col]
		}
		have := policy.Ciphertext
		if p.fields[i] != nil {
			have = p.shown[i]
		}
		if want != have {
			return true
		}
	}
	p.view = v
	return false
}

// BackendNeedsBody reports whether a server message of type typ must be passed to Backend.
// DataRow and CopyData of results without a protected field the caller may read are forwarded
// unchanged without being read whole — the pass-through fast path.
func (s *Session) BackendNeedsBody(typ byte) bool {
	switch typ {
	case 'D':
		return s.be.discard || s.activePlan() != nil
	case 'd':
		return s.be.discard || s.be.copyOut != nil
	}
	return true
}

// activePlan returns the decoding plan of the result being received: the last RowDescription's
// in a simple Query, the described portal's for an Execute.
func (s *Session) activePlan() *rowPlan {
	if s.be.current != nil {
		return s.be.current
	}
	if h := s.head(); h != nil && h.kind == 'E' {
		return s.be.portals[h.name]
	}
	return nil
}

// Backend handles one server message and writes what the client must see in its place to client.
func (s *Session) Backend(typ byte, body []byte, client *bufio.Writer) error {
	if s.be.discard {
		if typ != 'Z' {
			return nil
		}
		s.be.discard = false
	}
	switch typ {
	case '1', '3': // ParseComplete, CloseComplete
		s.pop()
	case '2': // BindComplete
		if h := s.pop(); h != nil {
			delete(s.be.portals, h.name)
		}
	case 't':
		body = s.parameterDescription(body)
	case 'T':
		return s.rowDescription(body, client)
	case 'n': // NoData
		if h := s.pop(); h != nil && h.kind == 'D' {
			if h.describe == 'P' {
				delete(s.be.portals, h.name)
			}
			if h.injected {
				return nil
			}
		}
	case 'D':
		if plan := s.activePlan(); plan != nil {
			if s.stale(plan) {
				return s.refuseResult(&Error{Code: codeObjectNotInPrerequisiteState,
					Message: "the policy was reloaded while this result was open and changes what it may show",
					Hint:    "run the statement again"}, client)
			}
			return s.dataRow(plan, body, client)
		}
	case 'C', 'I': // CommandComplete, EmptyQueryResponse
		s.endResult()
	case 's': // PortalSuspended
		if plan := s.activePlan(); plan != nil && plan.revealed > 0 {
			s.auditRevealed(s.head(), plan.columns(), plan.revealed)
			plan.revealed = 0
		}
		s.pop()
	case 'E':
		body = s.errorResponse(body)
	case 'Z':
		s.readyForQuery()
	case 'H': // CopyOutResponse
		if col := s.copyOutDenied(); col != nil {
			s.auditDenied(s.head(), col)
			return s.refuseResult(&Error{Code: codeInsufficientPrivilege,
				Message: fmt.Sprintf("%s may not read protected column %s", s.identityName(s.view()), col.Name),
				Hint:    "leave the column out of the COPY; the policy denies it to this caller"}, client)
		}
		s.startCopyOut()
	case 'd':
		if s.be.copyOut != nil {
			out, err := s.be.copyOut.Write(s.be.buf[:0], body)
			s.be.buf = out[:0]
			if err != nil {
				return s.failResult(err, client)
			}
			if len(out) == 0 {
				return nil
			}
			body = out
		}
	case 'c':
		if s.be.copyOut != nil {
			out, err := s.be.copyOut.Close(s.be.buf[:0])
			s.be.buf = out[:0]
			s.be.copyOut = nil
			if s.be.copyRevealed > 0 {
				s.auditRevealed(s.head(), s.be.copyColumns, s.be.copyRevealed)
				s.be.copyRevealed = 0
			}
			if err != nil {
				return s.failResult(err, client)
			}
			if len(out) > 0 {
				if err := writeMessage(client, 'd', out); err != nil {
					return err
				}
			}
		}
	case 'S': // ParameterStatus: DateStyle, TimeZone, … change how values are written as text.
		if name, ok := cstring(body); ok {
			if value, ok := cstring(body[len(name)+1:]); ok {
				s.setting(name, value)
			}
		}
	}
	return writeMessage(client, typ, body)
}

// auditOpenResult records the plaintext a result has revealed so far when it ends other than
// normally: an error, a refusal, or the end of the session. Whatever ends a result, what was
// sent is on record.
func (s *Session) auditOpenResult() {
	if plan := s.activePlan(); plan != nil && plan.revealed > 0 {
		s.auditRevealed(s.head(), plan.columns(), plan.revealed)
		plan.revealed = 0
	}
	if s.be.copyRevealed > 0 {
		s.auditRevealed(s.head(), s.be.copyColumns, s.be.copyRevealed)
		s.be.copyRevealed = 0
	}
}

// Close records what the session's open result had revealed. The proxy calls it once both
// directions have stopped.
func (s *Session) Close() {
	s.auditOpenResult()
	for _, p := range s.be.portals {
		if p != nil && p.revealed > 0 {
			s.auditRevealed(nil, p.columns(), p.revealed)
			p.revealed = 0
		}
	}
}

// endResult closes the result of an Execute or of one statement of a Query.
func (s *Session) endResult() {
	plan := s.activePlan()
	s.be.current = nil
	h := s.head()
	if plan != nil && plan.revealed > 0 {
		s.auditRevealed(h, plan.columns(), plan.revealed)
		plan.revealed = 0
	}
	if h == nil {
		return
	}
	if h.ddl {
		s.be.refresh = true
	}
	if h.kind == 'E' {
		s.pop()
	}
}

// readyForQuery ends a Query, FunctionCall or Sync.
func (s *Session) readyForQuery() {
	s.be.current = nil
	s.be.copyOut = nil
	for {
		h := s.pop()
		if h == nil || h.kind == 'S' || h.kind == 'Q' || h.kind == 'F' {
			break
		}
	}
	if s.be.scsAnswered > 0 {
		// Any ParameterStatus for standard_conforming_strings came before this ReadyForQuery.
		s.scsUnknown.Add(-s.be.scsAnswered)
		s.be.scsAnswered = 0
	}
	if s.be.refresh {
		s.be.refresh = false
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.view().env.catalog.Refresh(ctx); err != nil {
			s.log.Warn().Err(err).Msg("catalog refresh after DDL failed; protected columns keep their previous attribution")
		}
	}
}

// errorResponse substitutes the proxy's error for the server's when the request was one the
// proxy rejected, and follows the server in skipping to the next Sync.
func (s *Session) errorResponse(body []byte) []byte {
	s.auditOpenResult()
	s.be.current = nil
	s.be.copyOut = nil
	h := s.head()
	if h == nil {
		return body
	}
	if h.reject != nil {
		if r := h.reject.response(); r != nil {
			body = r
		}
	}
	if h.kind != 'Q' && h.kind != 'S' && h.kind != 'F' {
		s.skipToSync()
	}
	return body
}

// parameterDescription shows the logical type of each parameter the proxy encrypts.
func (s *Session) parameterDescription(body []byte) []byte {
	h := s.head()
	if h == nil || h.kind != 'D' || h.stmt == nil || len(h.stmt.params) == 0 {
		return body
	}
	var msg pgproto3.ParameterDescription
	if err := msg.Decode(body); err != nil {
		return body
	}
	for i, cc := range h.stmt.params {
		if i < len(msg.ParameterOIDs) {
			msg.ParameterOIDs[i] = cc.typ.OID
		}
	}
	out, err := msg.Encode(nil)
	if err != nil {
		return body
	}
	return out[5:]
}

// rowDescription resolves a result's fields, shows the logical type of each field the caller
// may read in plaintext, and keeps the plan for the DataRows that follow.
func (s *Session) rowDescription(body []byte, client *bufio.Writer) error {
	plan, rewritten, denied := s.planRows(body)
	h := s.head()
	if denied != nil {
		if h != nil && h.kind == 'D' {
			s.pop()
		}
		s.auditDenied(h, denied)
		return s.refuseResult(&Error{Code: codeInsufficientPrivilege,
			Message: fmt.Sprintf("%s may not read protected column %s", s.identityName(s.view()), denied.Name),
			Hint:    "leave the column out of the query; the policy denies it to this caller"}, client)
	}
	switch {
	case h != nil && h.kind == 'D':
		s.pop()
		if h.describe == 'P' {
			if plan != nil {
				s.be.portals[h.name] = plan
			} else {
				delete(s.be.portals, h.name)
			}
		}
		if h.injected {
			return nil
		}
	default: // a Query's statement, or a FETCH in one
		s.be.current = plan
	}
	if rewritten != nil {
		body = rewritten
	}
	return writeMessage(client, 'T', body)
}

// planRows returns the decoding plan for a RowDescription and the description to send, or nil
// and nil when no field is one this session sees other than as ciphertext; denied is set when the
// result holds a column the policy denies to this session.
func (s *Session) planRows(body []byte) (plan *rowPlan, rewritten []byte, denied *policy.Column) {
	var msg pgproto3.RowDescription
	if err := msg.Decode(body); err != nil {
		return nil, nil, nil
	}
	v := s.view()
	for i := range msg.Fields {
		f := &msg.Fields[i]
		if f.TableOID == 0 {
			continue
		}
		col, ok := v.env.catalog.Lookup(f.TableOID, int16(f.TableAttributeNumber))
		if !ok {
			continue
		}
		clearance := v.clearances[col]
		switch clearance {
		case policy.Deny:
			return nil, nil, col
		case policy.Plaintext, policy.Mask, policy.Null:
		default:
			continue
		}
		cc := v.env.columns[col]
		if cc == nil {
			continue
		}
		if plan == nil {
			n := len(msg.Fields)
			plan = &rowPlan{fields: make([]*columnCrypto, n), shown: make([]policy.Clearance, n), formats: make([]int16, n), view: v, origins: make([]origin, n)}
			for j := range msg.Fields {
				plan.formats[j] = msg.Fields[j].Format
				plan.origins[j] = origin{msg.Fields[j].TableOID, int16(msg.Fields[j].TableAttributeNumber)}
			}
		}
		plan.fields[i], plan.shown[i] = cc, clearance
		f.DataTypeOID = cc.typ.OID
		f.DataTypeSize = cc.typ.Len
		f.TypeModifier = cc.typ.Typmod
	}
	if plan == nil {
		return nil, nil, nil
	}
	out, err := msg.Encode(nil)
	if err != nil {
		return nil, nil, nil
	}
	return plan, out[5:], nil
}

// columns lists the protected columns a plan shows decrypted, for the audit log.
func (p *rowPlan) columns() []string {
	var cols []string
	for i, cc := range p.fields {
		if cc != nil && p.shown[i] != policy.Null {
			cols = append(cols, cc.col.Name.String())
		}
	}
	return cols
}

// dataRow decrypts the protected fields of one DataRow: an int16 field count, then per field an
// int32 length (-1 for NULL) and the value (§55.7, DataRow).
func (s *Session) dataRow(plan *rowPlan, body []byte, client *bufio.Writer) error {
	if len(body) < 2 {
		return writeMessage(client, 'D', body)
	}
	n := int(binary.BigEndian.Uint16(body))
	out := append(s.be.buf[:0], body[:2]...)
	rest := body[2:]
	sess, done := s.readSettings()
	defer done()
	for i := 0; i < n; i++ {
		if len(rest) < 4 {
			return fmt.Errorf("malformed DataRow from the server")
		}
		l := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if l < 0 {
			out = binary.BigEndian.AppendUint32(out, uint32(l))
			continue
		}
		if int(l) > len(rest) {
			return fmt.Errorf("malformed DataRow from the server")
		}
		v := rest[:l]
		rest = rest[l:]
		var cc *columnCrypto
		if i < len(plan.fields) {
			cc = plan.fields[i]
		}
		if cc == nil {
			out = binary.BigEndian.AppendUint32(out, uint32(l))
			out = append(out, v...)
			continue
		}
		if plan.shown[i] == policy.Null {
			out = binary.BigEndian.AppendUint32(out, ^uint32(0))
			continue
		}
		lenAt := len(out)
		out = append(out, 0, 0, 0, 0)
		var err error
		if plan.shown[i] == policy.Mask {
			out, err = cc.appendMasked(out, plan.formats[i], v, sess)
		} else {
			out, err = cc.appendDecrypted(out, plan.formats[i], v, sess)
		}
		if err != nil {
			s.be.buf = out[:0]
			return s.failResult(fmt.Errorf("column %s: %w", cc.col.Name, err), client)
		}
		plan.revealed++
		binary.BigEndian.PutUint32(out[lenAt:], uint32(len(out)-lenAt-4))
	}
	s.be.buf = out[:0]
	return writeMessage(client, 'D', out)
}

// failResult reports a value the proxy could not decrypt or decode, instead of the rest of the
// result, and drops everything the server sends until ReadyForQuery. The client never receives
// garbage or a partial value.
func (s *Session) failResult(err error, client *bufio.Writer) error {
	code := codeDataCorrupted
	hint := "the value was altered, copied from another column, or written under a key the proxy does not have"
	var de *keys.DecryptError
	switch {
	case errors.As(err, &de) && de.Reason == keys.DecryptKeyringUnavailable:
		hint = "the column's keyring cannot be used (destroyed, or its KEK is unavailable)"
	case !errors.Is(err, errDecrypt):
		code, hint = codeInternalError, ""
	}
	s.log.Warn().Str("sqlstate", code).Err(err).Msg("result aborted")
	return s.refuseResult(&Error{Code: code, Message: err.Error(), Hint: hint}, client)
}

// refuseResult sends e in place of the rest of a result and drops what the server sends until
// ReadyForQuery.
func (s *Session) refuseResult(e *Error, client *bufio.Writer) error {
	s.auditOpenResult()
	s.be.discard = true
	s.be.current = nil
	s.be.copyOut = nil
	return writeMessage(client, 'E', e.response())
}

// startCopyOut begins decrypting a COPY TO STDOUT whose protected fields this session may read.
func (s *Session) startCopyOut() {
	h := s.head()
	if h == nil || len(h.copyOuts) == 0 {
		return
	}
	c := h.copyOuts[0]
	h.copyOuts = h.copyOuts[1:]
	s.settingsMu.RLock()
	enc := strings.ToUpper(s.clientEncoding)
	s.settingsMu.RUnlock()
	if byteUnsafeEncodings[enc] {
		s.log.Warn().Str("client_encoding", enc).Msg("COPY TO passes ciphertext: fields cannot be split in this encoding")
		return
	}
	t, err := s.newCopyOut(c)
	if err != nil {
		s.log.Warn().Err(err).Msg("COPY TO passes ciphertext: cannot decrypt it")
		return
	}
	s.be.copyOut = t
}

// copyOutDenied returns a column of the COPY TO starting now that the policy denies to this
// session, or nil.
func (s *Session) copyOutDenied() *policy.Column {
	h := s.head()
	if h == nil || len(h.copyOuts) == 0 {
		return nil
	}
	v := s.view()
	for _, f := range h.copyOuts[0].Fields {
		if f.Column == nil {
			continue
		}
		if cc := s.crypto(*f.Column); cc != nil && v.clearances[cc.col] == policy.Deny {
			return cc.col
		}
	}
	return nil
}

// newCopyOut returns a transformer that decrypts the fields of c this session may read, or nil
// if there are none.
func (s *Session) newCopyOut(c *analyze.Copy) (*copyfmt.Transformer, error) {
	fields := make([]bool, len(c.Fields))
	crypto := make([]*columnCrypto, len(c.Fields))
	shown := make([]policy.Clearance, len(c.Fields))
	var names []string
	v := s.view()
	any := false
	for i, f := range c.Fields {
		if f.Column == nil {
			continue
		}
		cc := s.crypto(*f.Column)
		if cc == nil {
			continue
		}
		switch clr := v.clearances[cc.col]; clr {
		case policy.Plaintext, policy.Mask, policy.Null:
			fields[i], crypto[i], shown[i], any = true, cc, clr, true
			if clr != policy.Null {
				names = append(names, cc.col.Name.String())
			}
		}
	}
	s.be.copyColumns = names
	if !any {
		return nil, nil
	}
	format := formatText
	if c.Format == analyze.CopyBinary {
		format = formatBinary
	}
	return copyfmt.NewTransformer(copyOptions(c), fields, func(row int64, field int, value []byte) ([]byte, error) {
		if value == nil {
			return nil, nil
		}
		if shown[field] == policy.Null {
			return nil, nil
		}
		sess, done := s.readSettings()
		defer done()
		var out []byte
		var err error
		if shown[field] == policy.Mask {
			out, err = crypto[field].appendMasked(nil, format, value, sess)
		} else {
			out, err = crypto[field].appendDecrypted(nil, format, value, sess)
		}
		if err != nil {
			return nil, fmt.Errorf("COPY row %d, column %s: %w", row, crypto[field].col.Name, err)
		}
		s.be.copyRevealed++
		return out, nil
	})
}
