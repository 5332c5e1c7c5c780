package codec

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting. PostgreSQL's recursive-descent parser stops
// at max_stack_depth (src/common/jsonapi.c, check_stack_depth); its
// incremental parser uses 6400 (JSON_TD_MAX_STACK).
const maxJSONDepth = 6400

func errJSON() *Error {
	return newError(CodeInvalidTextRepresentation, "invalid input syntax for type json")
}

// jsonCanonical checks json input as json_in/json_recv do
// (src/backend/utils/adt/json.c with the lexer and parser of
// src/common/jsonapi.c): RFC 8259 syntax with any value at top level, blanks
// ' ', \t, \n, \r between tokens, and escapes checked only for form (json
// keeps "\u0000" and lone surrogates). json stores the text unchanged, so
// the canonical form is the input bytes. src must already be valid text.
func jsonCanonical(dst []byte, t Type, src []byte, s *Session) ([]byte, error) {
	if err := s.textEncodingErr(); err != nil {
		return nil, err
	}
	p := jsonParser{s: src}
	if _, err := p.parseDocument(); err != nil {
		return nil, err
	}
	return append(dst, src...), nil
}

// jsonbCanonical reads jsonb input as jsonb_in does: the json syntax, with
// escapes resolved ("\u0000" and unpaired surrogates rejected), numbers read
// as numeric, object keys ordered shorter first then bytewise with the last
// of duplicate keys kept (src/backend/utils/adt/jsonb_util.c,
// uniqueifyJsonbObject). The canonical form is jsonb_send's: the version
// byte 1 followed by jsonb_out's text (jsonb.c, JsonbToCString), which is
// unique per jsonb value: `{"a": 1, "b": [1, 2]}` with ", " and ": "
// separators, strings escaped as escape_json does (json.c), numbers as
// numeric_out writes them.
func jsonbCanonical(dst []byte, t Type, src []byte, s *Session) ([]byte, error) {
	if err := s.textEncodingErr(); err != nil {
		return nil, err
	}
	p := jsonParser{s: src, build: true}
	v, err := p.parseDocument()
	if err != nil {
		return nil, err
	}
	dst = append(dst, 1)
	return v.appendText(dst), nil
}

type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonTrue
	jsonFalse
	jsonString
	jsonNumber
	jsonArray
	jsonObject
)

// jsonValue is a parsed jsonb value. For strings, text is the unescaped
// UTF-8; for numbers, the numeric_out text.
type jsonValue struct {
	kind  jsonKind
	text  []byte
	items []jsonValue
	keys  [][]byte
}

type jsonParser struct {
	s     []byte
	p     int
	build bool
	depth int
}

func (p *jsonParser) skipSpace() {
	for p.p < len(p.s) {
		switch p.s[p.p] {
		case ' ', '\t', '\n', '\r':
			p.p++
		default:
			return
		}
	}
}

func (p *jsonParser) parseDocument() (jsonValue, error) {
	v, err := p.parseValue()
	if err != nil {
		return v, err
	}
	p.skipSpace()
	if p.p != len(p.s) {
		return v, errJSON()
	}
	return v, nil
}

func (p *jsonParser) parseValue() (jsonValue, error) {
	p.skipSpace()
	if p.p >= len(p.s) {
		return jsonValue{}, errJSON()
	}
	switch c := p.s[p.p]; {
	case c == '{':
		return p.parseObject()
	case c == '[':
		return p.parseArray()
	case c == '"':
		text, err := p.parseString()
		return jsonValue{kind: jsonString, text: text}, err
	case c == '-' || isDigit(c):
		return p.parseNumber()
	default:
		// json_lex: a run of alphanumerics must be a keyword.
		start := p.p
		for p.p < len(p.s) && jsonAlnum(p.s[p.p]) {
			p.p++
		}
		switch string(p.s[start:p.p]) {
		case "true":
			return jsonValue{kind: jsonTrue}, nil
		case "false":
			return jsonValue{kind: jsonFalse}, nil
		case "null":
			return jsonValue{kind: jsonNull}, nil
		}
		return jsonValue{}, errJSON()
	}
}

// jsonAlnum is JSON_ALPHANUMERIC_CHAR (src/common/jsonapi.c).
func jsonAlnum(c byte) bool { return isAlpha(c) || isDigit(c) || c == '_' || c >= 0x80 }

func (p *jsonParser) enter() error {
	p.depth++
	if p.depth > maxJSONDepth {
		return newError(CodeInvalidTextRepresentation, "invalid input syntax for type json: nesting too deep")
	}
	return nil
}

func (p *jsonParser) parseArray() (jsonValue, error) {
	if err := p.enter(); err != nil {
		return jsonValue{}, err
	}
	defer func() { p.depth-- }()
	p.p++ // '['
	v := jsonValue{kind: jsonArray}
	p.skipSpace()
	if p.p < len(p.s) && p.s[p.p] == ']' {
		p.p++
		return v, nil
	}
	for {
		item, err := p.parseValue()
		if err != nil {
			return v, err
		}
		if p.build {
			v.items = append(v.items, item)
		}
		p.skipSpace()
		if p.p >= len(p.s) {
			return v, errJSON()
		}
		switch p.s[p.p] {
		case ',':
			p.p++
		case ']':
			p.p++
			return v, nil
		default:
			return v, errJSON()
		}
	}
}

func (p *jsonParser) parseObject() (jsonValue, error) {
	if err := p.enter(); err != nil {
		return jsonValue{}, err
	}
	defer func() { p.depth-- }()
	p.p++ // '{'
	v := jsonValue{kind: jsonObject}
	p.skipSpace()
	if p.p < len(p.s) && p.s[p.p] == '}' {
		p.p++
		return v, nil
	}
	for {
		p.skipSpace()
		if p.p >= len(p.s) || p.s[p.p] != '"' {
			return v, errJSON()
		}
		key, err := p.parseString()
		if err != nil {
			return v, err
		}
		p.skipSpace()
		if p.p >= len(p.s) || p.s[p.p] != ':' {
			return v, errJSON()
		}
		p.p++
		item, err := p.parseValue()
		if err != nil {
			return v, err
		}
		if p.build {
			v.keys = append(v.keys, key)
			v.items = append(v.items, item)
		}
		p.skipSpace()
		if p.p >= len(p.s) {
			return v, errJSON()
		}
		switch p.s[p.p] {
		case ',':
			p.p++
		case '}':
			p.p++
			if p.build {
				v.normalizeObject()
			}
			return v, nil
		default:
			return v, errJSON()
		}
	}
}

// normalizeObject orders pairs as jsonb stores them: by key length, then
// bytewise, the last of equal keys winning (jsonb_util.c,
// lengthCompareJsonbPair and uniqueifyJsonbObject).
func (v *jsonValue) normalizeObject() {
	n := len(v.keys)
	if n < 2 {
		return
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		ka, kb := v.keys[a], v.keys[b]
		if len(ka) != len(kb) {
			return len(ka) - len(kb)
		}
		if c := bytes.Compare(ka, kb); c != 0 {
			return c
		}
		return b - a // later pair first, so it is the one kept
	})
	keys := make([][]byte, 0, n)
	items := make([]jsonValue, 0, n)
	for _, i := range idx {
		if len(keys) > 0 && bytes.Equal(keys[len(keys)-1], v.keys[i]) {
			continue
		}
		keys = append(keys, v.keys[i])
		items = append(items, v.items[i])
	}
	v.keys, v.items = keys, items
}

// parseString reads a string token at p.p (which is '"'), following
// json_lex_string: control characters must be escaped, escapes are \" \\ \/
// \b \f \n \r \t and \uXXXX. When building jsonb the escapes are resolved,
// surrogate pairs combined, and \u0000 and unpaired surrogates rejected.
func (p *jsonParser) parseString() ([]byte, error) {
	p.p++ // opening quote
	var out []byte
	hi := -1 // pending high surrogate
	for {
		if p.p >= len(p.s) {
			return nil, errJSON()
		}
		c := p.s[p.p]
		switch {
		case c == '"':
			p.p++
			if hi != -1 {
				return nil, errJSON()
			}
			return out, nil
		case c < 0x20:
			return nil, errJSON()
		case c != '\\':
			if hi != -1 && p.build {
				return nil, errJSON()
			}
			if p.build {
				out = append(out, c)
			}
			p.p++
			continue
		}
		// Backslash escape.
		p.p++
		if p.p >= len(p.s) {
			return nil, errJSON()
		}
		e := p.s[p.p]
		p.p++
		if e == 'u' {
			if p.p+4 > len(p.s) {
				return nil, errJSON()
			}
			ch := 0
			for _, h := range p.s[p.p : p.p+4] {
				d := digitValue(h)
				if d > 15 {
					return nil, errJSON()
				}
				ch = ch<<4 | int(d)
			}
			p.p += 4
			if !p.build {
				continue
			}
			switch {
			case ch >= 0xD800 && ch <= 0xDBFF:
				if hi != -1 {
					return nil, errJSON()
				}
				hi = ch
				continue
			case ch >= 0xDC00 && ch <= 0xDFFF:
				if hi == -1 {
					return nil, errJSON()
				}
				ch = 0x10000 + (hi-0xD800)<<10 + (ch - 0xDC00)
				hi = -1
			}
			if hi != -1 {
				return nil, errJSON()
			}
			if ch == 0 {
				return nil, newError(CodeUntranslatableCharacter, "unsupported Unicode escape sequence")
			}
			out = utf8.AppendRune(out, rune(ch))
			continue
		}
		var r byte
		switch e {
		case '"', '\\', '/':
			r = e
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		default:
			return nil, errJSON()
		}
		if p.build {
			if hi != -1 {
				return nil, errJSON()
			}
			out = append(out, r)
		}
	}
}

// parseNumber reads a number token (json_lex_number): -?(0|[1-9][0-9]*)
// (.[0-9]+)?([eE][+-]?[0-9]+)? not followed by an alphanumeric character.
func (p *jsonParser) parseNumber() (jsonValue, error) {
	s, start := p.s, p.p
	i := p.p
	if s[i] == '-' {
		i++
	}
	digitsFrom := func(j int) int {
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		return j
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digitsFrom(i)
	default:
		return jsonValue{}, errJSON()
	}
	if i < len(s) && s[i] == '.' {
		j := digitsFrom(i + 1)
		if j == i+1 {
			return jsonValue{}, errJSON()
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digitsFrom(i)
		if j == i {
			return jsonValue{}, errJSON()
		}
		i = j
	}
	if i < len(s) && jsonAlnum(s[i]) {
		return jsonValue{}, errJSON()
	}
	p.p = i
	if !p.build {
		return jsonValue{kind: jsonNumber}, nil
	}
	// jsonb stores numbers as numeric (jsonb.c, jsonb_in_scalar).
	numType := makeType(kindNumeric, -1)
	d, err := parseNumeric(s[start:i], numType)
	if err != nil {
		return jsonValue{}, err
	}
	bin, err := d.appendBinary(nil)
	if err != nil {
		return jsonValue{}, err
	}
	text, err := numericWireText(nil, numType, bin)
	if err != nil {
		return jsonValue{}, err
	}
	return jsonValue{kind: jsonNumber, text: text}, nil
}

// appendText writes v as JsonbToCString does without indentation.
func (v *jsonValue) appendText(dst []byte) []byte {
	switch v.kind {
	case jsonNull:
		return append(dst, "null"...)
	case jsonTrue:
		return append(dst, "true"...)
	case jsonFalse:
		return append(dst, "false"...)
	case jsonNumber:
		return append(dst, v.text...)
	case jsonString:
		return appendJSONString(dst, v.text)
	case jsonArray:
		dst = append(dst, '[')
		for i := range v.items {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = v.items[i].appendText(dst)
		}
		return append(dst, ']')
	default:
		dst = append(dst, '{')
		for i := range v.items {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendJSONString(dst, v.keys[i])
			dst = append(dst, ": "...)
			dst = v.items[i].appendText(dst)
		}
		return append(dst, '}')
	}
}

// appendJSONString quotes s as escape_json does (src/backend/utils/adt/json.c).
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		switch c {
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		default:
			if c < ' ' {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}
