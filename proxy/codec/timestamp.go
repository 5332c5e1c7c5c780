package codec

import (
	"encoding/binary"
	"math"
)

// Date and timestamp representation constants
// (src/include/datatype/timestamp.h).
const (
	pgEpochJDate   = 2451545 // date2j(2000, 1, 1)
	unixEpochJDate = 2440588 // date2j(1970, 1, 1)
	secsPerDay     = 86400
	usecsPerSec    = 1000000
	usecsPerMinute = 60 * usecsPerSec
	usecsPerHour   = 3600 * usecsPerSec
	usecsPerDay    = secsPerDay * usecsPerSec

	dateEndJulian = 2147483494               // date2j(5874898, 1, 1)
	minTimestamp  = -211813488000000000      // 4714-11-24 00:00:00 BC
	endTimestamp  = 9223371331200000000      // 294277-01-01 00:00:00, exclusive
	epochOffset   = -946684800 * usecsPerSec // 1970-01-01 00:00:00 as a timestamp
	dateNoBegin   = math.MinInt32            // DATEVAL_NOBEGIN, -infinity
	dateNoEnd     = math.MaxInt32            // DATEVAL_NOEND, infinity
	tsNoBegin     = math.MinInt64            // DT_NOBEGIN
	tsNoEnd       = math.MaxInt64            // DT_NOEND
	unixToPGSecs  = (pgEpochJDate - unixEpochJDate) * secsPerDay
)

// date2j converts a proleptic Gregorian date to a Julian day number
// (datetime.c, date2j).
func date2j(year, month, day int) int {
	if month > 2 {
		month++
		year += 4800
	} else {
		month += 13
		year += 4799
	}
	century := year / 100
	julian := year*365 - 32167
	julian += year/4 - century + century/4
	julian += 7834*month/256 + day
	return julian
}

// j2date converts a non-negative Julian day number to a date (datetime.c,
// j2date, which computes in unsigned int).
func j2date(jd int, tm *pgTm) {
	julian := uint32(jd)
	julian += 32044
	quad := julian / 146097
	extra := (julian-quad*146097)*4 + 3
	julian += 60 + quad*3 + extra/146097
	quad = julian / 1461
	julian -= quad * 1461
	y := int(julian * 4 / 1461)
	if y != 0 {
		julian = (julian+305)%365 + 123
	} else {
		julian = (julian+306)%366 + 123
	}
	y += int(quad * 4)
	tm.year = y - 4800
	quad = julian * 2141 / 65536
	tm.mday = int(julian - 7834*quad/256)
	tm.mon = int((quad+10)%12 + 1)
}

// civil converts a Julian day number, possibly negative, to a proleptic
// Gregorian date (year 0 is 1 BC), as pg_localtime's calendar arithmetic does
// for local times just outside the Julian range.
func civil(jd int64) (year, month, day int) {
	z := jd - unixEpochJDate + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

// validJulian is IS_VALID_JULIAN (timestamp.h).
func validJulian(y, m, d int) bool {
	return (y > -4713 || (y == -4713 && m >= 11)) && (y < 5874898 || (y == 5874898 && m < 6))
}

// validDate is IS_VALID_DATE.
func validDate(d int64) bool { return d >= -pgEpochJDate && d < dateEndJulian-pgEpochJDate }

// validTimestamp is IS_VALID_TIMESTAMP.
func validTimestamp(t int64) bool { return t >= minTimestamp && t < endTimestamp }

// tm2timestamp is tm2timestamp (timestamp.c); tz, when not nil, is the
// offset in seconds west of UTC.
func tm2timestamp(tm *pgTm, tz *int) (int64, bool) {
	if !validJulian(tm.year, tm.mon, tm.mday) {
		return 0, false
	}
	date := int64(date2j(tm.year, tm.mon, tm.mday) - pgEpochJDate)
	tim := ((int64(tm.hour)*60+int64(tm.min))*60+int64(tm.sec))*usecsPerSec + tm.fsec
	result := date*usecsPerDay + tim
	if (result-tim)/usecsPerDay != date {
		return 0, false
	}
	// 1999-12-31 24:00:00 is allowed; other wrap-arounds are not.
	if (result < 0 && date > 0) || (result > 0 && date < -1) {
		return 0, false
	}
	if tz != nil {
		result += int64(*tz) * usecsPerSec
	}
	if !validTimestamp(result) {
		return 0, false
	}
	return result, true
}

func errDateRange() *Error { return newError(CodeDatetimeFieldOverflow, "date out of range") }

func errTimestampRange() *Error { return newError(CodeDatetimeFieldOverflow, "timestamp out of range") }

// datetimeCanonicalText reads date, timestamp and timestamptz text input as
// date_in, timestamp_in and timestamptz_in do (see datetime.go), using the
// session's DateStyle field order for ambiguous dates and its TimeZone for
// timestamptz input without an explicit zone. An explicit zone in date or
// timestamp input is checked and ignored, as PostgreSQL does. The canonical
// forms are date_send's int32 days since 2000-01-01 and
// timestamp_send/timestamptz_send's int64 microseconds since 2000-01-01
// 00:00:00 (UTC for timestamptz), with INT32/INT64 MIN and MAX for -infinity
// and infinity. timestamp(p) rounds to p fractional digits, half away from
// zero (timestamp.c, AdjustTimestampForTypmod).
func datetimeCanonicalText(dst []byte, t Type, src []byte, s *Session) ([]byte, error) {
	fields, e := parseDateTime(src)
	if e != dtOK {
		return nil, e.toError(t)
	}
	r, e := decodeDateTime(fields, s.dateOrder())
	if e != dtOK {
		return nil, e.toError(t)
	}
	if t.kind == kindDate {
		var d int64
		switch r.dtype {
		case vLate:
			d = dateNoEnd
		case vEarly:
			d = dateNoBegin
		case vEpoch:
			d = unixEpochJDate - pgEpochJDate
		default:
			if !validJulian(r.tm.year, r.tm.mon, r.tm.mday) {
				return nil, errDateRange()
			}
			d = int64(date2j(r.tm.year, r.tm.mon, r.tm.mday) - pgEpochJDate)
			if !validDate(d) {
				return nil, errDateRange()
			}
		}
		return binary.BigEndian.AppendUint32(dst, uint32(int32(d))), nil
	}
	var ts int64
	switch r.dtype {
	case vLate:
		ts = tsNoEnd
	case vEarly:
		ts = tsNoBegin
	case vEpoch:
		ts = epochOffset
	default:
		var tzp *int
		if t.kind == kindTimestamptz {
			tz := r.tz
			switch {
			case r.namedTz != nil:
				tz = determineTimeZoneOffset(&r.tm, *r.namedTz)
			case !r.haveTZ:
				z, err := s.timeZone()
				if err != nil {
					return nil, err
				}
				tz = determineTimeZoneOffset(&r.tm, z)
			}
			tzp = &tz
		}
		var ok bool
		if ts, ok = tm2timestamp(&r.tm, tzp); !ok {
			return nil, errTimestampRange()
		}
	}
	ts, ok := adjustTimestampForTypmod(ts, t.Typmod)
	if !ok {
		return nil, errTimestampRange()
	}
	return binary.BigEndian.AppendUint64(dst, uint64(ts)), nil
}

// datetimeCanonicalBinary checks date_recv/timestamp_recv/timestamptz_recv
// input: the value must be infinite or within the type's range, and
// timestamp(p) rounds.
func datetimeCanonicalBinary(dst []byte, t Type, src []byte) ([]byte, error) {
	if len(src) != int(t.Len) {
		return nil, errBinary(t)
	}
	if t.kind == kindDate {
		d := int64(int32(binary.BigEndian.Uint32(src)))
		if d != dateNoBegin && d != dateNoEnd && !validDate(d) {
			return nil, errDateRange()
		}
		return append(dst, src...), nil
	}
	ts := int64(binary.BigEndian.Uint64(src))
	if ts != tsNoBegin && ts != tsNoEnd && !validTimestamp(ts) {
		return nil, errTimestampRange()
	}
	ts, ok := adjustTimestampForTypmod(ts, t.Typmod)
	if !ok {
		return nil, errTimestampRange()
	}
	return binary.BigEndian.AppendUint64(dst, uint64(ts)), nil
}

var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000, 1000000}

// adjustTimestampForTypmod is AdjustTimestampForTypmod: round to typmod
// fractional digits, half away from zero. Like PostgreSQL 15 it does not
// range-check the rounded value (294276-12-31 23:59:59.999999 rounds to
// 294277-01-01 00:00:00).
func adjustTimestampForTypmod(ts int64, typmod int32) (int64, bool) {
	if ts == tsNoBegin || ts == tsNoEnd || typmod < 0 || typmod >= 6 {
		return ts, true
	}
	scale := pow10[6-typmod]
	offset := scale / 2
	if ts >= 0 {
		ts = (ts + offset) / scale * scale
	} else {
		ts = -((-ts + offset) / scale * scale)
	}
	return ts, true
}

// dateWireText writes date_out's ISO form (datetime.c, EncodeDateOnly):
// YYYY-MM-DD with the year zero-padded to at least four digits, " BC" for
// years before 1 AD, or "infinity"/"-infinity".
func dateWireText(dst []byte, t Type, c []byte, s *Session) ([]byte, error) {
	if len(c) != 4 {
		return nil, errCorrupt(t)
	}
	if err := s.dateStyleErr(); err != nil {
		return nil, err
	}
	d := int64(int32(binary.BigEndian.Uint32(c)))
	switch d {
	case dateNoBegin:
		return append(dst, "-infinity"...), nil
	case dateNoEnd:
		return append(dst, "infinity"...), nil
	}
	y, m, day := civil(d + pgEpochJDate)
	dst = appendISODate(dst, y, m, day)
	if y <= 0 {
		dst = append(dst, " BC"...)
	}
	return dst, nil
}

// timestampWireText writes timestamp_out/timestamptz_out's ISO form
// (datetime.c, EncodeDateTime and EncodeTimezone): "YYYY-MM-DD HH:MM:SS",
// fractional seconds without trailing zeros, for timestamptz the session
// time zone's UTC offset at that instant as +HH, +HH:MM or +HH:MM:SS, then
// " BC" for years before 1 AD; or "infinity"/"-infinity".
func timestampWireText(dst []byte, t Type, c []byte, s *Session) ([]byte, error) {
	if len(c) != 8 {
		return nil, errCorrupt(t)
	}
	if err := s.dateStyleErr(); err != nil {
		return nil, err
	}
	ts := int64(binary.BigEndian.Uint64(c))
	switch ts {
	case tsNoBegin:
		return append(dst, "-infinity"...), nil
	case tsNoEnd:
		return append(dst, "infinity"...), nil
	}
	fsec := ts % usecsPerSec
	if fsec < 0 {
		fsec += usecsPerSec
	}
	secs := (ts - fsec) / usecsPerSec
	off := 0
	if t.kind == kindTimestamptz {
		z, err := s.timeZone()
		if err != nil {
			return nil, err
		}
		off = z.offset(secs + unixToPGSecs)
	}
	local := secs + int64(off)
	days := local / secsPerDay
	if local%secsPerDay < 0 {
		days--
	}
	sod := int(local - days*secsPerDay)
	y, m, d := civil(days + pgEpochJDate)
	dst = appendISODate(dst, y, m, d)
	dst = append(dst, ' ')
	dst = appendZeroPad(dst, sod/3600, 2)
	dst = append(dst, ':')
	dst = appendZeroPad(dst, sod/60%60, 2)
	dst = append(dst, ':')
	dst = appendZeroPad(dst, sod%60, 2)
	if fsec != 0 {
		// AppendSeconds: up to six digits, trailing zeros dropped.
		dst = append(dst, '.')
		n := 6
		for fsec%10 == 0 {
			fsec /= 10
			n--
		}
		dst = appendZeroPad(dst, int(fsec), n)
	}
	if t.kind == kindTimestamptz {
		dst = appendOffset(dst, off)
	}
	if y <= 0 {
		dst = append(dst, " BC"...)
	}
	return dst, nil
}

func appendISODate(dst []byte, y, m, d int) []byte {
	if y <= 0 {
		y = -(y - 1)
	}
	dst = appendZeroPad(dst, y, 4)
	dst = append(dst, '-')
	dst = appendZeroPad(dst, m, 2)
	dst = append(dst, '-')
	return appendZeroPad(dst, d, 2)
}

// appendOffset is EncodeTimezone for an offset east of UTC in seconds.
func appendOffset(dst []byte, east int) []byte {
	if east >= 0 {
		dst = append(dst, '+')
	} else {
		dst = append(dst, '-')
		east = -east
	}
	h, m, sec := east/3600, east/60%60, east%60
	dst = appendZeroPad(dst, h, 2)
	if m != 0 || sec != 0 {
		dst = append(dst, ':')
		dst = appendZeroPad(dst, m, 2)
	}
	if sec != 0 {
		dst = append(dst, ':')
		dst = appendZeroPad(dst, sec, 2)
	}
	return dst
}

// appendZeroPad is pg_ultostr_zeropad: v (>= 0) in decimal, at least width
// digits.
func appendZeroPad(dst []byte, v, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		width--
		if v == 0 && width <= 0 {
			break
		}
	}
	return append(dst, buf[i:]...)
}
