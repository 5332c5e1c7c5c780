package codec

import (
	"encoding/binary"
	"math"
	"strconv"
)

// intCanonicalText reads int2/int4/int8 text input as pg_strtoint16/32/64 do
// (src/backend/utils/adt/numutils.c): optional blanks, an optional sign,
// decimal digits or (PostgreSQL 16 and later) a 0x/0o/0b prefix with hex,
// octal or binary digits, single underscores between digits, then optional
// blanks. The canonical form is the big-endian two's complement integer of
// the type's width (int2send/int4send/int8send).
func intCanonicalText(dst []byte, t Type, src []byte) ([]byte, error) {
	bits := int(t.Len) * 8
	v, err := parseInt(src, bits, t)
	if err != nil {
		return nil, err
	}
	switch t.Len {
	case 2:
		return binary.BigEndian.AppendUint16(dst, uint16(v)), nil
	case 4:
		return binary.BigEndian.AppendUint32(dst, uint32(v)), nil
	default:
		return binary.BigEndian.AppendUint64(dst, uint64(v)), nil
	}
}

func parseInt(src []byte, bits int, t Type) (int64, error) {
	p := 0
	for p < len(src) && isSpace(src[p]) {
		p++
	}
	neg := false
	if p < len(src) && (src[p] == '-' || src[p] == '+') {
		neg = src[p] == '-'
		p++
	}
	base := uint64(10)
	if p+1 < len(src) && src[p] == '0' {
		switch lower(src[p+1]) {
		case 'x':
			base = 16
		case 'o':
			base = 8
		case 'b':
			base = 2
		}
		if base != 10 {
			p += 2
		}
	}
	// Magnitude limit: 2^(bits-1) for negative values, 2^(bits-1)-1 otherwise.
	limit := uint64(1) << (bits - 1)
	if !neg {
		limit--
	}
	var mag uint64
	digits := 0
	overflow := false
	for p < len(src) {
		c := src[p]
		d := digitValue(c)
		if d < base {
			if mag > (limit-d)/base {
				overflow = true
			} else {
				mag = mag*base + d
			}
			digits++
			p++
			continue
		}
		// An underscore must be followed by a digit, and for decimal input
		// also preceded by one.
		if c == '_' && p+1 < len(src) && digitValue(src[p+1]) < base && (digits > 0 || base != 10) {
			p++
			continue
		}
		break
	}
	if digits == 0 {
		return 0, errSyntax(t)
	}
	for p < len(src) && isSpace(src[p]) {
		p++
	}
	if p != len(src) {
		return 0, errSyntax(t)
	}
	if overflow {
		return 0, errRange(t)
	}
	if neg {
		return -int64(mag-1) - 1, nil
	}
	return int64(mag), nil
}

func digitValue(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return uint64(c|0x20-'a') + 10
	}
	return math.MaxUint64
}

// intWireText writes the decimal form int2out/int4out/int8out produce.
func intWireText(dst []byte, t Type, c []byte) ([]byte, error) {
	if len(c) != int(t.Len) {
		return nil, errCorrupt(t)
	}
	var v int64
	switch t.Len {
	case 2:
		v = int64(int16(binary.BigEndian.Uint16(c)))
	case 4:
		v = int64(int32(binary.BigEndian.Uint32(c)))
	default:
		v = int64(binary.BigEndian.Uint64(c))
	}
	return strconv.AppendInt(dst, v, 10), nil
}
