package copyfmt

import (
	"strconv"
)

// eolType is the line ending of a text or CSV stream. COPY FROM takes it from
// the first line and rejects a later line that ends differently (COPY, "Text
// Format"; CopyReadLineText), because a stray \r or \n is then data that
// should have been escaped or quoted.
type eolType uint8

const (
	eolUnknown eolType = iota
	eolNL
	eolCR
	eolCRNL
)

// writeLines splits p into rows, completing first the row held in pending.
func (t *Transformer) writeLines(dst, p []byte) ([]byte, error) {
	if t.ended {
		return dst, nil
	}
	if len(t.pending) > 0 {
		n, eolLen, found, err := t.scan(p)
		if err != nil {
			return dst, err
		}
		t.pending = append(t.pending, p[:n]...)
		p = p[n:]
		if !found {
			return dst, t.checkPending()
		}
		dst, err = t.line(dst, t.pending, eolLen)
		t.pending = release(t.pending)
		if err != nil {
			return dst, err
		}
	}
	for len(p) > 0 && !t.ended {
		n, eolLen, found, err := t.scan(p)
		if err != nil {
			return dst, err
		}
		if !found {
			t.pending = append(t.pending, p...)
			return dst, t.checkPending()
		}
		if dst, err = t.line(dst, p[:n], eolLen); err != nil {
			return dst, err
		}
		p = p[n:]
	}
	return dst, nil
}

// release empties a buffer for reuse, dropping it if an unusually large row
// grew it, so that one such row does not pin its memory for the whole COPY.
func release(b []byte) []byte {
	if cap(b) > 1<<20 {
		return nil
	}
	return b[:0]
}

// checkPending bounds the row held back, as PostgreSQL bounds a line.
func (t *Transformer) checkPending() error {
	if len(t.pending) > t.maxRow {
		return t.scanErr("row is longer than " + strconv.Itoa(t.maxRow) + " bytes")
	}
	return nil
}

// closeLines processes a final row that has no line ending.
func (t *Transformer) closeLines(dst []byte) ([]byte, error) {
	if t.ended || len(t.pending) == 0 {
		return dst, nil
	}
	eolLen := 0
	if t.cr {
		// The stream ended right after a \r, which is therefore a line ending.
		if t.eol == eolCRNL {
			return dst, t.scanErr(t.unquoted("carriage return"))
		}
		t.eol, t.cr, eolLen = eolCR, false, 1
	}
	if t.inQuote {
		return dst, t.scanErr("unterminated CSV quoted field")
	}
	dst, err := t.line(dst, t.pending, eolLen)
	t.pending = t.pending[:0]
	return dst, err
}

// scanErr reports a framing error in the line being scanned.
func (t *Transformer) scanErr(reason string) *Error {
	row := t.row + 1
	if t.needHeader {
		row = 0
	}
	return &Error{Row: row, Field: -1, Reason: reason}
}

// scan continues the line scanner over p, as PostgreSQL's CopyReadLineText
// finds line ends: in text a backslash escapes the next byte, whatever it is;
// in CSV line breaks inside quotes are data. It returns how many bytes of p
// belong to the current row and, if the row ends there, the length of its
// line ending (0 to 2 bytes, possibly all in earlier payloads).
func (t *Transformer) scan(p []byte) (n, eolLen int, found bool, err error) {
	if len(p) == 0 {
		return 0, 0, false, nil
	}
	if t.cr {
		// A \r ended the previous payload; this byte says whether it was CRLF.
		t.cr = false
		if p[0] == '\n' {
			t.eol = eolCRNL
			return 1, 2, true, nil
		}
		if t.eol == eolCRNL {
			return 0, 0, false, t.scanErr(t.unquoted("carriage return"))
		}
		t.eol = eolCR
		return 0, 1, true, nil
	}
	csv := t.opts.Format == CSV
	quote, escape := t.opts.Quote, t.opts.Escape
	sepEscape := escape != quote // as in PostgreSQL, an ESCAPE equal to QUOTE needs no state
	i := 0
	for i < len(p) {
		if !t.esc {
			stop := &t.lineOut
			if t.inQuote {
				stop = &t.lineIn
			}
			j := i
			for i < len(p) && !stop[p[i]] {
				i++
			}
			if i > j {
				t.lastEsc = false
			}
			if i == len(p) {
				break
			}
		}
		c := p[i]
		i++
		if csv {
			if t.inQuote && sepEscape && c == escape {
				t.lastEsc = !t.lastEsc
			}
			if c == quote && !t.lastEsc {
				t.inQuote = !t.inQuote
			}
			if !sepEscape || c != escape {
				t.lastEsc = false
			}
			if t.inQuote {
				continue
			}
		} else {
			if t.esc {
				t.esc = false
				continue
			}
			if c == '\\' {
				t.esc = true
				continue
			}
		}
		switch c {
		case '\n':
			if t.eol == eolCR || t.eol == eolCRNL {
				return 0, 0, false, t.scanErr(t.unquoted("newline"))
			}
			t.eol = eolNL
			return i, 1, true, nil
		case '\r':
			switch t.eol {
			case eolNL:
				return 0, 0, false, t.scanErr(t.unquoted("carriage return"))
			case eolCR:
				return i, 1, true, nil
			}
			if i == len(p) {
				t.cr = true
				return i, 0, false, nil
			}
			if p[i] == '\n' {
				t.eol = eolCRNL
				return i + 1, 2, true, nil
			}
			if t.eol == eolCRNL {
				return 0, 0, false, t.scanErr(t.unquoted("carriage return"))
			}
			t.eol = eolCR
			return i, 1, true, nil
		}
	}
	return i, 0, false, nil
}

// unquoted words a stray line-break error as PostgreSQL does.
func (t *Transformer) unquoted(what string) string {
	if t.opts.Format == CSV {
		return "unquoted " + what + " found in data (line endings differ from the first line's)"
	}
	return "literal " + what + " found in data (line endings differ from the first line's)"
}

// line handles one row: row holds the row's bytes and its line ending, the
// last eolLen bytes.
func (t *Transformer) line(dst, row []byte, eolLen int) ([]byte, error) {
	content, eol := row[:len(row)-eolLen], row[len(row)-eolLen:]
	if len(content) == 2 && content[0] == '\\' && content[1] == '.' {
		// The end-of-data marker (COPY, "Text Format" and "CSV Format"). In
		// CSV PostgreSQL 15 to 17 end the data there but 18 reads a data
		// value \. ; the marker is withheld so that neither reads a row from
		// it. In text every version ends the data, so it is forwarded.
		switch {
		case t.opts.Format == CSV && eolLen == 0:
			// Not a marker: the value \. in the last line.
		case t.opts.Format == CSV:
			t.ended = true
			return dst, nil
		case eolLen == 0:
			return dst, t.scanErr(`end-of-copy marker \. has no line ending`)
		default:
			t.ended = true
			return append(dst, row...), nil
		}
	}
	if t.needHeader {
		t.needHeader = false
		return append(dst, row...), nil
	}
	t.row++
	start := len(dst)
	var err error
	if t.opts.Format == CSV {
		dst, err = t.csvRow(dst, content)
	} else {
		dst, err = t.textRow(dst, content)
	}
	t.releaseVal()
	if err != nil {
		return dst, err
	}
	if eolLen == 0 && len(dst) == start {
		// The last row has no line ending and now encodes to nothing (an
		// empty value in one field), which COPY FROM would not read as a
		// row; a line ending keeps it.
		return append(dst, t.eol.ending()...), nil
	}
	return append(dst, eol...), nil
}

// ending returns the line ending, \n if none was seen yet.
func (e eolType) ending() string {
	switch e {
	case eolCR:
		return "\r"
	case eolCRNL:
		return "\r\n"
	}
	return "\n"
}

// fieldCountErr reports a row with n fields.
func (t *Transformer) fieldCountErr(n int) *Error {
	return t.rowErr(-1, "row has "+strconv.Itoa(n)+" fields, expected "+strconv.Itoa(len(t.fields)))
}
