package copyfmt

import (
	"encoding/binary"
	"math"
	"strconv"
)

// The binary format (COPY, "Binary Format"): an 11-byte signature, an int32
// flags field and an int32 header-extension length followed by the
// extension; then tuples, each an int16 field count followed by an int32
// length (-1 for NULL) and that many bytes per field; then the int16 trailer
// -1. Integers are big-endian.
const (
	binSignature = "PGCOPY\n\377\r\n\x00"
	binHeaderLen = len(binSignature) + 4 + 4
	binFlagOIDs  = 1 << 16 // tuples carry an OID field; rejected as by PostgreSQL 12+
)

type binState uint8

const (
	binHeader    binState = iota // collecting the fixed header
	binExtension                 // forwarding the header extension
	binCount                     // collecting a tuple's field count, or the trailer
	binLength                    // collecting a field's length word
	binSkip                      // forwarding an unselected field's bytes
	binValue                     // collecting a selected field's bytes
	binTrailer                   // after the trailer
)

// writeBinary runs the binary-format state machine over p.
func (t *Transformer) writeBinary(dst, p []byte) ([]byte, error) {
	for len(p) > 0 {
		switch t.bstate {
		case binHeader:
			n := copy(t.small[t.sn:binHeaderLen], p)
			p = p[n:]
			sig := min(t.sn+n, len(binSignature))
			t.sn += n
			if string(t.small[:sig]) != binSignature[:sig] {
				return dst, &Error{Field: -1, Reason: "binary COPY signature not recognized"}
			}
			if t.sn < binHeaderLen {
				continue
			}
			t.sn = 0
			flags := binary.BigEndian.Uint32(t.small[11:])
			ext := int32(binary.BigEndian.Uint32(t.small[15:]))
			switch {
			case flags&binFlagOIDs != 0:
				return dst, &Error{Field: -1, Reason: "binary COPY header has the OIDs flag, which is not supported"}
			case flags>>17 != 0:
				return dst, &Error{Field: -1, Reason: "binary COPY header has unrecognized critical flags"}
			case ext < 0:
				return dst, &Error{Field: -1, Reason: "binary COPY header extension length is negative"}
			}
			dst = append(dst, t.small[:binHeaderLen]...)
			t.remain, t.bstate = int64(ext), binExtension
			if ext == 0 {
				t.bstate = binCount
			}

		case binExtension, binSkip:
			n := int(min(t.remain, int64(len(p))))
			dst = append(dst, p[:n]...)
			p = p[n:]
			if t.remain -= int64(n); t.remain == 0 {
				if t.bstate == binExtension {
					t.bstate = binCount
				} else {
					t.nextField()
				}
			}

		case binCount:
			var ok bool
			if p, ok = t.collect(p, 2); !ok {
				continue
			}
			count := int16(binary.BigEndian.Uint16(t.small[:2]))
			if count == -1 {
				dst = append(dst, t.small[:2]...)
				t.bstate = binTrailer
				continue
			}
			t.row++
			if int(count) != len(t.fields) {
				return dst, t.fieldCountErr(int(count))
			}
			dst = append(dst, t.small[:2]...)
			t.field = -1
			t.nextField()

		case binLength:
			var ok bool
			if p, ok = t.collect(p, 4); !ok {
				continue
			}
			n := int32(binary.BigEndian.Uint32(t.small[:4]))
			switch {
			case n < -1:
				return dst, t.rowErr(t.field, "invalid binary field length")
			case !t.fields[t.field]:
				dst = append(dst, t.small[:4]...)
				if n <= 0 {
					t.nextField()
					continue
				}
				t.remain, t.bstate = int64(n), binSkip
			case n == -1:
				var err error
				if dst, err = t.binaryValue(dst, nil); err != nil {
					return dst, err
				}
			case int(n) > t.maxRow:
				return dst, t.rowErr(t.field, "binary field is longer than "+strconv.Itoa(t.maxRow)+" bytes")
			default:
				t.val = t.val[:0]
				t.remain, t.bstate = int64(n), binValue
				if n == 0 {
					var err error
					if dst, err = t.binaryValue(dst, t.val); err != nil {
						return dst, err
					}
				}
			}

		case binValue:
			n := int(min(t.remain, int64(len(p))))
			t.val = append(t.val, p[:n]...)
			p = p[n:]
			if t.remain -= int64(n); t.remain == 0 {
				var err error
				if dst, err = t.binaryValue(dst, t.val); err != nil {
					return dst, err
				}
				t.releaseVal()
			}

		case binTrailer:
			// PostgreSQL rejects this too ("received copy data after EOF marker").
			return dst, &Error{Row: t.row, Field: -1, Reason: "data after the binary COPY trailer"}
		}
	}
	return dst, nil
}

// collect gathers n bytes into t.small across payloads; ok reports they are
// all there, and then t.sn is reset.
func (t *Transformer) collect(p []byte, n int) (rest []byte, ok bool) {
	k := copy(t.small[t.sn:n], p)
	t.sn += k
	if t.sn < n {
		return p[k:], false
	}
	t.sn = 0
	return p[k:], true
}

// binaryValue calls the FieldFunc for the current field and writes its
// result as a length word and bytes.
func (t *Transformer) binaryValue(dst, v []byte) ([]byte, error) {
	out, err := t.call(t.field, v)
	if err != nil {
		return dst, err
	}
	switch {
	case out == nil:
		dst = binary.BigEndian.AppendUint32(dst, math.MaxUint32) // -1
	case len(out) > math.MaxInt32:
		return dst, t.rowErr(t.field, "replacement value does not fit a binary field")
	default:
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(out)))
		dst = append(dst, out...)
	}
	t.nextField()
	return dst, nil
}

// nextField moves to the next field of the tuple, or to the next tuple.
func (t *Transformer) nextField() {
	t.field++
	if t.field < len(t.fields) {
		t.bstate = binLength
		return
	}
	t.bstate = binCount
}

// closeBinary checks that the stream ended between tuples.
func (t *Transformer) closeBinary() error {
	switch {
	case t.bstate == binTrailer, t.bstate == binCount && t.sn == 0:
		return nil
	case t.bstate == binHeader, t.bstate == binExtension:
		return &Error{Field: -1, Reason: "binary COPY data ends inside the file header"}
	}
	if t.bstate == binCount {
		return &Error{Row: t.row + 1, Field: -1, Reason: "binary COPY data ends inside a row"}
	}
	return t.rowErr(t.field, "binary COPY data ends inside a row")
}
