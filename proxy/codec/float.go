package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	mbits "math/bits"
	"strconv"
)

// floatCanonicalText reads float4/float8 text input as float4in/float8in do
// (src/backend/utils/adt/float.c) on glibc: blanks around; a decimal or
// hexadecimal (0x...[p...]) number as strtod/strtof accept it; or, ignoring
// case, "NaN", "Infinity", "inf" with an optional sign ("nan(n)" sets the
// NaN payload and "-nan" its sign, as glibc does). A finite value that
// overflows, or that underflows to zero, is out of range. The canonical form
// is the IEEE 754 big-endian bits (float4send/float8send). PostgreSQL stores
// NaN payloads and signs as given and sends them back unchanged, so this
// package keeps them too.
func floatCanonicalText(dst []byte, t Type, src []byte) ([]byte, error) {
	bits := int(t.Len) * 8
	u, err := parseFloat(src, bits, t)
	if err != nil {
		return nil, err
	}
	if bits == 32 {
		return binary.BigEndian.AppendUint32(dst, uint32(u)), nil
	}
	return binary.BigEndian.AppendUint64(dst, u), nil
}

func floatCanonicalBinary(dst []byte, t Type, src []byte) ([]byte, error) {
	if len(src) != int(t.Len) {
		return nil, errBinary(t)
	}
	return append(dst, src...), nil
}

// parseFloat returns the IEEE bits of the value (in the low 32 bits for
// float4).
func parseFloat(src []byte, bits int, t Type) (uint64, error) {
	s := trimSpace(src)
	if len(s) == 0 {
		return 0, errSyntax(t)
	}
	body := s
	neg := false
	if body[0] == '+' || body[0] == '-' {
		neg = body[0] == '-'
		body = body[1:]
	}
	var signBit uint64 = 1 << 63
	if bits == 32 {
		signBit = 1 << 31
	}
	// Special values, as glibc's strtod and float8in's fallback accept them.
	switch {
	case hasPrefixFold(body, "infinity") && len(body) == len("infinity"),
		hasPrefixFold(body, "inf") && len(body) == len("inf"):
		u := uint64(0x7ff0000000000000)
		if bits == 32 {
			u = 0x7f800000
		}
		if neg {
			u |= signBit
		}
		return u, nil
	case hasPrefixFold(body, "nan"):
		payload, ok := nanPayload(body[3:])
		if !ok {
			return 0, errSyntax(t)
		}
		// glibc's SET_NAN_PAYLOAD: the payload fills the mantissa below
		// the quiet bit.
		u := uint64(0x7ff8000000000000) | payload&(1<<51-1)
		if bits == 32 {
			u = 0x7fc00000 | payload&(1<<22-1)
		}
		if neg {
			u |= signBit
		}
		return u, nil
	}
	num, nonzero, ok := scanStrtod(body)
	if !ok {
		return 0, errSyntax(t)
	}
	f, err := strconv.ParseFloat(num, bits)
	if err != nil {
		if ne, isNum := err.(*strconv.NumError); isNum && ne.Err == strconv.ErrRange {
			return 0, newError(CodeNumericValueOutOfRange, "value is out of range for type "+t.sqlName())
		}
		return 0, errSyntax(t)
	}
	if f == 0 && nonzero {
		// strtod reports ERANGE for an underflow to zero, which float8in
		// turns into an out-of-range error.
		return 0, newError(CodeNumericValueOutOfRange, "value is out of range for type "+t.sqlName())
	}
	if neg {
		f = -f
	}
	if bits == 32 {
		return uint64(math.Float32bits(float32(f))), nil
	}
	return math.Float64bits(f), nil
}

// nanPayload reads what follows "nan": nothing, or glibc's
// "(n-char-sequence)", whose value (strtoull base 0) becomes the payload
// when the whole sequence is a number.
func nanPayload(s []byte) (uint64, bool) {
	if len(s) == 0 {
		return 0, true
	}
	if s[0] != '(' || s[len(s)-1] != ')' {
		return 0, false
	}
	seq := s[1 : len(s)-1]
	for _, c := range seq {
		if !(isDigit(c) || isAlpha(c) || c == '_') {
			return 0, false
		}
	}
	base := 10
	digits := seq
	switch {
	case len(seq) > 2 && seq[0] == '0' && lower(seq[1]) == 'x':
		base, digits = 16, seq[2:]
	case len(seq) > 1 && seq[0] == '0':
		base, digits = 8, seq[1:]
	}
	v, err := strconv.ParseUint(string(digits), base, 64)
	switch {
	case err == nil:
		return v, true
	case len(seq) == 0:
		return 0, true
	case errors.Is(err, strconv.ErrRange):
		return math.MaxUint64, true
	}
	return 0, true // not a number: plain NaN
}

// scanStrtod checks that s (without sign) is entirely one unsigned number in
// strtod's syntax and returns it in strconv.ParseFloat's syntax, plus whether
// any digit of the mantissa is non-zero.
func scanStrtod(s []byte) (num string, nonzero, ok bool) {
	hex := len(s) > 2 && s[0] == '0' && lower(s[1]) == 'x'
	p := 0
	if hex {
		p = 2
	}
	digits := 0
	seenDot := false
	for ; p < len(s); p++ {
		c := s[p]
		switch {
		case c == '.' && !seenDot:
			seenDot = true
		case hex && digitValue(c) < 16, !hex && isDigit(c):
			digits++
			if c != '0' {
				nonzero = true
			}
		default:
			goto mantissaDone
		}
	}
mantissaDone:
	if digits == 0 {
		return "", false, false
	}
	rest := s[p:]
	expChar := byte('e')
	if hex {
		expChar = 'p'
	}
	hasExp := false
	if len(rest) > 0 && lower(rest[0]) == expChar {
		q := 1
		if q < len(rest) && (rest[q] == '+' || rest[q] == '-') {
			q++
		}
		start := q
		for q < len(rest) && isDigit(rest[q]) {
			q++
		}
		if q > start {
			hasExp = true
			rest = rest[q:]
		}
	}
	if len(rest) != 0 {
		return "", false, false
	}
	num = string(s)
	if hex && !hasExp {
		num += "p0"
	}
	return num, nonzero, true
}

// floatWireText writes float4out/float8out's form
// (src/backend/utils/adt/float.c). With extra_float_digits > 0 that is the
// shortest decimal that reads back exactly (src/common/d2s.c and f2s.c):
// fixed notation when the decimal exponent is in [-4, 15) for float8 or
// [-4, 6) for float4, otherwise d.ddde±XX. Otherwise it is printf's
// "%.*g" with DBL_DIG (15) or FLT_DIG (6) plus extra_float_digits
// significant digits. NaN and infinities are "NaN", "Infinity", "-Infinity".
func floatWireText(dst []byte, t Type, c []byte, s *Session) ([]byte, error) {
	if len(c) != int(t.Len) {
		return nil, errCorrupt(t)
	}
	var f float64
	bits, fixedLimit, dig := 64, 15, 15
	if t.Len == 4 {
		f = float64(math.Float32frombits(binary.BigEndian.Uint32(c)))
		bits, fixedLimit, dig = 32, 6, 6
	} else {
		f = math.Float64frombits(binary.BigEndian.Uint64(c))
	}
	switch {
	case f != f:
		return append(dst, "NaN"...), nil
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...), nil
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...), nil
	}
	efd := s.extraFloatDigits()
	var buf [40]byte
	if efd > 0 {
		e := shortestE(buf[:0], f, bits)
		return appendShortest(dst, e, fixedLimit), nil
	}
	prec := max(dig+efd, 1)
	e := strconv.AppendFloat(buf[:0], f, 'e', prec-1, 64)
	return appendPrintfG(dst, e, prec), nil
}

// shortestE returns the shortest decimal, in strconv's 'e' format, that
// lies strictly between the rounding boundaries of f, as PostgreSQL's Ryu
// (src/common/d2s.c, f2s.c, built without STRICTLY_SHORTEST so
// acceptBounds is false) computes it. strconv also accepts a decimal lying
// exactly on a boundary when the mantissa is even; that can only happen for
// large or subnormal values, and then longer candidates are tried.
func shortestE(buf []byte, f float64, bits int) []byte {
	e := strconv.AppendFloat(buf, f, 'e', -1, bits)
	if !mayBeOnBoundary(f, bits) || !onBoundary(e, f, bits) {
		return e
	}
	var digits [32]byte
	_, d, _ := parseE(e, &digits)
	for prec := len(d); prec < 17; prec++ {
		e = strconv.AppendFloat(buf[:0], f, 'e', prec, bits)
		e = trimEZeros(e)
		if back, err := strconv.ParseFloat(string(e), bits); err == nil && back == f && !onBoundary(e, f, bits) {
			break
		}
	}
	return e
}

// mayBeOnBoundary reports whether a short decimal can equal a midpoint
// between f and a neighbour: only when the mantissa is even (strconv
// excludes the boundaries otherwise) and the midpoints are integers, i.e. f
// is at least 2^53 (2^24 for float4). Below that a midpoint has more
// significant digits than any shortest output.
func mayBeOnBoundary(f float64, bits int) bool {
	a := math.Abs(f)
	if bits == 32 {
		return math.Float32bits(float32(f))&1 == 0 && a >= 1<<24
	}
	return math.Float64bits(f)&1 == 0 && a >= 1<<53
}

// onBoundary reports whether decimal e ('e' format) equals the midpoint
// between f (at least 2^53, or 2^24 for float4) and one of its neighbours,
// using exact integer arithmetic: the decimal d*10^k equals the midpoint
// n*2^x (n odd) exactly when d*10^k's odd part d'*5^k is n and its power of
// two is x.
func onBoundary(e []byte, f float64, bits int) bool {
	var buf [32]byte
	_, digits, exp := parseE(e, &buf)
	k := exp - (len(digits) - 1)
	if k < 0 {
		return false // not an integer, unlike every midpoint here
	}
	var d uint64
	for _, c := range digits {
		d = d*10 + uint64(c-'0')
	}
	tz := mbits.TrailingZeros64(d)
	odd := d >> tz
	for i := 0; i < k; i++ {
		hi, lo := mbits.Mul64(odd, 5)
		if hi != 0 {
			return false
		}
		odd = lo
	}
	pow2 := k + tz
	// f = m * 2^x with m the full mantissa.
	var m uint64
	var x int
	if bits == 32 {
		u := math.Float32bits(float32(math.Abs(f)))
		m, x = uint64(u&(1<<23-1)|1<<23), int(u>>23)-150
	} else {
		u := math.Float64bits(math.Abs(f))
		m, x = u&(1<<52-1)|1<<52, int(u>>52)-1075
	}
	mantBits := 52
	if bits == 32 {
		mantBits = 23
	}
	if odd == 2*m+1 && pow2 == x-1 {
		return true
	}
	if m == 1<<mantBits {
		// The gap below a power of two is half as wide.
		return odd == 4*m-1 && pow2 == x-2
	}
	return odd == 2*m-1 && pow2 == x-1
}

// trimEZeros removes trailing zeros from the mantissa of an 'e' format
// number: "1.2300e+20" becomes "1.23e+20", "1.000e+20" becomes "1e+20".
func trimEZeros(e []byte) []byte {
	x := bytes.IndexByte(e, 'e')
	m := x
	for m > 0 && e[m-1] == '0' {
		m--
	}
	if m > 0 && e[m-1] == '.' {
		m--
	}
	return append(e[:m], e[x:]...)
}

// parseE splits strconv's 'e' format "-d.ddde±XX" into its sign, its
// significant digits (copied into buf, without the point) and the decimal
// exponent of the first digit.
func parseE(e []byte, buf *[32]byte) (neg bool, digits []byte, exp int) {
	if e[0] == '-' {
		neg = true
		e = e[1:]
	}
	n, i := 0, 0
	for ; i < len(e) && e[i] != 'e'; i++ {
		if e[i] != '.' && n < len(buf) {
			buf[n] = e[i]
			n++
		}
	}
	xs := e[i+1:]
	for _, c := range xs[1:] {
		exp = exp*10 + int(c-'0')
	}
	if xs[0] == '-' {
		exp = -exp
	}
	return neg, buf[:n], exp
}

// appendShortest formats Ryu-style shortest output given strconv's shortest
// 'e' form, which has the same digits.
func appendShortest(dst, e []byte, fixedLimit int) []byte {
	var buf [32]byte
	neg, digits, exp := parseE(e, &buf)
	if exp < -4 || exp >= fixedLimit {
		// strconv's %e already matches: no trailing zeros, and the exponent
		// has a sign and at least two digits.
		return append(dst, e...)
	}
	if neg {
		dst = append(dst, '-')
	}
	return appendFixed(dst, digits, exp)
}

// appendFixed writes digits (d1 d2 ...) scaled so the first has decimal
// exponent exp, in plain notation without trailing fractional zeros.
func appendFixed(dst, digits []byte, exp int) []byte {
	if exp < 0 {
		dst = append(dst, '0', '.')
		for i := -1; i > exp; i-- {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	if len(digits) <= exp+1 {
		dst = append(dst, digits...)
		for i := len(digits); i <= exp; i++ {
			dst = append(dst, '0')
		}
		return dst
	}
	dst = append(dst, digits[:exp+1]...)
	dst = append(dst, '.')
	return append(dst, digits[exp+1:]...)
}

// appendPrintfG formats like C's "%.*g" with precision prec, given the value
// already rounded to prec significant digits in 'e' form: exponent notation
// when the exponent is below -4 or at least prec, trailing zeros removed.
func appendPrintfG(dst, e []byte, prec int) []byte {
	var buf [32]byte
	neg, digits, exp := parseE(e, &buf)
	n := len(digits)
	for n > 1 && digits[n-1] == '0' {
		n--
	}
	digits = digits[:n]
	if neg {
		dst = append(dst, '-')
	}
	if exp < -4 || exp >= prec {
		dst = append(dst, digits[0])
		if len(digits) > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if exp < 0 {
			dst = append(dst, '-')
			exp = -exp
		} else {
			dst = append(dst, '+')
		}
		if exp < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(exp), 10)
	}
	if len(digits) == 1 && digits[0] == '0' {
		return append(dst, '0')
	}
	return appendFixed(dst, digits, exp)
}
