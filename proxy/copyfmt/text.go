package copyfmt

import "bytes"

// textRow rewrites one text-format row, content being the row without its
// line ending. Fields are split as CopyReadAttributesText splits them: at
// each delimiter not preceded by an escaping backslash.
func (t *Transformer) textRow(dst, content []byte) ([]byte, error) {
	if len(t.fields) == 0 {
		// A table without columns: the row must be empty.
		if len(content) != 0 {
			return dst, t.fieldCountErr(1)
		}
		return dst, nil
	}
	d := t.opts.Delimiter
	b := t.bounds[:0]
	start := 0
	for i := 0; i < len(content); i++ {
		for i < len(content) && !t.fieldOut[content[i]] {
			i++
		}
		if i == len(content) {
			break
		}
		switch content[i] {
		case '\\':
			i++
			if i == len(content) {
				// Only the last row of a stream can end inside an escape.
				return dst, t.rowErr(len(b)/2, "backslash at end of data")
			}
			if content[i] == '.' {
				return dst, t.rowErr(-1, `end-of-copy marker \. is not alone on its line`)
			}
		case d:
			b = append(b, start, i)
			start = i + 1
		}
	}
	b = append(b, start, len(content))
	t.bounds = b
	if len(b)/2 != len(t.fields) {
		return dst, t.fieldCountErr(len(b) / 2)
	}
	prev := 0
	for _, i := range t.sel {
		s, e := b[2*i], b[2*i+1]
		raw := content[s:e]
		dst = append(dst, content[prev:s]...)
		prev = e
		var v []byte
		switch {
		case string(raw) == t.opts.Null:
			// The NULL string is matched before de-escaping ("Text Format").
		case t.hasDef && string(raw) == t.def:
			dst = append(dst, raw...)
			continue
		default:
			v = t.unescape(raw)
		}
		out, err := t.call(i, v)
		if err != nil {
			return dst, err
		}
		dst = t.appendText(dst, out)
	}
	return append(dst, content[prev:]...), nil
}

// unescape decodes the backslash sequences of a text-format field into t.val
// as CopyReadAttributesText does: \b \f \n \r \t \v, one to three octal
// digits, x and one or two hex digits, and any other byte standing for
// itself. raw does not end in a lone backslash.
func (t *Transformer) unescape(raw []byte) []byte {
	v := t.val[:0]
	for {
		j := bytes.IndexByte(raw, '\\')
		if j < 0 {
			v = append(v, raw...)
			break
		}
		v = append(v, raw[:j]...)
		c := raw[j+1]
		raw = raw[j+2:]
		switch c {
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n := int(c - '0')
			for k := 0; k < 2 && len(raw) > 0 && raw[0] >= '0' && raw[0] <= '7'; k++ {
				n = n<<3 + int(raw[0]-'0')
				raw = raw[1:]
			}
			c = byte(n)
		case 'x':
			if len(raw) > 0 && isHex(raw[0]) {
				n := hexVal(raw[0])
				raw = raw[1:]
				if len(raw) > 0 && isHex(raw[0]) {
					n = n<<4 | hexVal(raw[0])
					raw = raw[1:]
				}
				c = n
			}
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'v':
			c = '\v'
		}
		v = append(v, c)
	}
	t.val = v
	return v
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// appendText appends v in the text format, or the NULL string for nil.
//
// A non-empty value whose escaped form would read back as the NULL or
// DEFAULT string (possible only with a custom one, such as NULL 'nil') gets
// its first byte as a three-digit octal escape, which COPY FROM decodes to
// the same value but does not match against those strings. An empty value
// with an empty NULL string reads back as NULL, as it does from PostgreSQL's
// own COPY TO.
func (t *Transformer) appendText(dst, v []byte) []byte {
	if v == nil {
		return append(dst, t.opts.Null...)
	}
	start := len(dst)
	dst = appendTextEscaped(dst, v, t.opts.Delimiter)
	if enc := dst[start:]; len(v) > 0 && (string(enc) == t.opts.Null || t.hasDef && string(enc) == t.def) {
		dst = append(dst[:start], '\\', '0'+v[0]>>6, '0'+v[0]>>3&7, '0'+v[0]&7)
		dst = appendTextEscaped(dst, v[1:], t.opts.Delimiter)
	}
	return dst
}

// appendTextEscaped escapes v as COPY TO does (CopyAttributeOutText):
// backslash and the delimiter get a backslash, and \b \f \n \r \t \v are
// written as those sequences; other bytes are written as they are.
func appendTextEscaped(dst, v []byte, delim byte) []byte {
	start := 0
	for i, c := range v {
		var e byte
		switch {
		case c < 0x20:
			switch c {
			case '\b':
				e = 'b'
			case '\f':
				e = 'f'
			case '\n':
				e = 'n'
			case '\r':
				e = 'r'
			case '\t':
				e = 't'
			case '\v':
				e = 'v'
			default:
				if c != delim {
					continue
				}
				e = c
			}
		case c == '\\' || c == delim:
			e = c
		default:
			continue
		}
		dst = append(dst, v[start:i]...)
		dst = append(dst, '\\', e)
		start = i + 1
	}
	return append(dst, v[start:]...)
}
