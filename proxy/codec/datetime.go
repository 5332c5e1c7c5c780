package codec

import (
	"math"
	"strconv"
	"strings"
)

// This file ports the date/time input parser of PostgreSQL 15
// (src/backend/utils/adt/datetime.c: ParseDateTime, DecodeDateTime,
// DecodeDate, DecodeNumber, DecodeNumberField, DecodeTime, DecodeTimezone,
// ValidateDate, DetermineTimeZoneOffset) for the inputs date_in,
// timestamp_in and timestamptz_in accept, including PostgreSQL 15's
// leniencies (epoch and infinity may be accompanied by other fields; a
// dangling unit label is ignored). Time zone abbreviations are those of the
// Default timezone_abbreviations set (abbrevs.go). Deliberate gaps, each an
// Unsupported error rather than a different value:
//   - "now", "today", "tomorrow", "yesterday", which depend on the
//     transaction's start time that only the server knows;
//   - abbreviations whose offset depends on the date (such as SGT, which
//     PostgreSQL resolves through Asia/Singapore's history).

// Field types assigned by ParseDateTime (src/include/utils/datetime.h).
const (
	dtkNumber = iota
	dtkString
	dtkDate
	dtkTime
	dtkTZ
	dtkSpecial
)

// Token types (datetime.h) used in field masks.
const (
	tRESERV      = 0
	tMONTH       = 1
	tYEAR        = 2
	tDAY         = 3
	tTZ          = 5
	tDTZ         = 6
	tIGNORE      = 8
	tAMPM        = 9
	tHOUR        = 10
	tMINUTE      = 11
	tSECOND      = 12
	tMILLISECOND = 13
	tMICROSECOND = 14
	tDOY         = 15
	tDOW         = 16
	tUNITS       = 17
	tADBC        = 18
	tISOTIME     = 23
	tDTZMOD      = 28
	tUNKNOWN     = 31

	maskDate    = 1<<tYEAR | 1<<tMONTH | 1<<tDAY
	maskAllSecs = 1<<tSECOND | 1<<tMILLISECOND | 1<<tMICROSECOND
	maskTime    = 1<<tHOUR | 1<<tMINUTE | maskAllSecs
)

// Token values for RESERV, UNITS, AMPM and ADBC tokens.
const (
	vDate = iota // a normal date, DTK_DATE
	vEpoch
	vLate
	vEarly
	vNow
	vZulu
	vJulian
	vTime
	vOtherUnit
	vUnitYear
	vUnitMonth
	vUnitDay
	vUnitHour
	vUnitMinute
	vUnitSecond
	vAM
	vPM
	vHR24
	vAD
	vBC
)

type dtToken struct{ typ, val int }

// dateTokens is datetktbl (datetime.c, as of PostgreSQL 15, which has no
// "+infinity").
var dateTokens = map[string]dtToken{
	"-infinity": {tRESERV, vEarly}, "infinity": {tRESERV, vLate},
	"epoch": {tRESERV, vEpoch}, "allballs": {tRESERV, vZulu},
	"now": {tRESERV, vNow}, "today": {tRESERV, vNow}, "tomorrow": {tRESERV, vNow}, "yesterday": {tRESERV, vNow},
	"ad": {tADBC, vAD}, "bc": {tADBC, vBC}, "am": {tAMPM, vAM}, "pm": {tAMPM, vPM},
	"at": {tIGNORE, 0}, "on": {tIGNORE, 0},
	"jan": {tMONTH, 1}, "january": {tMONTH, 1}, "feb": {tMONTH, 2}, "february": {tMONTH, 2},
	"mar": {tMONTH, 3}, "march": {tMONTH, 3}, "apr": {tMONTH, 4}, "april": {tMONTH, 4},
	"may": {tMONTH, 5}, "jun": {tMONTH, 6}, "june": {tMONTH, 6}, "jul": {tMONTH, 7}, "july": {tMONTH, 7},
	"aug": {tMONTH, 8}, "august": {tMONTH, 8}, "sep": {tMONTH, 9}, "sept": {tMONTH, 9}, "september": {tMONTH, 9},
	"oct": {tMONTH, 10}, "october": {tMONTH, 10}, "nov": {tMONTH, 11}, "november": {tMONTH, 11},
	"dec": {tMONTH, 12}, "december": {tMONTH, 12},
	"sun": {tDOW, 0}, "sunday": {tDOW, 0}, "mon": {tDOW, 1}, "monday": {tDOW, 1},
	"tue": {tDOW, 2}, "tues": {tDOW, 2}, "tuesday": {tDOW, 2},
	"wed": {tDOW, 3}, "wednesday": {tDOW, 3}, "weds": {tDOW, 3},
	"thu": {tDOW, 4}, "thur": {tDOW, 4}, "thurs": {tDOW, 4}, "thursday": {tDOW, 4},
	"fri": {tDOW, 5}, "friday": {tDOW, 5}, "sat": {tDOW, 6}, "saturday": {tDOW, 6},
	"t": {tISOTIME, vTime}, "dst": {tDTZMOD, 3600},
	"j": {tUNITS, vJulian}, "jd": {tUNITS, vJulian}, "julian": {tUNITS, vJulian},
	"y": {tUNITS, vUnitYear}, "m": {tUNITS, vUnitMonth}, "d": {tUNITS, vUnitDay},
	"h": {tUNITS, vUnitHour}, "mm": {tUNITS, vUnitMinute}, "s": {tUNITS, vUnitSecond},
	"dow": {tUNITS, vOtherUnit}, "doy": {tUNITS, vOtherUnit}, "isodow": {tUNITS, vOtherUnit},
	"isoyear": {tUNITS, vOtherUnit},
}

// Date/time parse failures (DTERR_* in datetime.h), reported as
// DateTimeParseError reports them, without the input.
type dtErr int

const (
	dtOK dtErr = iota
	dtBadFormat
	dtFieldOverflow
	dtMDFieldOverflow
	dtTZDispOverflow
	dtBadTimezone
	dtUnsupportedToken
	dtUnsupportedNow
)

func (e dtErr) toError(t Type) *Error {
	switch e {
	case dtFieldOverflow, dtMDFieldOverflow:
		return newError(CodeDatetimeFieldOverflow, "date/time field value out of range")
	case dtTZDispOverflow:
		return newError(CodeInvalidTimeZoneDisplacement, "time zone displacement out of range")
	case dtBadTimezone:
		return newError(CodeInvalidParameterValue, "time zone not recognized")
	case dtUnsupportedToken:
		return errUnsupported("a time zone abbreviation whose offset depends on the date is not supported by fleproxy in " + t.sqlName() + " input")
	case dtUnsupportedNow:
		return errUnsupported(`"now", "today", "tomorrow" and "yesterday" in ` + t.sqlName() + " input are not supported by fleproxy")
	}
	return newError(CodeInvalidDatetimeFormat, "invalid input syntax for type "+t.sqlName())
}

// pgTm is struct pg_tm with fsec: year uses 0 for 1 BC, -1 for 2 BC, ...
type pgTm struct {
	year, mon, mday, hour, min, sec, yday int
	fsec                                  int64
}

type dtField struct {
	typ int
	s   string
}

// maxDateFields is MAXDATEFIELDS.
const maxDateFields = 25

// parseDateTime splits the input into fields as ParseDateTime does; letters
// are lower-cased.
func parseDateTime(src []byte) ([]dtField, dtErr) {
	var fields []dtField
	cp := 0
	at := func(i int) byte {
		if i < len(src) {
			return src[i]
		}
		return 0
	}
	for cp < len(src) {
		c := src[cp]
		if isSpace(c) {
			cp++
			continue
		}
		if len(fields) >= maxDateFields {
			return nil, dtBadFormat
		}
		var b strings.Builder
		var typ int
		switch {
		case isDigit(c):
			for isDigit(at(cp)) {
				b.WriteByte(src[cp])
				cp++
			}
			switch d := at(cp); {
			case d == ':':
				typ = dtkTime
				for x := at(cp); isDigit(x) || x == ':' || x == '.'; x = at(cp) {
					b.WriteByte(x)
					cp++
				}
			case d == '-' || d == '/' || d == '.':
				b.WriteByte(d)
				cp++
				if isDigit(at(cp)) {
					typ = dtkDate
					if d == '.' {
						typ = dtkNumber
					}
					for isDigit(at(cp)) {
						b.WriteByte(src[cp])
						cp++
					}
					if at(cp) == d {
						typ = dtkDate
						b.WriteByte(d)
						cp++
						for x := at(cp); isDigit(x) || x == d; x = at(cp) {
							b.WriteByte(x)
							cp++
						}
					}
				} else {
					typ = dtkDate
					for x := at(cp); isAlpha(x) || isDigit(x) || x == d; x = at(cp) {
						b.WriteByte(lower(x))
						cp++
					}
				}
			default:
				typ = dtkNumber
			}
		case c == '.':
			b.WriteByte(c)
			cp++
			for isDigit(at(cp)) {
				b.WriteByte(src[cp])
				cp++
			}
			typ = dtkNumber
		case isAlpha(c):
			typ = dtkString
			for isAlpha(at(cp)) {
				b.WriteByte(lower(src[cp]))
				cp++
			}
			isDate := false
			switch x := at(cp); {
			case x == '-' || x == '/' || x == '.':
				isDate = true
			case x == '+' || isDigit(x):
				// Only the core keyword table counts here, not
				// abbreviations: "utc+3" is a zone name.
				isDate = !coreKeyword(b.String())
			}
			if isDate {
				typ = dtkDate
				for {
					b.WriteByte(lower(src[cp]))
					cp++
					x := at(cp)
					if !(x == '+' || x == '-' || x == '/' || x == '_' || x == '.' || x == ':' || isAlpha(x) || isDigit(x)) {
						break
					}
				}
			}
		case c == '+' || c == '-':
			b.WriteByte(c)
			cp++
			for cp < len(src) && isSpace(src[cp]) {
				cp++
			}
			switch x := at(cp); {
			case isDigit(x):
				typ = dtkTZ
				for y := at(cp); isDigit(y) || y == ':' || y == '.' || y == '-'; y = at(cp) {
					b.WriteByte(y)
					cp++
				}
			case isAlpha(x):
				typ = dtkSpecial
				for isAlpha(at(cp)) {
					b.WriteByte(lower(src[cp]))
					cp++
				}
			default:
				return nil, dtBadFormat
			}
		case c < 0x80 && isPunct(c):
			cp++
			continue
		default:
			return nil, dtBadFormat
		}
		fields = append(fields, dtField{typ: typ, s: b.String()})
	}
	return fields, dtOK
}

// coreKeyword reports whether s is in datetktbl proper (not an abbreviation).
func coreKeyword(s string) bool {
	tok, ok := dateTokens[s]
	return ok && tok.typ != tTZ
}

func isPunct(c byte) bool {
	return c > ' ' && c < 0x7f && !isAlpha(c) && !isDigit(c)
}

// decoded is the result of decodeDateTime.
type decoded struct {
	dtype   int // vDate, vEpoch, vLate, vEarly
	tm      pgTm
	tz      int  // seconds west of UTC, when haveTZ
	haveTZ  bool // the input named an offset or zone
	namedTz *tzone
}

// strtoint parses leading decimal digits as strtol would after the callers'
// checks (fields hold no blanks or signs here): no digits gives 0, and a
// value beyond int32 reports overflow.
func strtoint(s string) (val int, rest string, overflow bool) {
	i := 0
	v := int64(0)
	for i < len(s) && isDigit(s[i]) {
		if v <= math.MaxInt32 {
			v = v*10 + int64(s[i]-'0')
		}
		i++
	}
	if v > math.MaxInt32 {
		return 0, s[i:], true
	}
	return int(v), s[i:], false
}

// parseFractionalSecond is ParseFractionalSecond: s starts with '.'.
func parseFractionalSecond(s string) (int64, dtErr) {
	if len(s) == 1 {
		return 0, dtOK
	}
	for i := 1; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, dtBadFormat
		}
	}
	f, err := strconv.ParseFloat("0"+s, 64)
	if err != nil {
		return 0, dtBadFormat
	}
	return int64(math.RoundToEven(f * 1000000)), dtOK
}

// decodeDateTime is DecodeDateTime for date_in, timestamp_in and
// timestamptz_in (which all accept a time zone).
func decodeDateTime(fields []dtField, order dateOrder) (decoded, dtErr) {
	var r decoded
	tm := &r.tm
	fmask, tmask := 0, 0
	ptype := 0
	mer := vHR24
	haveTextMonth, isjulian, is2digits, bc := false, false, false, false
	r.dtype = vDate

	for i, f := range fields {
		switch f.typ {
		case dtkDate:
			switch {
			case ptype == vJulian:
				jday, rest, ovf := strtoint(f.s)
				if ovf {
					return r, dtFieldOverflow
				}
				j2date(jday, tm)
				isjulian = true
				tz, e := decodeTimezone(rest)
				if e != dtOK {
					return r, e
				}
				r.tz, r.haveTZ = tz, true
				tmask = maskDate | maskTime | 1<<tTZ
				ptype = 0
			case ptype != 0 || fmask&(1<<tMONTH|1<<tDAY) == 1<<tMONTH|1<<tDAY:
				if isDigit(f.s[0]) || ptype != 0 {
					if ptype != 0 {
						if ptype != vTime {
							return r, dtBadFormat
						}
						ptype = 0
					}
					if fmask&maskTime == maskTime {
						return r, dtBadFormat
					}
					cut := strings.IndexByte(f.s, '-')
					if cut < 0 {
						return r, dtBadFormat
					}
					tz, e := decodeTimezone(f.s[cut:])
					if e != dtOK {
						return r, e
					}
					r.tz, r.haveTZ = tz, true
					var e2 dtErr
					tmask, _, e2 = decodeNumberField(f.s[:cut], fmask, tm, &is2digits)
					if e2 != dtOK {
						return r, e2
					}
					tmask |= 1 << tTZ
				} else {
					z, err := resolveZone(f.s)
					if err != nil {
						return r, dtBadTimezone
					}
					r.namedTz = &z
					tmask = 1 << tTZ
				}
			default:
				var e dtErr
				tmask, e = decodeDate(f.s, fmask, &is2digits, tm, order)
				if e != dtOK {
					return r, e
				}
			}
		case dtkTime:
			if ptype != 0 {
				if ptype != vTime {
					return r, dtBadFormat
				}
				ptype = 0
			}
			var e dtErr
			tmask, e = decodeTime(f.s, tm)
			if e != dtOK {
				return r, e
			}
			if timeOverflows(tm.hour, tm.min, tm.sec, tm.fsec) {
				return r, dtFieldOverflow
			}
		case dtkTZ:
			tz, e := decodeTimezone(f.s)
			if e != dtOK {
				return r, e
			}
			r.tz, r.haveTZ = tz, true
			tmask = 1 << tTZ
		case dtkNumber:
			if ptype != 0 {
				value, rest, ovf := strtoint(f.s)
				if ovf {
					return r, dtFieldOverflow
				}
				if rest != "" && (rest[0] != '.' || (ptype != vJulian && ptype != vTime && ptype != vUnitSecond)) {
					return r, dtBadFormat
				}
				switch ptype {
				case vUnitYear:
					tm.year, tmask = value, 1<<tYEAR
				case vUnitMonth:
					// Already have a month and hour? Then it is minutes.
					if fmask&(1<<tMONTH) != 0 && fmask&(1<<tHOUR) != 0 {
						tm.min, tmask = value, 1<<tMINUTE
					} else {
						tm.mon, tmask = value, 1<<tMONTH
					}
				case vUnitDay:
					tm.mday, tmask = value, 1<<tDAY
				case vUnitHour:
					tm.hour, tmask = value, 1<<tHOUR
				case vUnitMinute:
					tm.min, tmask = value, 1<<tMINUTE
				case vUnitSecond:
					tm.sec, tmask = value, 1<<tSECOND
					if rest != "" {
						fsec, e := parseFractionalSecond(rest)
						if e != dtOK {
							return r, e
						}
						tm.fsec, tmask = fsec, maskAllSecs
					}
				case vJulian:
					tmask = maskDate
					j2date(value, tm)
					isjulian = true
					if rest != "" {
						frac, e := parseFraction(rest)
						if e != dtOK {
							return r, e
						}
						dt2time(int64(frac*usecsPerDay), tm)
						tmask |= maskTime
					}
				case vTime:
					var e dtErr
					tmask, _, e = decodeNumberField(f.s, fmask|maskDate, tm, &is2digits)
					if e != dtOK {
						return r, e
					}
					if tmask != maskTime {
						return r, dtBadFormat
					}
				default:
					return r, dtBadFormat
				}
				ptype = 0
				r.dtype = vDate
			} else {
				flen := len(f.s)
				dot := strings.IndexByte(f.s, '.')
				var e dtErr
				switch {
				case dot >= 0 && fmask&maskDate == 0:
					tmask, e = decodeDate(f.s, fmask, &is2digits, tm, order)
				case dot > 2:
					tmask, _, e = decodeNumberField(f.s, fmask, tm, &is2digits)
				case flen >= 6 && (fmask&maskDate == 0 || fmask&maskTime == 0):
					tmask, _, e = decodeNumberField(f.s, fmask, tm, &is2digits)
				default:
					tmask, e = decodeNumber(f.s, haveTextMonth, fmask, tm, &is2digits, order)
				}
				if e != dtOK {
					return r, e
				}
			}
		case dtkString, dtkSpecial:
			// Time zone abbreviations take precedence over keywords
			// (DecodeTimezoneAbbrev, then DecodeSpecial).
			tok, ok := dtToken{}, false
			if ab, isAbbrev := fixedAbbrevs[f.s]; isAbbrev {
				tok, ok = dtToken{tTZ, int(ab.east)}, true
				if ab.dst {
					tok.typ = tDTZ
				}
			} else if _, isDyn := dynamicAbbrevs[f.s]; isDyn {
				return r, dtUnsupportedToken
			} else {
				tok, ok = dateTokens[f.s]
			}
			if !ok {
				// Last resort: an all-letter zone name such as "Japan"
				// (pg_tzset).
				if f.typ != dtkString {
					return r, dtBadFormat
				}
				z, err := resolveZone(f.s)
				if err != nil {
					return r, dtBadFormat
				}
				r.namedTz = &z
				tok, tmask = dtToken{typ: tUNKNOWN}, 1<<tTZ
			}
			if tok.typ == tIGNORE {
				continue
			}
			if tok.typ != tUNKNOWN {
				tmask = 1 << tok.typ
			}
			switch tok.typ {
			case tUNKNOWN:
			case tDTZ:
				tmask |= 1 << tTZ
				r.tz, r.haveTZ = -tok.val, true
			case tRESERV:
				switch tok.val {
				case vNow:
					return r, dtUnsupportedNow
				case vZulu:
					tmask = maskTime | 1<<tTZ
					r.dtype = vDate
					tm.hour, tm.min, tm.sec = 0, 0, 0
					r.tz, r.haveTZ = 0, true
				default:
					// epoch, infinity, -infinity. PostgreSQL 15 leaves
					// tmask at DTK_M(RESERV), so other fields may
					// accompany them and are ignored.
					r.dtype = tok.val
				}
			case tMONTH:
				if fmask&(1<<tMONTH) != 0 && !haveTextMonth && fmask&(1<<tDAY) == 0 && tm.mon >= 1 && tm.mon <= 31 {
					tm.mday = tm.mon
					tmask = 1 << tDAY
				}
				haveTextMonth = true
				tm.mon = tok.val
			case tDTZMOD:
				tmask |= 1 << tDTZ
				r.tz -= tok.val
			case tTZ:
				r.tz, r.haveTZ = -tok.val, true
			case tAMPM:
				mer = tok.val
			case tADBC:
				bc = tok.val == vBC
			case tDOW:
			case tUNITS:
				tmask = 0
				ptype = tok.val
			case tISOTIME:
				// "t" must follow a date and precede a time, a number
				// (hhmmss) or a date-like field (hhmmss-zz).
				tmask = 0
				if fmask&maskDate != maskDate {
					return r, dtBadFormat
				}
				if i >= len(fields)-1 || (fields[i+1].typ != dtkNumber && fields[i+1].typ != dtkTime && fields[i+1].typ != dtkDate) {
					return r, dtBadFormat
				}
				ptype = tok.val
			default:
				return r, dtBadFormat
			}
		default:
			return r, dtBadFormat
		}
		if tmask&fmask != 0 {
			return r, dtBadFormat
		}
		fmask |= tmask
	}
	// PostgreSQL 15 ignores a unit label that no number followed, and
	// checks the date fields and AM/PM even for epoch and infinity.
	if e := validateDate(fmask, isjulian, is2digits, bc, tm); e != dtOK {
		return r, e
	}
	if mer != vHR24 && tm.hour > 12 {
		return r, dtFieldOverflow
	}
	if mer == vAM && tm.hour == 12 {
		tm.hour = 0
	} else if mer == vPM && tm.hour != 12 {
		tm.hour += 12
	}
	if r.dtype == vDate {
		if fmask&maskDate != maskDate {
			// A time without a date is valid only for the time types.
			return r, dtBadFormat
		}
		if r.namedTz != nil && fmask&(1<<tDTZMOD) != 0 {
			return r, dtBadFormat
		}
		if r.namedTz == nil && fmask&(1<<tTZ) == 0 && fmask&(1<<tDTZMOD) != 0 {
			return r, dtBadFormat
		}
		if fmask&(1<<tTZ) != 0 && r.namedTz == nil {
			r.haveTZ = true
		}
	}
	return r, dtOK
}

// parseFraction is ParseFraction: s starts with '.'.
func parseFraction(s string) (float64, dtErr) {
	if len(s) == 1 {
		return 0, dtOK
	}
	for i := 1; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, dtBadFormat
		}
	}
	f, err := strconv.ParseFloat("0"+s, 64)
	if err != nil {
		return 0, dtBadFormat
	}
	return f, dtOK
}

// dt2time splits microseconds of a day into hour, minute, second, fsec.
func dt2time(t int64, tm *pgTm) {
	tm.hour = int(t / usecsPerHour)
	t -= int64(tm.hour) * usecsPerHour
	tm.min = int(t / usecsPerMinute)
	t -= int64(tm.min) * usecsPerMinute
	tm.sec = int(t / usecsPerSec)
	tm.fsec = t - int64(tm.sec)*usecsPerSec
}

// decodeDate is DecodeDate: a date with delimiters, possibly with a month
// name.
func decodeDate(str string, fmask int, is2digits *bool, tm *pgTm, order dateOrder) (int, dtErr) {
	var fields []string
	for str != "" && len(fields) < maxDateFields {
		i := 0
		for i < len(str) && !isAlpha(str[i]) && !isDigit(str[i]) {
			i++
		}
		if i == len(str) {
			return 0, dtBadFormat
		}
		str = str[i:]
		j := 0
		if isDigit(str[0]) {
			for j < len(str) && isDigit(str[j]) {
				j++
			}
		} else {
			for j < len(str) && isAlpha(str[j]) {
				j++
			}
		}
		fields = append(fields, str[:j])
		str = str[j:]
		if str != "" {
			str = str[1:]
		}
	}
	tmask := 0
	haveTextMonth := false
	done := make([]bool, len(fields))
	for i, f := range fields {
		if !isAlpha(f[0]) {
			continue
		}
		tok, ok := dateTokens[f]
		if ok && tok.typ == tIGNORE {
			continue
		}
		if !ok || tok.typ != tMONTH {
			return 0, dtBadFormat
		}
		tm.mon = tok.val
		haveTextMonth = true
		dmask := 1 << tMONTH
		if fmask&dmask != 0 {
			return 0, dtBadFormat
		}
		fmask |= dmask
		tmask |= dmask
		done[i] = true
	}
	for i, f := range fields {
		// Ignorable words ("at", "on") were skipped above but not marked
		// done; like DecodeDate, read them as numbers here, which fails.
		if done[i] {
			continue
		}
		dmask, e := decodeNumber(f, haveTextMonth, fmask, tm, is2digits, order)
		if e != dtOK {
			return 0, e
		}
		if fmask&dmask != 0 {
			return 0, dtBadFormat
		}
		fmask |= dmask
		tmask |= dmask
	}
	if fmask&^(1<<tDOY|1<<tTZ) != maskDate {
		return 0, dtBadFormat
	}
	return tmask, dtOK
}

// decodeNumber is DecodeNumber: a plain number read as a date field in
// context.
func decodeNumber(str string, haveTextMonth bool, fmask int, tm *pgTm, is2digits *bool, order dateOrder) (int, dtErr) {
	flen := len(str)
	val, rest, ovf := strtoint(str)
	if ovf {
		return 0, dtFieldOverflow
	}
	if len(rest) == len(str) {
		return 0, dtBadFormat
	}
	if rest != "" && rest[0] == '.' {
		if len(str)-len(rest) > 2 {
			tmask, _, e := decodeNumberField(str, fmask|maskDate, tm, is2digits)
			return tmask, e
		}
		fsec, e := parseFractionalSecond(rest)
		if e != dtOK {
			return 0, e
		}
		tm.fsec = fsec
	} else if rest != "" {
		return 0, dtBadFormat
	}
	if flen == 3 && fmask&maskDate == 1<<tYEAR && val >= 1 && val <= 366 {
		tm.yday = val
		return 1<<tDOY | 1<<tMONTH | 1<<tDAY, dtOK
	}
	tmask := 0
	switch fmask & maskDate {
	case 0:
		switch {
		case flen >= 3 || order == orderYMD:
			tmask, tm.year = 1<<tYEAR, val
		case order == orderDMY:
			tmask, tm.mday = 1<<tDAY, val
		default:
			tmask, tm.mon = 1<<tMONTH, val
		}
	case 1 << tYEAR:
		tmask, tm.mon = 1<<tMONTH, val
	case 1 << tMONTH:
		if haveTextMonth && (flen >= 3 || order == orderYMD) {
			tmask, tm.year = 1<<tYEAR, val
		} else {
			tmask, tm.mday = 1<<tDAY, val
		}
	case 1<<tYEAR | 1<<tMONTH:
		if haveTextMonth && flen >= 3 && *is2digits {
			tmask = 1 << tDAY
			tm.mday = tm.year
			tm.year = val
			*is2digits = false
		} else {
			tmask, tm.mday = 1<<tDAY, val
		}
	case 1 << tDAY:
		tmask, tm.mon = 1<<tMONTH, val
	case 1<<tMONTH | 1<<tDAY:
		tmask, tm.year = 1<<tYEAR, val
	case maskDate:
		t, _, e := decodeNumberField(str, fmask, tm, is2digits)
		return t, e
	default:
		return 0, dtBadFormat
	}
	if tmask == 1<<tYEAR {
		*is2digits = flen <= 2
	}
	return tmask, dtOK
}

// decodeNumberField is DecodeNumberField: run-together date (yyyymmdd,
// yymmdd) or time (hhmmss, hhmm, with fraction).
func decodeNumberField(str string, fmask int, tm *pgTm, is2digits *bool) (int, int, dtErr) {
	for i := 0; i < len(str); i++ {
		if !isDigit(str[i]) && str[i] != '.' {
			return 0, 0, dtBadFormat
		}
	}
	if dot := strings.IndexByte(str, '.'); dot >= 0 {
		fsec, e := parseFractionalSecond(str[dot:])
		if e != dtOK {
			return 0, 0, e
		}
		tm.fsec = fsec
		str = str[:dot]
	} else if fmask&maskDate != maskDate && len(str) >= 6 {
		n := len(str)
		tm.mday = atoiField(str[n-2:])
		tm.mon = atoiField(str[n-4 : n-2])
		tm.year = atoiField(str[:n-4])
		if n-4 == 2 {
			*is2digits = true
		}
		return maskDate, dtkDate, dtOK
	}
	if fmask&maskTime != maskTime {
		switch len(str) {
		case 6:
			tm.sec = atoiField(str[4:])
			tm.min = atoiField(str[2:4])
			tm.hour = atoiField(str[:2])
			return maskTime, dtkTime, dtOK
		case 4:
			tm.sec = 0
			tm.min = atoiField(str[2:])
			tm.hour = atoiField(str[:2])
			return maskTime, dtkTime, dtOK
		}
	}
	return 0, 0, dtBadFormat
}

// atoiField is glibc's atoi on an all-digit field: strtol saturating at
// LONG_MAX, then truncated to int, so absurdly long fields come out as
// garbage (often negative) that later range checks reject, as in PostgreSQL.
func atoiField(s string) int {
	var v int64
	for i := 0; i < len(s); i++ {
		d := int64(s[i] - '0')
		if v > (math.MaxInt64-d)/10 {
			v = math.MaxInt64
			break
		}
		v = v*10 + d
	}
	return int(int32(v))
}

// decodeTime is DecodeTime (DecodeTimeCommon): hh:mm, hh:mm:ss,
// hh:mm:ss.fff, or mm:ss.fff.
func decodeTime(str string, tm *pgTm) (int, dtErr) {
	hour, cp, ovf := strtoint(str)
	if ovf {
		return 0, dtFieldOverflow
	}
	if cp == "" || cp[0] != ':' {
		return 0, dtBadFormat
	}
	minute, cp, ovf := strtoint(cp[1:])
	if ovf {
		return 0, dtFieldOverflow
	}
	sec, fsec := 0, int64(0)
	switch {
	case cp == "":
	case cp[0] == '.':
		f, e := parseFractionalSecond(cp)
		if e != dtOK {
			return 0, e
		}
		fsec = f
		sec, minute, hour = minute, hour, 0
	case cp[0] == ':':
		sec, cp, ovf = strtoint(cp[1:])
		if ovf {
			return 0, dtFieldOverflow
		}
		switch {
		case cp == "":
		case cp[0] == '.':
			f, e := parseFractionalSecond(cp)
			if e != dtOK {
				return 0, e
			}
			fsec = f
		default:
			return 0, dtBadFormat
		}
	default:
		return 0, dtBadFormat
	}
	if minute > 59 || sec > 60 || fsec < 0 || fsec > usecsPerSec {
		return 0, dtFieldOverflow
	}
	tm.hour, tm.min, tm.sec, tm.fsec = hour, minute, sec, fsec
	return maskTime, dtOK
}

// timeOverflows is time_overflows (src/backend/utils/adt/date.c): 24:00:00
// and leap second 60 are allowed, but nothing past 24:00:00.
func timeOverflows(hour, minute, sec int, fsec int64) bool {
	if hour < 0 || hour > 24 || minute < 0 || minute >= 60 || sec < 0 || sec > 60 || fsec < 0 || fsec > usecsPerSec {
		return true
	}
	return ((int64(hour)*60+int64(minute))*60+int64(sec))*usecsPerSec+fsec > usecsPerDay
}

// decodeTimezone is DecodeTimezone: +hh, +hhmm, +hh:mm, +hh:mm:ss. It
// returns seconds west of UTC.
func decodeTimezone(str string) (int, dtErr) {
	if str == "" || (str[0] != '+' && str[0] != '-') {
		return 0, dtBadFormat
	}
	hr, cp, ovf := strtoint(str[1:])
	if ovf {
		return 0, dtTZDispOverflow
	}
	minute, sec := 0, 0
	switch {
	case cp != "" && cp[0] == ':':
		minute, cp, ovf = strtoint(cp[1:])
		if ovf {
			return 0, dtTZDispOverflow
		}
		if cp != "" && cp[0] == ':' {
			sec, cp, ovf = strtoint(cp[1:])
			if ovf {
				return 0, dtTZDispOverflow
			}
		}
	case cp == "" && len(str) > 3:
		minute = hr % 100
		hr /= 100
	}
	// MAX_TZDISP_HOUR is 15 (src/include/datatype/timestamp.h).
	if hr > 15 || minute >= 60 || sec >= 60 {
		return 0, dtTZDispOverflow
	}
	tz := (hr*60+minute)*60 + sec
	if str[0] == '-' {
		tz = -tz
	}
	if cp != "" {
		return 0, dtBadFormat
	}
	return -tz, dtOK
}

var dayTab = [2][12]int{
	{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31},
	{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31},
}

func isLeap(y int) int {
	if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		return 1
	}
	return 0
}

// validateDate is ValidateDate: BC and two-digit years, day of year, and
// month/day ranges.
func validateDate(fmask int, isjulian, is2digits, bc bool, tm *pgTm) dtErr {
	if fmask&(1<<tYEAR) != 0 {
		switch {
		case isjulian:
		case bc:
			if tm.year <= 0 {
				return dtFieldOverflow
			}
			tm.year = -(tm.year - 1)
		case is2digits:
			if tm.year < 0 {
				return dtFieldOverflow
			}
			if tm.year < 70 {
				tm.year += 2000
			} else if tm.year < 100 {
				tm.year += 1900
			}
		default:
			if tm.year <= 0 {
				return dtFieldOverflow
			}
		}
	}
	if fmask&(1<<tDOY) != 0 {
		j2date(date2j(tm.year, 1, 1)+tm.yday-1, tm)
	}
	if fmask&(1<<tMONTH) != 0 && (tm.mon < 1 || tm.mon > 12) {
		return dtMDFieldOverflow
	}
	if fmask&(1<<tDAY) != 0 && (tm.mday < 1 || tm.mday > 31) {
		return dtMDFieldOverflow
	}
	if fmask&maskDate == maskDate && tm.mday > dayTab[isLeap(tm.year)][tm.mon-1] {
		return dtFieldOverflow
	}
	return dtOK
}
