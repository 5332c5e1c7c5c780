package codec

// uuidCanonicalText reads uuid text input as string_to_uuid does
// (src/backend/utils/adt/uuid.c): 32 hex digits in either case, optionally
// enclosed in braces, with an optional hyphen after any group of four digits.
// No blanks are allowed. The canonical form is the 16 bytes (uuid_send).
func uuidCanonicalText(dst []byte, t Type, src []byte) ([]byte, error) {
	p := 0
	braces := len(src) > 0 && src[0] == '{'
	if braces {
		p++
	}
	for i := 0; i < 16; i++ {
		if p+1 >= len(src) {
			return nil, errSyntax(t)
		}
		hi, lo := digitValue(src[p]), digitValue(src[p+1])
		if hi > 15 || lo > 15 {
			return nil, errSyntax(t)
		}
		dst = append(dst, byte(hi<<4|lo))
		p += 2
		if p < len(src) && src[p] == '-' && i%2 == 1 && i < 15 {
			p++
		}
	}
	if braces {
		if p >= len(src) || src[p] != '}' {
			return nil, errSyntax(t)
		}
		p++
	}
	if p != len(src) {
		return nil, errSyntax(t)
	}
	return dst, nil
}

const hexDigits = "0123456789abcdef"

// uuidWireText writes the lower-case 8-4-4-4-12 form of uuid_out.
func uuidWireText(dst []byte, t Type, c []byte) ([]byte, error) {
	if len(c) != 16 {
		return nil, errCorrupt(t)
	}
	for i, b := range c {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
	}
	return dst, nil
}
