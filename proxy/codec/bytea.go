package codec

// byteaCanonicalText reads bytea text input as byteain does
// (src/backend/utils/adt/varlena.c, and hex_decode in encode.c): either
// "\x" followed by pairs of hex digits (blanks allowed between pairs), or the
// escape format, where "\\" is a backslash, "\ooo" (first digit 0-3) an octal
// byte, and any other byte stands for itself. The canonical form is the raw
// bytes (byteasend).
func byteaCanonicalText(dst []byte, t Type, src []byte) ([]byte, error) {
	if len(src) >= 2 && src[0] == '\\' && src[1] == 'x' {
		s := src[2:]
		for i := 0; i < len(s); {
			c := s[i]
			if c == ' ' || c == '\n' || c == '\t' || c == '\r' {
				i++
				continue
			}
			hi := digitValue(c)
			if hi > 15 {
				return nil, newError(CodeInvalidParameterValue, "invalid hexadecimal digit")
			}
			if i+1 >= len(s) {
				return nil, newError(CodeInvalidParameterValue, "invalid hexadecimal data: odd number of digits")
			}
			lo := digitValue(s[i+1])
			if lo > 15 {
				return nil, newError(CodeInvalidParameterValue, "invalid hexadecimal digit")
			}
			dst = append(dst, byte(hi<<4|lo))
			i += 2
		}
		return dst, nil
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c != '\\':
			dst = append(dst, c)
			i++
		case i+3 < len(src) && src[i+1] >= '0' && src[i+1] <= '3' &&
			src[i+2] >= '0' && src[i+2] <= '7' && src[i+3] >= '0' && src[i+3] <= '7':
			dst = append(dst, (src[i+1]-'0')<<6|(src[i+2]-'0')<<3|(src[i+3]-'0'))
			i += 4
		case i+1 < len(src) && src[i+1] == '\\':
			dst = append(dst, '\\')
			i += 2
		default:
			return nil, errSyntax(t)
		}
	}
	return dst, nil
}

// byteaWireText writes byteaout's form: "\x" and lower-case hex, or with
// bytea_output = escape, printable ASCII as itself, a backslash doubled and
// every other byte as a three-digit octal escape.
func byteaWireText(dst []byte, c []byte, s *Session) []byte {
	if !s.byteaEscapeOutput() {
		dst = append(dst, '\\', 'x')
		for _, b := range c {
			dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
		}
		return dst
	}
	for _, b := range c {
		switch {
		case b == '\\':
			dst = append(dst, '\\', '\\')
		case b < 0x20 || b > 0x7e:
			dst = append(dst, '\\', '0'+b>>6, '0'+(b>>3)&7, '0'+b&7)
		default:
			dst = append(dst, b)
		}
	}
	return dst
}
