package codec

import (
	"strconv"
	"unicode/utf8"
)

// textCanonical handles text, varchar and bpchar, whose canonical plaintext
// is the UTF-8 string itself (textsend is the raw bytes,
// src/backend/utils/adt/varlena.c). varchar(n) and char(n) apply their length
// rules (src/backend/utils/adt/varchar.c, varchar_input and bpchar_input):
// characters beyond n are an error unless they are all spaces, which are
// dropped, and char(n) pads with spaces to n characters. src must already be
// valid text.
func textCanonical(dst []byte, t Type, src []byte, s *Session) ([]byte, error) {
	if err := s.textEncodingErr(); err != nil {
		return nil, err
	}
	if t.Typmod < 4 || t.kind == kindText {
		return append(dst, src...), nil
	}
	maxChars := int(t.Typmod - 4)
	switch t.kind {
	case kindVarchar:
		if len(src) > maxChars {
			cut := clipChars(src, maxChars)
			if !allSpaces(src[cut:]) {
				return nil, errTooLong(t, maxChars)
			}
			src = src[:cut]
		}
		return append(dst, src...), nil
	default: // kindBpchar
		n := utf8.RuneCount(src)
		if n > maxChars {
			cut := clipChars(src, maxChars)
			if !allSpaces(src[cut:]) {
				return nil, errTooLong(t, maxChars)
			}
			return append(dst, src[:cut]...), nil
		}
		dst = append(dst, src...)
		for ; n < maxChars; n++ {
			dst = append(dst, ' ')
		}
		return dst, nil
	}
}

func errTooLong(t Type, n int) *Error {
	return newError(CodeStringDataRightTruncation, "value too long for type "+t.sqlName()+"("+strconv.Itoa(n)+")")
}

// clipChars returns the byte length of the first n characters of b.
func clipChars(b []byte, n int) int {
	i := 0
	for ; n > 0 && i < len(b); n-- {
		_, size := utf8.DecodeRune(b[i:])
		i += size
	}
	return i
}

func allSpaces(b []byte) bool {
	for _, c := range b {
		if c != ' ' {
			return false
		}
	}
	return true
}
