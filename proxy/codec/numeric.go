package codec

import (
	"encoding/binary"
	"math/big"
	"strconv"
)

// Numeric sign words of the external binary format
// (src/backend/utils/adt/numeric.c, NUMERIC_POS ... NUMERIC_NINF).
const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000

	numericDscaleMax = 0x3FFF // NUMERIC_DSCALE_MAX
	nbase            = 10000
)

// decimal is a numeric value as a sequence of decimal digits, the working
// form for parsing, rounding and truncation. Its value is
// sum(digits[i] * 10^(dweight-i)), negated when neg; dscale is the display
// scale (digits shown after the point). special is numericNaN, numericPInf or
// numericNInf for those values and 0 otherwise.
type decimal struct {
	special uint16
	neg     bool
	digits  []byte
	dweight int
	dscale  int
}

func errNumericOverflow() *Error {
	return newError(CodeNumericValueOutOfRange, "value overflows numeric format")
}

// numericCanonicalText reads numeric text input as numeric_in does
// (src/backend/utils/adt/numeric.c, numeric_in and set_var_from_str): blanks
// around; "NaN" (unsigned), or an optional sign and "Infinity"/"inf", in any
// case; or an optional sign, digits with at most one decimal point and an
// optional exponent (e/E, optional sign, digits); or (PostgreSQL 16 and
// later) an integer with a 0x/0o/0b prefix. Single underscores may separate
// digits (PostgreSQL 16). The display scale is the number of digits after
// the point less the exponent, at least 0. The column's numeric(p,s) typmod
// is then applied (round half away from zero to s digits; an error if the
// result needs more than p-s integer digits).
func numericCanonicalText(dst []byte, t Type, src []byte) ([]byte, error) {
	d, err := parseNumeric(src, t)
	if err != nil {
		return nil, err
	}
	if err := d.applyTypmod(t.Typmod); err != nil {
		return nil, err
	}
	return d.appendBinary(dst)
}

// numericCanonicalBinary reads numeric_recv's input: the header words
// ndigits, weight, sign and dscale, then ndigits base-10000 digits. As
// numeric_recv does, digits hidden by dscale are truncated away, the typmod
// is applied, and leading and trailing zero digits are stripped, so the
// result is the form numeric_send would produce.
func numericCanonicalBinary(dst []byte, t Type, src []byte) ([]byte, error) {
	if len(src) < 8 {
		return nil, errBinary(t)
	}
	n := int(binary.BigEndian.Uint16(src))
	weight := int(int16(binary.BigEndian.Uint16(src[2:])))
	sign := binary.BigEndian.Uint16(src[4:])
	dscale := int(binary.BigEndian.Uint16(src[6:]))
	if len(src) != 8+2*n {
		return nil, errBinary(t)
	}
	var d decimal
	switch sign {
	case numericPos, numericNeg:
	case numericNaN, numericPInf, numericNInf:
		d.special = sign
		if err := d.applyTypmod(t.Typmod); err != nil {
			return nil, err
		}
		return d.appendBinary(dst)
	default:
		return nil, newError(CodeInvalidBinaryRepresentation, `invalid sign in external "numeric" value`)
	}
	if dscale > numericDscaleMax {
		return nil, newError(CodeInvalidBinaryRepresentation, `invalid scale in external "numeric" value`)
	}
	d.neg = sign == numericNeg
	d.dscale = dscale
	d.dweight = weight*4 + 3
	d.digits = make([]byte, 0, 4*n)
	for i := 0; i < n; i++ {
		v := binary.BigEndian.Uint16(src[8+2*i:])
		if v >= nbase {
			return nil, newError(CodeInvalidBinaryRepresentation, `invalid digit in external "numeric" value`)
		}
		d.digits = append(d.digits, byte(v/1000), byte(v/100%10), byte(v/10%10), byte(v%10))
	}
	d.truncate(dscale)
	if err := d.applyTypmod(t.Typmod); err != nil {
		return nil, err
	}
	return d.appendBinary(dst)
}

func parseNumeric(src []byte, t Type) (decimal, error) {
	var d decimal
	s := trimSpace(src)
	neg := false
	body := s
	if len(body) > 0 && (body[0] == '+' || body[0] == '-') {
		neg = body[0] == '-'
		body = body[1:]
	}
	if len(body) == 0 {
		return d, errSyntax(t)
	}
	if !isDigit(body[0]) && body[0] != '.' {
		switch {
		case hasPrefixFold(s, "nan") && len(s) == 3:
			d.special = numericNaN
		case hasPrefixFold(body, "infinity") && len(body) == 8, hasPrefixFold(body, "inf") && len(body) == 3:
			d.special = numericPInf
			if neg {
				d.special = numericNInf
			}
		default:
			return d, errSyntax(t)
		}
		return d, nil
	}
	d.neg = neg
	if len(body) > 2 && body[0] == '0' {
		base := 0
		switch lower(body[1]) {
		case 'x':
			base = 16
		case 'o':
			base = 8
		case 'b':
			base = 2
		}
		if base != 0 {
			return d, d.setNonDecimal(body[2:], base, t)
		}
	}
	p := 0
	haveDot := false
	d.dweight = -1
	if body[p] == '.' {
		haveDot = true
		p++
	}
	if p >= len(body) || !isDigit(body[p]) {
		return d, errSyntax(t)
	}
	d.digits = make([]byte, 0, len(body))
	for p < len(body) {
		c := body[p]
		switch {
		case isDigit(c):
			d.digits = append(d.digits, c-'0')
			if haveDot {
				d.dscale++
			} else {
				d.dweight++
			}
			p++
			continue
		case c == '.' && !haveDot:
			haveDot = true
			p++
			if p < len(body) && body[p] == '_' {
				return d, errSyntax(t)
			}
			continue
		case c == '_':
			p++
			if p >= len(body) || !isDigit(body[p]) {
				return d, errSyntax(t)
			}
			continue
		}
		break
	}
	if p < len(body) && (body[p] == 'e' || body[p] == 'E') {
		p++
		// PostgreSQL 15 reads the exponent with strtol, which skips
		// leading blanks.
		for p < len(body) && isSpace(body[p]) {
			p++
		}
		eneg := false
		if p < len(body) && (body[p] == '+' || body[p] == '-') {
			eneg = body[p] == '-'
			p++
		}
		if p >= len(body) || !isDigit(body[p]) {
			return d, errSyntax(t)
		}
		exp := 0
		for p < len(body) {
			c := body[p]
			if isDigit(c) {
				exp = exp*10 + int(c-'0')
				if exp > 1<<30 {
					return d, errNumericOverflow()
				}
				p++
			} else if c == '_' && p+1 < len(body) && isDigit(body[p+1]) {
				p++
			} else {
				break
			}
		}
		if eneg {
			exp = -exp
		}
		d.dweight += exp
		d.dscale = max(d.dscale-exp, 0)
	}
	if p != len(body) {
		return d, errSyntax(t)
	}
	// PostgreSQL rejects an input display scale beyond NUMERIC_DSCALE_MAX
	// even when a typmod would round it away.
	if d.dscale > numericDscaleMax {
		return d, errNumericOverflow()
	}
	return d, nil
}

// setNonDecimal parses the digits of a 0x/0o/0b integer
// (numeric.c, set_var_from_non_decimal_integer_str).
func (d *decimal) setNonDecimal(s []byte, base int, t Type) error {
	var v big.Int
	var digit big.Int
	bb := big.NewInt(int64(base))
	n := 0
	for p := 0; p < len(s); p++ {
		c := s[p]
		if dv := digitValue(c); dv < uint64(base) {
			v.Mul(&v, bb)
			v.Add(&v, digit.SetUint64(dv))
			n++
			continue
		}
		if c == '_' && p+1 < len(s) && digitValue(s[p+1]) < uint64(base) {
			continue
		}
		return errSyntax(t)
	}
	if n == 0 {
		return errSyntax(t)
	}
	str := v.String()
	d.digits = make([]byte, len(str))
	for i := range str {
		d.digits[i] = str[i] - '0'
	}
	d.dweight = len(str) - 1
	d.dscale = 0
	return nil
}

// truncate drops digits below 10^-scale (numeric.c, trunc_var).
func (d *decimal) truncate(scale int) {
	keep := d.dweight + scale + 1
	switch {
	case keep <= 0:
		d.digits = d.digits[:0]
	case keep < len(d.digits):
		d.digits = d.digits[:keep]
	}
}

// round rounds half away from zero to scale digits after the point and sets
// the display scale to scale (numeric.c, round_var).
func (d *decimal) round(scale int) {
	d.dscale = scale
	keep := d.dweight + scale + 1
	if keep < 0 || keep >= len(d.digits) {
		if keep < 0 {
			d.digits = d.digits[:0]
		}
		return
	}
	up := d.digits[keep] >= 5
	d.digits = d.digits[:keep]
	if !up {
		return
	}
	i := keep - 1
	for ; i >= 0; i-- {
		if d.digits[i] < 9 {
			d.digits[i]++
			break
		}
		d.digits[i] = 0
	}
	if i < 0 {
		d.digits = append([]byte{1}, d.digits...)
		d.dweight++
	}
}

// strip removes leading and trailing zero digits.
func (d *decimal) strip() {
	i := 0
	for i < len(d.digits) && d.digits[i] == 0 {
		i++
	}
	d.digits = d.digits[i:]
	d.dweight -= i
	n := len(d.digits)
	for n > 0 && d.digits[n-1] == 0 {
		n--
	}
	d.digits = d.digits[:n]
}

// applyTypmod enforces numeric(p,s) as numeric.c's apply_typmod and
// apply_typmod_special do.
func (d *decimal) applyTypmod(typmod int32) error {
	precision, scale, ok := numericTypmod(typmod)
	if !ok {
		return nil
	}
	switch d.special {
	case numericNaN:
		return nil
	case numericPInf, numericNInf:
		return newError(CodeNumericValueOutOfRange, "numeric field overflow: a field with precision "+
			strconv.Itoa(precision)+", scale "+strconv.Itoa(scale)+" cannot hold an infinite value")
	}
	d.round(scale)
	if d.dscale < 0 {
		d.dscale = 0
	}
	d.strip()
	if len(d.digits) > 0 && d.dweight+1 > precision-scale {
		return newError(CodeNumericValueOutOfRange, "numeric field overflow: a field with precision "+
			strconv.Itoa(precision)+", scale "+strconv.Itoa(scale)+" must round to an absolute value less than 10^"+
			strconv.Itoa(precision-scale))
	}
	return nil
}

// appendBinary writes d in numeric_send's format after stripping zero digits
// as make_result does, failing when weight or dscale do not fit.
func (d *decimal) appendBinary(dst []byte) ([]byte, error) {
	if d.special != 0 {
		// numeric_send reads the dscale of a special value from its
		// header word (NUMERIC_DSCALE on a short header), which gives 0 for
		// NaN and 32 for the infinities.
		dscale := uint16(0)
		if d.special != numericNaN {
			dscale = 32
		}
		dst = binary.BigEndian.AppendUint16(dst, 0)
		dst = binary.BigEndian.AppendUint16(dst, 0)
		dst = binary.BigEndian.AppendUint16(dst, d.special)
		return binary.BigEndian.AppendUint16(dst, dscale), nil
	}
	d.strip()
	if d.dscale > numericDscaleMax {
		return nil, errNumericOverflow()
	}
	if len(d.digits) == 0 {
		dst = binary.BigEndian.AppendUint16(dst, 0)
		dst = binary.BigEndian.AppendUint16(dst, 0)
		dst = binary.BigEndian.AppendUint16(dst, numericPos)
		return binary.BigEndian.AppendUint16(dst, uint16(d.dscale)), nil
	}
	weight := floorDiv(d.dweight, 4)
	last := floorDiv(d.dweight-(len(d.digits)-1), 4)
	if weight > 32767 || weight < -32768 || weight-last+1 > 0xFFFF {
		return nil, errNumericOverflow()
	}
	n := weight - last + 1
	sign := uint16(numericPos)
	if d.neg {
		sign = numericNeg
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(weight)))
	dst = binary.BigEndian.AppendUint16(dst, sign)
	dst = binary.BigEndian.AppendUint16(dst, uint16(d.dscale))
	// Position of digits[0] inside its base-10000 group.
	i := -(3 - (d.dweight - weight*4))
	for g := 0; g < n; g++ {
		v := 0
		for k := 0; k < 4; k++ {
			v *= 10
			if i >= 0 && i < len(d.digits) {
				v += int(d.digits[i])
			}
			i++
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(v))
	}
	return dst, nil
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// numericWellFormed checks the structure of canonical numeric plaintext.
func numericWellFormed(c []byte) bool {
	if len(c) < 8 {
		return false
	}
	n := int(binary.BigEndian.Uint16(c))
	if len(c) != 8+2*n {
		return false
	}
	switch binary.BigEndian.Uint16(c[4:]) {
	case numericPos, numericNeg, numericNaN, numericPInf, numericNInf:
	default:
		return false
	}
	for i := 0; i < n; i++ {
		if binary.BigEndian.Uint16(c[8+2*i:]) >= nbase {
			return false
		}
	}
	return true
}

// numericWireText writes numeric_out's form (numeric.c, get_str_from_var):
// a '-' for negative values, the integer digits without leading zeros ("0"
// if none), and when dscale > 0 a point and exactly dscale fractional
// digits; or "NaN", "Infinity", "-Infinity".
func numericWireText(dst []byte, t Type, c []byte) ([]byte, error) {
	if !numericWellFormed(c) {
		return nil, errCorrupt(t)
	}
	n := int(binary.BigEndian.Uint16(c))
	weight := int(int16(binary.BigEndian.Uint16(c[2:])))
	sign := binary.BigEndian.Uint16(c[4:])
	dscale := int(binary.BigEndian.Uint16(c[6:]) & numericDscaleMax)
	switch sign {
	case numericNaN:
		return append(dst, "NaN"...), nil
	case numericPInf:
		return append(dst, "Infinity"...), nil
	case numericNInf:
		return append(dst, "-Infinity"...), nil
	case numericNeg:
		dst = append(dst, '-')
	}
	digit := func(i int) int {
		if i < 0 || i >= n {
			return 0
		}
		return int(binary.BigEndian.Uint16(c[8+2*i:]))
	}
	d := 0
	if weight < 0 {
		d = weight + 1
		dst = append(dst, '0')
	} else {
		for ; d <= weight; d++ {
			v := digit(d)
			if d == 0 {
				// Suppress leading decimal zeros of the first group.
				dst = strconv.AppendInt(dst, int64(v), 10)
				continue
			}
			dst = append(dst, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
		}
	}
	if dscale > 0 {
		dst = append(dst, '.')
		for i := 0; i < dscale; d++ {
			v := digit(d)
			for _, b := range [4]byte{byte('0' + v/1000), byte('0' + v/100%10), byte('0' + v/10%10), byte('0' + v%10)} {
				if i < dscale {
					dst = append(dst, b)
				}
				i++
			}
		}
	}
	return dst, nil
}
