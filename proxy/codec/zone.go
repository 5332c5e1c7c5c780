package codec

import (
	"encoding/binary"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// tzone is a time zone: a session's TimeZone or a zone named in input.
type tzone struct {
	loc *time.Location
	// ruleOnly marks a zone built from a POSIX rule (see parsePOSIX). Go's
	// time package evaluates such rules wrongly for instants before 1970,
	// so lookups move those instants forward by whole 400-year Gregorian
	// cycles, over which the calendar and the rule repeat exactly.
	ruleOnly bool
}

const gregorianCycleSecs = 146097 * secsPerDay

func (z tzone) shift(sec int64) int64 {
	if !z.ruleOnly || sec >= 0 {
		return 0
	}
	return (-sec/gregorianCycleSecs + 1) * gregorianCycleSecs
}

// offset returns the UTC offset (seconds east) in effect at Unix time sec,
// as pg_localtime gives it.
func (z tzone) offset(sec int64) int {
	_, off := time.Unix(sec+z.shift(sec), 0).In(z.loc).Zone()
	return off
}

// nextBoundary is pg_next_dst_boundary (src/timezone/localtime.c): the
// offset in effect at sec and, if the zone has a later transition, its time
// and the offset after it.
func (z tzone) nextBoundary(sec int64) (before int, boundary int64, after int, ok bool) {
	shift := z.shift(sec)
	t := time.Unix(sec+shift, 0).In(z.loc)
	_, before = t.Zone()
	_, end := t.ZoneBounds()
	if end.IsZero() {
		return before, 0, 0, false
	}
	_, after = end.In(z.loc).Zone()
	return before, end.Unix() - shift, after, true
}

// zoneDirs are where PostgreSQL built with --with-system-tzdata (as Debian's
// packages are) and Go's time package both find the IANA database.
var zoneDirs = [...]string{"/usr/share/zoneinfo", "/usr/share/lib/zoneinfo", "/usr/lib/locale/TZ", "/etc/zoneinfo"}

// resolveZone finds a time zone the way pg_tzset does
// (src/timezone/pgtz.c): "GMT" and "UTC" are UTC, other names are IANA zone
// files matched case-insensitively, and anything else is read as a POSIX
// time zone specification (such as "<+05:30>-05:30", which SET TIME ZONE
// INTERVAL produces), with the caveat described at parsePOSIX.
func resolveZone(name string) (tzone, *Error) {
	name = strings.TrimSpace(name)
	if strings.EqualFold(name, "GMT") || strings.EqualFold(name, "UTC") {
		return tzone{loc: time.UTC}, nil
	}
	if validZoneName(name) {
		if loc, err := time.LoadLocation(name); err == nil && name != "Local" {
			return tzone{loc: loc}, nil
		}
		if canon, ok := findZoneFile(name); ok {
			if loc, err := time.LoadLocation(canon); err == nil {
				return tzone{loc: loc}, nil
			}
		}
	}
	if z, ok := parsePOSIX(name); ok {
		return z, nil
	}
	return tzone{}, newError(CodeInvalidParameterValue, "time zone not recognized or not supported by fleproxy")
}

func validZoneName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") {
		return false
	}
	for _, c := range strings.Split(name, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// findZoneFile looks a zone name up case-insensitively, component by
// component, as pg_open_tzfile does with scan_directory_ci.
func findZoneFile(name string) (string, bool) {
	roots := zoneDirs[:]
	if zi := os.Getenv("ZONEINFO"); zi != "" {
		roots = append([]string{zi}, roots...)
	}
	for _, root := range roots {
		dir, canon := root, ""
		ok := true
		for _, comp := range strings.Split(name, "/") {
			entries, err := os.ReadDir(dir)
			if err != nil {
				ok = false
				break
			}
			found := ""
			for _, e := range entries {
				if strings.EqualFold(e.Name(), comp) {
					found = e.Name()
					break
				}
			}
			if found == "" {
				ok = false
				break
			}
			dir = path.Join(dir, found)
			canon = path.Join(canon, found)
		}
		if ok {
			return canon, true
		}
	}
	return "", false
}

// parsePOSIX reads a POSIX TZ specification as PostgreSQL's tzparse does
// (src/timezone/localtime.c; IEEE Std 1003.1, 8.3 "TZ"): a standard-time
// name (any characters up to a digit, ',', '-' or '+', possibly empty, or
// a <...>-quoted string), an offset [+-]hh[:mm[:ss]] in hours west of
// Greenwich, and optionally a daylight-time name, offset and transition
// rules (default ",M3.2.0,M11.1.0"). Zones with daylight time are built as
// a TZif zone whose footer carries the rule, so Go's time package applies
// it; PostgreSQL precomputes such rules for a window of years around 1970
// only, so years far from it may differ.
func parsePOSIX(spec string) (tzone, bool) {
	rest, ok := posixName(spec, true)
	if !ok || rest == "" {
		return tzone{}, false
	}
	west, rest, ok := posixOffset(rest)
	if !ok {
		return tzone{}, false
	}
	if rest == "" {
		return tzone{loc: time.FixedZone(spec, -west)}, true
	}
	rules, ok := posixName(rest, false)
	if !ok {
		return tzone{}, false
	}
	dstWest := west - 3600
	if rules != "" && rules[0] != ',' && rules[0] != ';' {
		if dstWest, rules, ok = posixOffset(rules); !ok {
			return tzone{}, false
		}
	}
	if rules == "" {
		rules = ",M3.2.0,M11.1.0" // TZDEFRULESTRING
	}
	if rules[0] != ',' && rules[0] != ';' {
		return tzone{}, false
	}
	r1, ok := posixRule(rules[1:])
	if !ok || r1 == "" || r1[0] != ',' {
		return tzone{}, false
	}
	if r2, ok := posixRule(r1[1:]); !ok || r2 != "" {
		return tzone{}, false
	}
	// Go's tzset needs names of three or more characters; the names do not
	// appear in ISO output.
	tz := "<STD>" + posixOffsetString(west) + "<DST>" + posixOffsetString(dstWest) + "," + rules[1:]
	loc, err := time.LoadLocationFromTZData(spec, tzifWithRule(-west, tz))
	if err != nil {
		return tzone{}, false
	}
	return tzone{loc: loc, ruleOnly: true}, true
}

// posixName skips a zone name (getzname or getqzname) and returns the rest;
// an unquoted standard-time name may be empty, a daylight one may not.
func posixName(s string, std bool) (string, bool) {
	if strings.HasPrefix(s, "<") {
		end := strings.IndexByte(s, '>')
		if end < 0 {
			return "", false
		}
		return s[end+1:], true
	}
	i := 0
	for i < len(s) && !(isDigit(s[i]) || s[i] == ',' || s[i] == '-' || s[i] == '+') {
		i++
	}
	if i == 0 && !std {
		return "", false
	}
	return s[i:], true
}

// posixRule checks one transition rule (Jn, n or Mm.w.d, optionally /time)
// and returns what follows it.
func posixRule(s string) (string, bool) {
	num := func(lo, hi int) bool {
		j, n := 0, 0
		for j < len(s) && isDigit(s[j]) {
			n = n*10 + int(s[j]-'0')
			if n > hi {
				return false
			}
			j++
		}
		s = s[j:]
		return j > 0 && n >= lo
	}
	switch {
	case strings.HasPrefix(s, "J"):
		s = s[1:]
		if !num(1, 365) {
			return "", false
		}
	case strings.HasPrefix(s, "M"):
		s = s[1:]
		if !num(1, 12) || !strings.HasPrefix(s, ".") {
			return "", false
		}
		s = s[1:]
		if !num(1, 5) || !strings.HasPrefix(s, ".") {
			return "", false
		}
		s = s[1:]
		if !num(0, 6) {
			return "", false
		}
	default:
		if !num(0, 365) {
			return "", false
		}
	}
	if strings.HasPrefix(s, "/") {
		var ok bool
		if _, s, ok = posixOffset(s[1:]); !ok {
			return "", false
		}
	}
	return s, true
}

func posixOffsetString(west int) string {
	sign := ""
	if west < 0 {
		sign, west = "-", -west
	}
	return sign + strconv.Itoa(west/3600) + ":" + strconv.Itoa(west/60%60) + ":" + strconv.Itoa(west%60)
}

// posixOffset is getoffset/getsecs: [+-]hh[:mm[:ss]], hours up to 167,
// seconds up to 60. It returns seconds west of Greenwich.
func posixOffset(s string) (int, string, bool) {
	sign := 1
	if s != "" && (s[0] == '+' || s[0] == '-') {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	secs := 0
	limits := [3]int{167, 59, 60}
	for part := 0; part < 3; part++ {
		j, n := 0, 0
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			n = n*10 + int(s[j]-'0')
			if n > limits[part] {
				return 0, "", false
			}
			j++
		}
		if j == 0 {
			return 0, "", false
		}
		secs += n * [3]int{3600, 60, 1}[part]
		s = s[j:]
		if part == 2 || s == "" || s[0] != ':' {
			break
		}
		s = s[1:]
	}
	return sign * secs, s, true
}

// tzifWithRule builds TZif version 2 data (RFC 8536) with one transition at
// the beginning of time into standard time and tz as the footer rule that
// governs every later instant.
func tzifWithRule(stdEast int, tz string) []byte {
	var b []byte
	header := func(timecnt, typecnt, charcnt uint32) {
		b = append(b, "TZif2"...)
		b = append(b, make([]byte, 15)...)
		for _, n := range [6]uint32{0, 0, 0, timecnt, typecnt, charcnt} {
			b = binary.BigEndian.AppendUint32(b, n)
		}
	}
	ttinfo := func() {
		b = binary.BigEndian.AppendUint32(b, uint32(int32(stdEast)))
		b = append(b, 0, 0)
		b = append(b, "STD\x00"...)
	}
	header(0, 1, 4)
	ttinfo()
	header(1, 1, 4)
	bigBang := int64(-1) << 59
	b = binary.BigEndian.AppendUint64(b, uint64(bigBang))
	b = append(b, 0)
	ttinfo()
	b = append(b, '\n')
	b = append(b, tz...)
	return append(b, '\n')
}

// determineTimeZoneOffset is DetermineTimeZoneOffset: the offset (seconds
// west) of local time tm in zone loc. A local time skipped by a
// spring-forward transition takes the offset before it; one repeated by a
// fall-back transition takes the offset after it. Dates outside the Julian
// range are taken as UTC.
func determineTimeZoneOffset(tm *pgTm, z tzone) int {
	if !validJulian(tm.year, tm.mon, tm.mday) {
		return 0
	}
	day := int64(date2j(tm.year, tm.mon, tm.mday)-unixEpochJDate) * secsPerDay
	mytime := day + int64(tm.sec+(tm.min+tm.hour*60)*60)
	beforeOff, boundary, afterOff, ok := z.nextBoundary(mytime - secsPerDay)
	if !ok {
		return -beforeOff
	}
	beforeTime := mytime - int64(beforeOff)
	afterTime := mytime - int64(afterOff)
	switch {
	case beforeTime < boundary && afterTime < boundary:
		return -beforeOff
	case beforeTime > boundary && afterTime >= boundary:
		return -afterOff
	case beforeTime > afterTime:
		return -beforeOff
	}
	return -afterOff
}
