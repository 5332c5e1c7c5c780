package copyfmt

import (
	"errors"
	"strings"
	"testing"
)

func TestOptions(t *testing.T) {
	str := func(s string) *string { return &s }
	with := func(f Format, mod func(*Options)) Options {
		o := DefaultOptions(f)
		mod(&o)
		return o
	}
	tests := []struct {
		name   string
		opts   Options
		fields int
		reason string // "" if valid
	}{
		{name: "text default", opts: DefaultOptions(Text)},
		{name: "csv default", opts: DefaultOptions(CSV)},
		{name: "binary default", opts: DefaultOptions(Binary)},
		{name: "text header", opts: with(Text, func(o *Options) { o.Header = true })},
		{name: "csv all", fields: 2, opts: with(CSV, func(o *Options) {
			o.Delimiter, o.Null, o.Quote, o.Escape, o.Default = '|', "nil", '\'', '\\', str("#d")
			o.ForceQuote, o.ForceNotNull, o.ForceNull = sel(true, false), sel(false, true), sel(true, true)
		})},
		{name: "unknown format", opts: Options{Format: 7, Delimiter: ','}, reason: "unknown format"},
		{name: "zero delimiter", opts: Options{Format: Text, Null: `\N`}, reason: "no delimiter"},
		{name: "newline delimiter", opts: with(CSV, func(o *Options) { o.Delimiter = '\n' }), reason: "newline"},
		{name: "backslash text delimiter", opts: with(Text, func(o *Options) { o.Delimiter = '\\' }), reason: "text delimiter"},
		{name: "letter text delimiter", opts: with(Text, func(o *Options) { o.Delimiter = 'n' }), reason: "text delimiter"},
		{name: "digit text delimiter", opts: with(Text, func(o *Options) { o.Delimiter = '7' }), reason: "text delimiter"},
		{name: "null with delimiter", opts: with(Text, func(o *Options) { o.Null = "a\tb" }), reason: "NULL cannot contain the delimiter"},
		{name: "null with newline", opts: with(CSV, func(o *Options) { o.Null = "a\r" }), reason: "NULL cannot contain newline"},
		{name: "null with quote", opts: with(CSV, func(o *Options) { o.Null = `"` }), reason: "NULL cannot contain the quote"},
		{name: "default with delimiter", opts: with(CSV, func(o *Options) { o.Default = str(",") }), reason: "DEFAULT cannot contain the delimiter"},
		{name: "default equals null", opts: with(Text, func(o *Options) { o.Default = str(`\N`) }), reason: "the same string"},
		{name: "quote in text", opts: with(Text, func(o *Options) { o.Quote = '"' }), reason: "CSV only"},
		{name: "force in text", opts: with(Text, func(o *Options) { o.ForceNull = sel(true) }), fields: 1, reason: "CSV only"},
		{name: "csv without quote", opts: with(CSV, func(o *Options) { o.Quote = 0 }), reason: "quote and an escape"},
		{name: "csv without escape", opts: with(CSV, func(o *Options) { o.Escape = 0 }), reason: "quote and an escape"},
		{name: "quote equals delimiter", opts: with(CSV, func(o *Options) { o.Quote, o.Escape = ',', ',' }), reason: "must differ"},
		{name: "newline quote", opts: with(CSV, func(o *Options) { o.Quote, o.Escape = '\n', '\n' }), reason: "quote and escape cannot"},
		{name: "force length", opts: with(CSV, func(o *Options) { o.ForceQuote = sel(true) }), fields: 2, reason: "FORCE_QUOTE has 1 entries for 2 fields"},
		{name: "binary with header", opts: with(Binary, func(o *Options) { o.Header = true }), reason: "binary format takes no"},
		{name: "binary with delimiter", opts: Options{Format: Binary, Delimiter: ','}, reason: "binary format takes no"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTransformer(tc.opts, make([]bool, tc.fields), identity)
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.reason != "" && err == nil:
				t.Fatalf("no error, want %q", tc.reason)
			case tc.reason != "" && !strings.Contains(err.Error(), tc.reason):
				t.Fatalf("error %q does not say %q", err, tc.reason)
			}
		})
	}
	if _, err := NewTransformer(DefaultOptions(Text), sel(true), nil); err == nil {
		t.Error("nil FieldFunc accepted")
	}
}

func TestFieldsCopied(t *testing.T) {
	fields := sel(false, true)
	tr, err := NewTransformer(DefaultOptions(Text), fields, upper)
	if err != nil {
		t.Fatal(err)
	}
	fields[0], fields[1] = true, false
	out, err := tr.Write(nil, []byte("a\tb\n"))
	if err != nil || string(out) != "a\tB\n" {
		t.Errorf("got %q, %v; want %q", out, err, "a\tB\n")
	}
}

func TestClosed(t *testing.T) {
	tr, err := NewTransformer(DefaultOptions(CSV), sel(true), identity)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Close(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Write(nil, []byte("x\n")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if _, err := tr.Close(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Close after Close: %v", err)
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Row: 3, Field: 1, Reason: "bad", Err: errTest}, "copyfmt: row 3, field 1: bad: test failure"},
		{&Error{Row: 2, Field: -1, Reason: "bad"}, "copyfmt: row 2: bad"},
		{&Error{Field: -1, Reason: "bad"}, "copyfmt: header: bad"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	if !errors.Is(tests[0].err, errTest) {
		t.Error("Unwrap does not reach the FieldFunc's error")
	}
}

func TestFormatString(t *testing.T) {
	for f, want := range map[Format]string{Text: "text", CSV: "csv", Binary: "binary", 9: "Format(9)"} {
		if got := f.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(f), got, want)
		}
	}
}

func TestRowTooLong(t *testing.T) {
	tr, err := NewTransformer(DefaultOptions(Text), sel(true), identity)
	if err != nil {
		t.Fatal(err)
	}
	tr.maxRow = 8
	out, err := tr.Write(nil, []byte("short\nsecret-and-long"))
	wantErr(t, err, 2, -1, "row is longer than 8 bytes", "secret")
	if len(out) != 0 {
		t.Errorf("output on error %q", out)
	}
}
