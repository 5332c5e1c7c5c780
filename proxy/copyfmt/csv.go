package copyfmt

// csvRow rewrites one CSV row, content being the row without its line
// ending. Fields are split as CopyReadAttributesCSV splits them: a field may
// mix quoted and unquoted parts, and inside quotes ESCAPE followed by QUOTE
// or ESCAPE stands for that character.
func (t *Transformer) csvRow(dst, content []byte) ([]byte, error) {
	if len(t.fields) == 0 {
		if len(content) != 0 {
			return dst, t.fieldCountErr(1)
		}
		return dst, nil
	}
	d, q, e := t.opts.Delimiter, t.opts.Quote, t.opts.Escape
	b := t.bounds[:0] // start, end, quoted (0 or 1) of each field
	i := 0
	for {
		start, quoted, in := i, 0, false
		for ; i < len(content); i++ {
			stop := &t.fieldOut
			if in {
				stop = &t.fieldIn
			}
			for i < len(content) && !stop[content[i]] {
				i++
			}
			if i == len(content) {
				break
			}
			c := content[i]
			if in {
				if c == e && i+1 < len(content) && (content[i+1] == e || content[i+1] == q) {
					i++
				} else if c == q {
					in = false
				}
				continue
			}
			if c == d {
				break
			}
			if c == q {
				quoted, in = 1, true
			}
		}
		if in {
			return dst, t.rowErr(len(b)/3, "unterminated CSV quoted field")
		}
		b = append(b, start, i, quoted)
		if i == len(content) {
			break
		}
		i++
	}
	t.bounds = b
	if len(b)/3 != len(t.fields) {
		return dst, t.fieldCountErr(len(b) / 3)
	}
	prev := 0
	for _, i := range t.sel {
		s, end, quoted := b[3*i], b[3*i+1], b[3*i+2] == 1
		raw := content[s:end]
		dst = append(dst, content[prev:s]...)
		prev = end
		// NULL is matched only unquoted ("CSV Format"); FORCE_NOT_NULL reads
		// it as the NULL string and FORCE_NULL reads a quoted NULL string as
		// NULL, as NextCopyFrom applies them.
		isNull := !quoted && string(raw) == t.opts.Null
		var v []byte
		switch {
		case isNull && !flag(t.opts.ForceNotNull, i):
		case isNull:
			v = append(t.val[:0], t.opts.Null...)
		case t.hasDef && string(raw) == t.def:
			dst = append(dst, raw...)
			continue
		default:
			v = t.unquote(raw)
			if flag(t.opts.ForceNull, i) && string(v) == t.opts.Null {
				v = nil
			}
		}
		out, err := t.call(i, v)
		if err != nil {
			return dst, err
		}
		if dst, err = t.appendCSV(dst, out, i); err != nil {
			return dst, err
		}
	}
	return append(dst, content[prev:]...), nil
}

func flag(flags []bool, i int) bool { return flags != nil && flags[i] }

// unquote decodes a CSV field into t.val.
func (t *Transformer) unquote(raw []byte) []byte {
	q, e := t.opts.Quote, t.opts.Escape
	v := t.val[:0]
	in := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case in && c == e && i+1 < len(raw) && (raw[i+1] == e || raw[i+1] == q):
			i++
			c = raw[i]
		case c == q:
			in = !in
			continue
		}
		v = append(v, c)
	}
	t.val = v
	return v
}

// appendCSV appends v to field i as COPY TO writes it (CopyAttributeOutCSV):
// quoted if FORCE_QUOTE applies or v contains the delimiter, the quote
// character, \r or \n, equals the NULL or DEFAULT string, or is \. alone on
// its line; inside quotes QUOTE and ESCAPE are preceded by ESCAPE. nil is
// the NULL string, unquoted.
//
// FORCE_NOT_NULL and FORCE_NULL change what COPY FROM reads back: with
// FORCE_NOT_NULL an unquoted NULL string is that string, with FORCE_NULL a
// quoted one is NULL. With both, NULL is written quoted and the NULL string
// unquoted; with one of them, the value it makes unwritable (NULL, or the
// NULL string) is an error.
func (t *Transformer) appendCSV(dst, v []byte, i int) ([]byte, error) {
	notNull, forceNull := flag(t.opts.ForceNotNull, i), flag(t.opts.ForceNull, i)
	switch {
	case v == nil && !notNull:
		return append(dst, t.opts.Null...), nil
	case v == nil && forceNull:
		return t.appendQuoted(dst, []byte(t.opts.Null)), nil
	case v == nil:
		return dst, t.rowErr(i, "cannot write NULL to a FORCE_NOT_NULL field")
	case forceNull && string(v) == t.opts.Null && notNull:
		return append(dst, v...), nil
	case forceNull && string(v) == t.opts.Null:
		return dst, t.rowErr(i, "value equals the NULL string in a FORCE_NULL field and would read back as NULL")
	}
	d, q := t.opts.Delimiter, t.opts.Quote
	quote := flag(t.opts.ForceQuote, i) || string(v) == t.opts.Null || t.hasDef && string(v) == t.def ||
		len(t.fields) == 1 && string(v) == `\.`
	for j := 0; !quote && j < len(v); j++ {
		c := v[j]
		quote = c == d || c == q || c == '\n' || c == '\r'
	}
	if !quote {
		return append(dst, v...), nil
	}
	return t.appendQuoted(dst, v), nil
}

// appendQuoted appends v between QUOTE characters, with QUOTE and ESCAPE
// inside preceded by ESCAPE.
func (t *Transformer) appendQuoted(dst, v []byte) []byte {
	q, e := t.opts.Quote, t.opts.Escape
	dst = append(dst, q)
	start := 0
	for j, c := range v {
		if c == q || c == e {
			dst = append(dst, v[start:j]...)
			dst = append(dst, e)
			start = j
		}
	}
	dst = append(dst, v[start:]...)
	return append(dst, q)
}
