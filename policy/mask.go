package policy

import (
	"strings"
	"unicode/utf8"
)

// The mask a text column gets when its entry gives none.
const (
	defaultKeepLast = 4
	defaultMaskChar = '*'
)

// TextMask is how the Mask clearance shows a text column's values: the last
// KeepLast characters stay, every other character becomes Char.
//
// The zero TextMask stands for the default, keep_last 4 and char '*': a parsed
// column whose entry has a mask always has a non-zero Char.
type TextMask struct {
	// KeepLast is how many trailing characters (runes) stay visible; 0 hides
	// them all.
	KeepLast int
	// Char replaces each hidden character: one printable rune.
	Char rune
}

// orDefault returns m, or the default mask for the zero TextMask.
func (m TextMask) orDefault() TextMask {
	if m.Char == 0 {
		return TextMask{KeepLast: defaultKeepLast, Char: defaultMaskChar}
	}
	return m
}

// MaskText applies c's mask to plain: the result has as many runes as plain,
// the last KeepLast of them unchanged and every other one replaced with the
// mask character. A value of KeepLast runes or fewer is masked whole, so a
// mask never shows a complete value. Invalid UTF-8 counts one rune per bad
// byte, and a kept bad byte comes out as U+FFFD. For a bpchar column the
// trailing blanks that pad the value are not characters of it: they are kept
// as they are and the mask applies to what precedes them.
func (c *Column) MaskText(plain string) string {
	pad := ""
	if c.Type == TypeBpchar {
		trimmed := strings.TrimRight(plain, " ")
		plain, pad = trimmed, plain[len(trimmed):]
	}
	return c.Mask.orDefault().apply(plain) + pad
}

// apply masks plain with m.
func (m TextMask) apply(plain string) string {
	n := utf8.RuneCountInString(plain)
	keep := m.KeepLast
	if keep >= n {
		keep = 0
	}
	hide := n - keep
	out := make([]rune, 0, n)
	for i, r := range []rune(plain) {
		if i < hide {
			r = m.Char
		}
		out = append(out, r)
	}
	return string(out)
}

// maskable reports whether a column of type t can be masked: its values are
// character strings.
func (t Type) maskable() bool {
	return t == TypeText || t == TypeVarchar || t == TypeBpchar
}
