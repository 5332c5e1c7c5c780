package policy

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMaskText(t *testing.T) {
	tests := []struct {
		name string
		col  Column
		in   string
		want string
	}{
		{"default mask", Column{Type: TypeText}, "alice@example.com", "*************.com"},
		{"keep 2, char #", Column{Type: TypeText, Mask: TextMask{KeepLast: 2, Char: '#'}}, "555-0100", "######00"},
		{"keep 0", Column{Type: TypeText, Mask: TextMask{KeepLast: 0, Char: 'x'}}, "secret", "xxxxxx"},
		{"empty", Column{Type: TypeText}, "", ""},
		{"shorter than keep_last", Column{Type: TypeText}, "abc", "***"},
		{"as long as keep_last", Column{Type: TypeText}, "abcd", "****"},
		{"one longer than keep_last", Column{Type: TypeText}, "abcde", "*bcde"},
		{"unicode input", Column{Type: TypeText}, "Zoë Ångström", "********tröm"},
		{"wide runes", Column{Type: TypeVarchar}, "東京都港区六本木", "****区六本木"},
		{"unicode mask char", Column{Type: TypeText, Mask: TextMask{KeepLast: 1, Char: '•'}}, "héllo", "••••o"},
		{"emoji", Column{Type: TypeText, Mask: TextMask{KeepLast: 1, Char: '*'}}, "a😀b😀", "***😀"},
		{"invalid UTF-8 is masked per byte", Column{Type: TypeText, Mask: TextMask{KeepLast: 1, Char: '*'}}, "a\xff\xfeb", "***b"},
		{"a kept invalid byte becomes U+FFFD", Column{Type: TypeText, Mask: TextMask{KeepLast: 2, Char: '*'}}, "abc\xff", "**c\uFFFD"},
		{"bpchar padding is kept", Column{Type: TypeBpchar}, "AB12345   ", "***2345   "},
		{"bpchar short value", Column{Type: TypeBpchar}, "AB        ", "**        "},
		{"bpchar all blanks", Column{Type: TypeBpchar}, "    ", "    "},
		{"text trailing blanks are characters", Column{Type: TypeText}, "AB12345   ", "******5   "},
		{"huge keep_last", Column{Type: TypeText, Mask: TextMask{KeepLast: 1 << 40, Char: '*'}}, "abc", "***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.col.MaskText(tt.in); got != tt.want {
				t.Errorf("MaskText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMaskTextFromPolicy(t *testing.T) {
	p := mustParse(t, `version: 1
columns:
  - {column: s.t.a, type: text, key: k}
  - {column: s.t.b, type: text, key: k, mask: {keep_last: 0}}
  - {column: s.t.c, type: text, key: k, mask: {char: "·"}}
`)
	for col, want := range map[string]string{"a": "****5678", "b": "********", "c": "····5678"} {
		c, _ := p.Column("s", "t", col)
		if got := c.MaskText("12345678"); got != want {
			t.Errorf("column %s: MaskText = %q, want %q", col, got, want)
		}
	}
}

func FuzzMaskText(f *testing.F) {
	f.Add("alice@example.com", 4, '*', false)
	f.Add("Zoë", 0, '•', true)
	f.Add("a\xffb  ", 2, 'x', true)
	f.Fuzz(func(t *testing.T, plain string, keep int, char rune, bpchar bool) {
		if keep < 0 || !utf8.ValidRune(char) || char == utf8.RuneError || char == 0 {
			return
		}
		col := &Column{Type: TypeText, Mask: TextMask{KeepLast: keep, Char: char}}
		if bpchar {
			col.Type = TypeBpchar
		}
		got := col.MaskText(plain)
		body, pad := plain, ""
		if bpchar {
			body = strings.TrimRight(plain, " ")
			pad = plain[len(body):]
		}
		gotBody, ok := strings.CutSuffix(got, pad)
		if !ok {
			t.Fatalf("MaskText(%q) = %q lost the padding", plain, got)
		}
		in, out := []rune(body), []rune(gotBody)
		if len(in) != len(out) {
			t.Fatalf("MaskText(%q) = %q: %d runes, want %d", plain, got, len(out), len(in))
		}
		shown := keep
		if shown >= len(in) {
			shown = 0
		}
		for i := range in {
			want := in[i]
			if i < len(in)-shown {
				want = char
			}
			if out[i] != want {
				t.Fatalf("MaskText(%q) = %q: rune %d is %q, want %q", plain, got, i, out[i], want)
			}
		}
	})
}
