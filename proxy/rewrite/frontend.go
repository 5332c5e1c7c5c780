package rewrite

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/proxy/analyze"
	"github.com/fleproxy/fleproxy/proxy/codec"
	"github.com/fleproxy/fleproxy/proxy/copyfmt"
)

// rejectedStatement names a prepared statement that never exists: a Bind to it fails on the
// server exactly where the rejected Bind would have been executed.
const rejectedStatement = "fleproxy: rejected"

// FrontendNeedsBody reports whether a client message of type typ must be passed to Frontend.
// Other messages are forwarded unchanged without being read whole.
func (s *Session) FrontendNeedsBody(typ byte) bool {
	switch typ {
	case 'Q', 'P', 'B', 'D', 'E', 'C', 'S', 'F':
		return true
	case 'd', 'c', 'f':
		return s.fe.copyIn != nil || s.fe.copyFailed
	}
	return false
}

// Frontend handles one client message and writes what must go to the database in its place to up.
// It returns an error only when the session cannot go on (a write failed, or a message is
// malformed beyond what the server could report).
func (s *Session) Frontend(typ byte, body []byte, up *bufio.Writer) error {
	switch typ {
	case 'Q', 'P', 'B', 'D', 'E', 'C', 'F':
		// A COPY is over once the client sends anything but copy data, Sync or Flush (§55.2.6).
		s.fe.copyIn, s.fe.copyFailed = nil, false
	}
	switch typ {
	case 'Q':
		return s.query(body, up)
	case 'P':
		return s.parse(body, up)
	case 'B':
		return s.bind(body, up)
	case 'D':
		return s.describe(body, up)
	case 'E':
		return s.execute(body, up)
	case 'C':
		return s.close(body, up)
	case 'S', 'F':
		s.push(&pending{kind: typ})
		return writeMessage(up, typ, body)
	case 'd', 'c', 'f':
		return s.copyData(typ, body, up)
	}
	return writeMessage(up, typ, body)
}

// analyzeSQL maps the protected values of sql. A statement that cannot name a protected table
// (analyze.MayTouch) is not parsed at all.
func (s *Session) analyzeSQL(sql string) (*statement, *Error) {
	v := s.follow()
	st := &statement{sql: sql}
	if s.scsTouched(sql) {
		// The server may answer with standard_conforming_strings off; until it has said so,
		// the statements sent after this one are refused (see nonStandardStrings).
		st.scs = true
	} else if (s.nonStandardStrings.Load() || s.scsUnknown.Load() > 0) && !isSettingStatement(sql) {
		// The analyzer reads string constants as the server does with
		// standard_conforming_strings on; with it off, backslashes change where a constant ends,
		// so a value could pass unseen.
		return nil, &Error{Code: codeFeatureNotSupported,
			Message: "standard_conforming_strings is off, so the proxy cannot read string constants as the server would",
			Hint:    "SET standard_conforming_strings = on (the default since PostgreSQL 9.1)"}
	}
	if !analyze.MayTouch(sql, v.env.catalog.IsProtectedTableName) {
		st.reads = containsFold(sql, "fetch")
		return st, nil
	}
	plan, err := analyze.Analyze(sql, v.env.catalog.Schema())
	if err != nil {
		return nil, analysisError(err)
	}
	st.plan = plan
	st.reads = plan.Touches() || containsFold(sql, "fetch")
	for i := range plan.Statements {
		ps := &plan.Statements[i]
		st.ddl = st.ddl || ps.DDL
		if ps.Kind == "CopyStmt" && ps.Copy == nil && ps.Touches && v.restricts {
			// COPY (query) TO: its fields cannot be attributed to columns, so null, mask and deny
			// could not be applied to them.
			return nil, &Error{Code: codeInsufficientPrivilege,
				Message: fmt.Sprintf("COPY (query) over protected tables is not allowed for %s, whose policy nulls, masks or denies protected columns", s.identityName(v)),
				Hint:    "run the query itself, or COPY the table with a column list"}
		}
		if ps.Execute != "" {
			// SQL EXECUTE of a statement prepared by a Parse would send its parameters as plaintext
			// constants, which the proxy cannot map.
			if prep := s.fe.statements[ps.Execute]; prep != nil && len(prep.params) > 0 {
				return nil, &Error{Code: codeFeatureNotSupported,
					Message: fmt.Sprintf("EXECUTE %s: its parameters are written into protected columns and would be sent as plaintext constants", ps.Execute),
					Hint:    "bind the prepared statement with the extended query protocol (Bind/Execute) instead"}
			}
		}
		if !v.mayWrite {
			if col, writes := writesProtected(ps); writes {
				return nil, &Error{Code: codeInsufficientPrivilege,
					Message: fmt.Sprintf("%s may not write protected column %s", s.identityName(v), col),
					Hint:    "the policy's identities decide who may write protected columns"}
			}
		}
		if c := ps.Copy; c != nil {
			st.copies++
			switch c.Direction {
			case analyze.CopyIn:
				st.copyIn = c
			case analyze.CopyOut:
				st.copyOut = c
			}
		}
		for n, col := range ps.Params {
			cc := s.crypto(col)
			if cc == nil {
				return nil, &Error{Code: codeInternalError, Message: fmt.Sprintf("column %s is not in the policy", col)}
			}
			if st.params == nil {
				st.params = make(map[int]*columnCrypto)
			}
			st.params[n-1] = cc
		}
	}
	return st, nil
}

// crypto returns the cipher of a protected column named by the analyzer.
func (s *Session) crypto(col analyze.Column) *columnCrypto {
	env := s.view().env
	pc, ok := env.policy.Column(col.Schema, col.Table, col.Name)
	if !ok {
		return nil
	}
	return env.columns[pc]
}

func analysisError(err error) *Error {
	var re *analyze.RejectError
	var pe *analyze.ParseError
	switch {
	case errors.As(err, &re):
		return &Error{Code: re.SQLState, Message: strings.TrimPrefix(re.Error(), "fleproxy: "), Hint: re.Hint, Position: re.Position}
	case errors.As(err, &pe):
		return &Error{Code: codeSyntaxError, Message: "syntax error: " + pe.Detail, Position: pe.Position, quotesInput: true}
	}
	return &Error{Code: codeFeatureNotSupported, Message: err.Error()}
}

// rewriteSQL encrypts the literals of st's plan.
func (s *Session) rewriteSQL(st *statement, sql string) (string, *Error) {
	if st.plan == nil || !st.plan.NeedsRewrite() {
		return sql, nil
	}
	sess, done := s.readSettings()
	defer done()
	out, err := st.plan.Rewrite(func(col analyze.Column, plaintext *string) (string, error) {
		cc := s.crypto(col)
		if cc == nil {
			return "", fmt.Errorf("column %s is not in the policy", col)
		}
		stored, err := cc.encrypt(formatText, []byte(*plaintext), sess)
		if err != nil {
			return "", err
		}
		return cc.sqlConstant(stored), nil
	})
	if err != nil {
		return "", valueError(err)
	}
	return out, nil
}

// valueError reports a value that could not be converted or encrypted.
func valueError(err error) *Error {
	var ce *codec.Error
	if errors.As(err, &ce) {
		var re *analyze.RewriteError
		msg := ce.Message
		if errors.As(err, &re) && re.Column != (analyze.Column{}) {
			msg = fmt.Sprintf("column %s: %s", re.Column, ce.Message)
		}
		return &Error{Code: ce.Code, Message: msg}
	}
	msg := strings.TrimPrefix(err.Error(), "fleproxy: ")
	var de *keys.DecryptError
	if errors.Is(err, keys.ErrDecrypt) || errors.As(err, &de) {
		return &Error{Code: codeDataCorrupted, Message: msg, Hint: "the column's keyring cannot be used (destroyed, or its KEK is unavailable)"}
	}
	return &Error{Code: codeInternalError, Message: msg}
}

// query handles a simple Query (§55.2.2).
func (s *Session) query(body []byte, up *bufio.Writer) error {
	sql, ok := cstring(body)
	if !ok {
		// Malformed: the server will refuse it; keep the queue in step with its answer.
		s.push(&pending{kind: 'Q'})
		return writeMessage(up, 'Q', body)
	}
	st, rerr := s.analyzeSQL(sql)
	if rerr == nil {
		sql, rerr = s.rewriteSQL(st, sql)
	}
	if rerr != nil {
		s.auditRefusal(sql, rerr)
		s.push(&pending{kind: 'Q', reject: rerr})
		return writeMessage(up, 'Q', []byte("fleproxy_rejected\x00"))
	}
	if rerr = s.startCopyIn(st); rerr != nil {
		s.auditRefusal(sql, rerr)
		s.push(&pending{kind: 'Q', reject: rerr})
		return writeMessage(up, 'Q', []byte("fleproxy_rejected\x00"))
	}
	p := &pending{kind: 'Q', stmt: st, ddl: st.ddl, scs: st.scs}
	if st.scs {
		s.scsUnknown.Add(1)
	}
	if st.copyOut != nil {
		p.copyOuts = []*analyze.Copy{st.copyOut}
	}
	s.push(p)
	return writeMessage(up, 'Q', append([]byte(sql), 0))
}

// parse handles Parse: name, query, parameter type OIDs (§55.7).
func (s *Session) parse(body []byte, up *bufio.Writer) error {
	var msg pgproto3.Parse
	if err := msg.Decode(body); err != nil {
		s.push(&pending{kind: 'P'})
		return writeMessage(up, 'P', body)
	}
	st, rerr := s.analyzeSQL(msg.Query)
	sql := msg.Query
	if rerr == nil {
		sql, rerr = s.rewriteSQL(st, msg.Query)
	}
	if rerr != nil {
		s.auditRefusal(msg.Query, rerr)
		delete(s.fe.statements, msg.Name)
		s.push(&pending{kind: 'P', name: msg.Name, reject: rerr})
		bad := pgproto3.Parse{Name: msg.Name, Query: "fleproxy_rejected"}
		out, _ := bad.Encode(nil)
		_, err := up.Write(out)
		return err
	}
	s.fe.statements[msg.Name] = st
	s.push(&pending{kind: 'P', name: msg.Name, stmt: st})
	if sql == msg.Query && len(st.params) == 0 {
		return writeMessage(up, 'P', body)
	}
	// The server must infer the storage type of an encrypted parameter: declare none.
	for i := range msg.ParameterOIDs {
		if st.params[i] != nil {
			msg.ParameterOIDs[i] = 0
		}
	}
	msg.Query = sql
	out, err := msg.Encode(nil)
	if err != nil {
		return err
	}
	_, err = up.Write(out)
	return err
}

// bind handles Bind, encrypting the parameters that feed protected columns.
func (s *Session) bind(body []byte, up *bufio.Writer) error {
	portal, stmtName, ok := twoCStrings(body)
	if !ok {
		s.push(&pending{kind: 'B'})
		return writeMessage(up, 'B', body)
	}
	// Every execution follows a reloaded policy, including that of a statement prepared before.
	s.follow()
	st := s.fe.statements[stmtName]
	s.fe.portals[portal] = st
	if st == nil || (len(st.params) == 0 && !s.describesPortals(st)) {
		s.push(&pending{kind: 'B', name: portal})
		return writeMessage(up, 'B', body)
	}
	if len(st.params) > 0 {
		var msg pgproto3.Bind
		if err := msg.Decode(body); err != nil {
			s.push(&pending{kind: 'B', name: portal})
			return writeMessage(up, 'B', body)
		}
		if rerr := s.encryptParams(&msg, st); rerr != nil {
			s.auditRefusal(st.sql, rerr)
			s.push(&pending{kind: 'B', name: portal, reject: rerr})
			bad := pgproto3.Bind{DestinationPortal: portal, PreparedStatement: rejectedStatement}
			out, _ := bad.Encode(nil)
			_, err := up.Write(out)
			return err
		}
		out, err := msg.Encode(s.fe.buf[:0])
		if err != nil {
			return err
		}
		s.fe.buf = out[:0]
		s.push(&pending{kind: 'B', name: portal})
		if _, err := up.Write(out); err != nil {
			return err
		}
	} else {
		s.push(&pending{kind: 'B', name: portal})
		if err := writeMessage(up, 'B', body); err != nil {
			return err
		}
	}
	if s.describesPortals(st) {
		// The client may Execute without describing the portal; the proxy must know its
		// columns and result formats to decrypt the DataRows.
		s.push(&pending{kind: 'D', describe: 'P', name: portal, injected: true})
		return writeMessage(up, 'D', append([]byte{'P'}, append([]byte(portal), 0)...))
	}
	return nil
}

// describesPortals reports whether the proxy must describe each portal of st itself: when st
// may return a protected column that this caller sees other than as stored (decrypted, masked,
// nulled or denied).
func (s *Session) describesPortals(st *statement) bool {
	return st.reads && s.view().transforms
}

// writesProtected reports whether a statement writes a value into a protected column, and one
// such column.
func writesProtected(ps *analyze.Statement) (analyze.Column, bool) {
	if len(ps.Writes) > 0 {
		return ps.Writes[0], true
	}
	for _, col := range ps.Params {
		return col, true
	}
	for _, l := range ps.Literals {
		return l.Column, true
	}
	if c := ps.Copy; c != nil && c.Direction == analyze.CopyIn {
		for _, f := range c.Fields {
			if f.Column != nil {
				return *f.Column, true
			}
		}
	}
	return analyze.Column{}, false
}

// encryptParams replaces each protected parameter by its ciphertext, sent in binary format.
func (s *Session) encryptParams(msg *pgproto3.Bind, st *statement) *Error {
	n := len(msg.Parameters)
	if k := len(msg.ParameterFormatCodes); k > 1 && k != n {
		// PostgreSQL protocol §55.7, Bind: zero, one, or one format code per parameter.
		return &Error{Code: codeProtocolViolation, Message: fmt.Sprintf("bind message has %d parameter formats but %d parameters", k, n)}
	}
	formats := make([]int16, n)
	for i := range formats {
		switch len(msg.ParameterFormatCodes) {
		case 0:
		case 1:
			formats[i] = msg.ParameterFormatCodes[0]
		default:
			if i < len(msg.ParameterFormatCodes) {
				formats[i] = msg.ParameterFormatCodes[i]
			}
		}
	}
	sess, done := s.readSettings()
	defer done()
	for i, cc := range st.params {
		if i >= n || msg.Parameters[i] == nil {
			continue
		}
		stored, err := cc.encrypt(formats[i], msg.Parameters[i], sess)
		if err != nil {
			e := valueError(err)
			e.Message = fmt.Sprintf("parameter $%d for column %s: %s", i+1, cc.col.Name, e.Message)
			return e
		}
		msg.Parameters[i] = stored
		formats[i] = formatBinary
	}
	msg.ParameterFormatCodes = formats
	return nil
}

// describe handles Describe: 'S' or 'P' and a name.
func (s *Session) describe(body []byte, up *bufio.Writer) error {
	p := &pending{kind: 'D'}
	if len(body) > 0 {
		p.describe = body[0]
		p.name, _ = cstring(body[1:])
		if p.describe == 'S' {
			p.stmt = s.fe.statements[p.name]
		} else {
			p.stmt = s.fe.portals[p.name]
		}
	}
	s.push(p)
	return writeMessage(up, 'D', body)
}

// execute handles Execute: a portal name and a row limit.
func (s *Session) execute(body []byte, up *bufio.Writer) error {
	portal, _ := cstring(body)
	p := &pending{kind: 'E', name: portal}
	if st := s.fe.portals[portal]; st != nil {
		p.ddl = st.ddl
		p.stmt = st
		if st.scs {
			p.scs = true
			s.scsUnknown.Add(1)
		}
		if st.copyOut != nil {
			p.copyOuts = []*analyze.Copy{st.copyOut}
		}
		if rerr := s.startCopyIn(st); rerr != nil {
			// The statement was analysed at Parse; only an inconsistent policy lands here.
			return rerr
		}
	}
	s.push(p)
	return writeMessage(up, 'E', body)
}

// close handles Close of a statement or portal.
func (s *Session) close(body []byte, up *bufio.Writer) error {
	if len(body) > 1 {
		name, _ := cstring(body[1:])
		if body[0] == 'S' {
			delete(s.fe.statements, name)
		} else {
			delete(s.fe.portals, name)
		}
	}
	s.push(&pending{kind: 'C'})
	return writeMessage(up, 'C', body)
}

// copyData handles CopyData, CopyDone and CopyFail of a COPY FROM STDIN into protected fields.
func (s *Session) copyData(typ byte, body []byte, up *bufio.Writer) error {
	if s.fe.copyFailed {
		if typ != 'd' {
			s.fe.copyFailed = false
		}
		return nil
	}
	t := s.fe.copyIn
	switch typ {
	case 'd':
		out, err := t.Write(s.fe.buf[:0], body)
		s.fe.buf = out[:0]
		if err != nil {
			return s.failCopy(err, up)
		}
		if len(out) == 0 {
			return nil
		}
		return writeMessage(up, 'd', out)
	case 'c':
		out, err := t.Close(s.fe.buf[:0])
		s.fe.buf = out[:0]
		s.fe.copyIn = nil
		if err != nil {
			s.fe.copyFailed = true
			err = s.failCopy(err, up)
			s.fe.copyFailed = false
			return err
		}
		if len(out) > 0 {
			if err := writeMessage(up, 'd', out); err != nil {
				return err
			}
		}
		return writeMessage(up, 'c', body)
	default: // CopyFail from the client
		s.fe.copyIn = nil
		return writeMessage(up, 'f', body)
	}
}

// failCopy aborts a COPY FROM STDIN whose data the proxy cannot encrypt: the server gets a
// CopyFail naming the problem (and reports it to the client as its own error), and the rest of
// the client's data is dropped.
func (s *Session) failCopy(err error, up *bufio.Writer) error {
	s.fe.copyIn = nil
	s.fe.copyFailed = true
	msg := "fleproxy: " + err.Error()
	return writeMessage(up, 'f', append([]byte(msg), 0))
}

// startCopyIn prepares the rewriting of st's COPY FROM STDIN, if it has one, before the
// statement is forwarded: from then on every CopyData the client sends goes through it, so no
// protected field can slip through unencrypted.
func (s *Session) startCopyIn(st *statement) *Error {
	if st.copyIn == nil {
		return nil
	}
	if st.copies > 1 {
		return &Error{Code: codeFeatureNotSupported, Message: "several COPY statements into protected tables in one query string", Hint: "send each COPY in its own query"}
	}
	s.settingsMu.RLock()
	enc := strings.ToUpper(s.clientEncoding)
	s.settingsMu.RUnlock()
	if byteUnsafeEncodings[enc] {
		return &Error{Code: codeFeatureNotSupported, Message: "COPY into protected columns in client encoding " + enc + ", whose characters can contain ASCII bytes", Hint: "use client_encoding UTF8 for the COPY"}
	}
	if e := st.copyIn.Encoding; e != "" && !isUTF8Name(e) {
		return &Error{Code: codeFeatureNotSupported, Message: fmt.Sprintf("COPY into protected columns with ENCODING '%s': the proxy reads COPY data only as UTF-8", e), Hint: "leave out the ENCODING option, or convert the data to UTF-8"}
	}
	t, err := s.newCopyIn(st.copyIn)
	if err != nil {
		return &Error{Code: codeInternalError, Message: err.Error()}
	}
	s.fe.copyIn = t
	return nil
}

// newCopyIn returns a transformer that encrypts the protected fields of a COPY FROM STDIN.
func (s *Session) newCopyIn(c *analyze.Copy) (*copyfmt.Transformer, error) {
	fields := make([]bool, len(c.Fields))
	crypto := make([]*columnCrypto, len(c.Fields))
	for i, f := range c.Fields {
		if f.Column != nil {
			fields[i] = true
			crypto[i] = s.crypto(*f.Column)
			if crypto[i] == nil {
				return nil, fmt.Errorf("column %s is not in the policy", f.Column)
			}
		}
	}
	format := copyFormat(c.Format)
	valueFormat := formatText
	if format == copyfmt.Binary {
		valueFormat = formatBinary
	}
	return copyfmt.NewTransformer(copyOptions(c), fields, func(row int64, field int, value []byte) ([]byte, error) {
		if value == nil {
			return nil, nil
		}
		cc := crypto[field]
		sess, done := s.readSettings()
		stored, err := cc.encrypt(valueFormat, value, sess)
		done()
		if err != nil {
			var ce *codec.Error
			if errors.As(err, &ce) {
				return nil, fmt.Errorf("COPY row %d, column %s: %s", row, cc.col.Name, ce.Message)
			}
			return nil, fmt.Errorf("COPY row %d, column %s: %w", row, cc.col.Name, err)
		}
		if valueFormat == formatText {
			return cc.storedText(stored), nil
		}
		return stored, nil
	})
}

func copyFormat(f analyze.CopyFormat) copyfmt.Format {
	switch f {
	case analyze.CopyCSV:
		return copyfmt.CSV
	case analyze.CopyBinary:
		return copyfmt.Binary
	}
	return copyfmt.Text
}

func copyOptions(c *analyze.Copy) copyfmt.Options {
	o := copyfmt.DefaultOptions(copyFormat(c.Format))
	if c.Delimiter != "" {
		o.Delimiter = c.Delimiter[0]
	}
	o.Null = c.Null
	o.Default = c.Default
	o.Header = c.Header
	if c.Quote != "" {
		o.Quote = c.Quote[0]
	}
	if c.Escape != "" {
		o.Escape = c.Escape[0]
	}
	if c.Format == analyze.CopyCSV {
		n := len(c.Fields)
		o.ForceQuote, o.ForceNotNull, o.ForceNull = make([]bool, n), make([]bool, n), make([]bool, n)
		for i, f := range c.Fields {
			o.ForceQuote[i], o.ForceNotNull[i], o.ForceNull[i] = f.ForceQuote, f.ForceNotNull, f.ForceNull
		}
	}
	return o
}

// isUTF8Name reports whether an encoding name means UTF-8, comparing as PostgreSQL's
// clean_encoding_name does (letters and digits only, case-insensitive; src/common/encnames.c).
func isUTF8Name(name string) bool {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String() == "utf8" || b.String() == "unicode"
}

// byteUnsafeEncodings are the client encodings whose multibyte characters may contain ASCII bytes
// such as a delimiter or a backslash, so COPY data in them cannot be split into fields byte by
// byte (PostgreSQL §24.3.1, "Supported Character Sets": the client-only encodings).
var byteUnsafeEncodings = map[string]bool{"SJIS": true, "SHIFT_JIS_2004": true, "BIG5": true, "GBK": true, "UHC": true, "GB18030": true, "JOHAB": true}

// cstring returns the NUL-terminated string at the start of b.
func cstring(b []byte) (string, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", false
	}
	return string(b[:i]), true
}

// twoCStrings returns the first two NUL-terminated strings of b (Bind: portal, statement).
func twoCStrings(b []byte) (string, string, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", "", false
	}
	j := bytes.IndexByte(b[i+1:], 0)
	if j < 0 {
		return "", "", false
	}
	return string(b[:i]), string(b[i+1 : i+1+j]), true
}

// isSettingStatement reports whether sql is one SET, RESET or SHOW statement without quotes or
// semicolons inside, the only statements allowed while standard_conforming_strings is off (so
// that it can be turned back on): with backslashes read as escapes the proxy cannot even tell
// where a quoted string ends, so anything more is refused.
func isSettingStatement(sql string) bool {
	body := strings.TrimRight(strings.TrimSpace(sql), ";")
	if strings.ContainsAny(body, ";'\"$\\") || strings.Contains(body, "--") || strings.Contains(body, "/*") {
		return false
	}
	f := strings.Fields(strings.ToLower(body))
	return len(f) > 0 && (f[0] == "set" || f[0] == "reset" || f[0] == "show")
}

// scsTouched reports whether sql may change standard_conforming_strings (SET, set_config, …).
func (s *Session) scsTouched(sql string) bool {
	return containsFold(sql, "standard_conforming_strings")
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), sub)
}
