package codec

// boolCanonicalText reads boolean text input as boolin does
// (src/backend/utils/adt/bool.c, parse_bool_with_len): blanks around, and
// case-insensitively any prefix of "true", "false", "yes" or "no", "on",
// "off" (at least two letters for those), "1" or "0". The canonical form is
// one byte, 1 or 0 (boolsend).
func boolCanonicalText(dst []byte, t Type, src []byte) ([]byte, error) {
	v, ok := parseBool(trimSpace(src))
	if !ok {
		return nil, errSyntax(t)
	}
	if v {
		return append(dst, 1), nil
	}
	return append(dst, 0), nil
}

func parseBool(s []byte) (value, ok bool) {
	if len(s) == 0 {
		return false, false
	}
	prefixOf := func(word string, minLen int) bool {
		return len(s) >= minLen && len(s) <= len(word) && hasPrefixFold([]byte(word), string(s))
	}
	switch lower(s[0]) {
	case 't':
		return true, prefixOf("true", 1)
	case 'f':
		return false, prefixOf("false", 1)
	case 'y':
		return true, prefixOf("yes", 1)
	case 'n':
		return false, prefixOf("no", 1)
	case 'o':
		if prefixOf("on", 2) {
			return true, true
		}
		return false, prefixOf("off", 2)
	case '1':
		return true, len(s) == 1
	case '0':
		return false, len(s) == 1
	}
	return false, false
}
