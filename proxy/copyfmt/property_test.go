package copyfmt

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// splitCase is a stream whose output must not depend on where it is split.
type splitCase struct {
	name   string
	opts   Options
	fields []bool
	in     []byte
}

func splitCases() []splitCase {
	text := DefaultOptions(Text)
	textHeader := text
	textHeader.Header = true
	pipe := text
	pipe.Delimiter, pipe.Null = '|', ""
	csv := DefaultOptions(CSV)
	csvHeader := csv
	csvHeader.Header = true
	csvEsc := csv
	csvEsc.Quote, csvEsc.Escape, csvEsc.Null = '\'', '\\', "nil"
	return []splitCase{
		{"text escapes", text, sel(false, true, true),
			[]byte("1\ta\\tb\\\\c\\N\t\\N\n2\t\\101\\x4g\\\nz\té\n3\t\\\\.\tx\n\\.\ntrailing")},
		{"text CRLF header", textHeader, sel(true, false),
			[]byte("h1\th\\\r2\r\na\\\r\\\nb\tc\r\nd\t\\N\r\n\\.\r\n")},
		{"text CR", text, sel(true), []byte("a\rb\\\rc\r\rd")},
		{"text custom", pipe, sel(true, true), []byte("|x\\|y\n\\||\nlast|row")},
		{"csv quotes", csvHeader, sel(false, true, true),
			[]byte("id,\"a,b\",c\r\n1,\"x\"\"y\r\nz\",\r\n2,\"\",\"\\.\"\r\n3,a\"b,c\"d,e\r\n\\.\r\nignored")},
		{"csv escape", csvEsc, sel(true, true), []byte("'it\\'s','a\\\\b'\nnil,'nil'\n\\.,x\n'q\nr',last")},
		{"binary", DefaultOptions(Binary), sel(false, true, true),
			binStream([]byte("xx"), true, row("1", "alice", "<null>"), row("2", "", "bob"), row("3", "<null>", "\xff\x00"))},
	}
}

// runSplit runs a case with the stream cut at the given offsets and returns
// the output, the error text, and the FieldFunc calls.
func runSplit(c splitCase, cuts ...int) (string, string, []call) {
	fn, calls := recorder(asciiUpper)
	chunks := make([][]byte, 0, len(cuts)+1)
	prev := 0
	for _, k := range cuts {
		chunks = append(chunks, c.in[prev:k])
		prev = k
	}
	chunks = append(chunks, c.in[prev:])
	out, err := run(c.opts, c.fields, fn, chunks...)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	return string(out), msg, *calls
}

func TestSplitAnywhere(t *testing.T) {
	for _, c := range splitCases() {
		t.Run(c.name, func(t *testing.T) {
			want, wantErr, wantCalls := runSplit(c)
			if wantErr != "" {
				t.Fatalf("unsplit stream fails: %s", wantErr)
			}
			if len(wantCalls) == 0 {
				t.Fatal("no FieldFunc calls")
			}
			check := func(cuts ...int) {
				t.Helper()
				got, gotErr, gotCalls := runSplit(c, cuts...)
				if got != want || gotErr != wantErr || !reflect.DeepEqual(gotCalls, wantCalls) {
					t.Fatalf("cut at %v:\n%q, %q\nwant unsplit\n%q, %q\ncalls %+v\nwant %+v",
						cuts, got, gotErr, want, wantErr, gotCalls, wantCalls)
				}
			}
			for i := 0; i <= len(c.in); i++ {
				check(i)
				for j := i; j <= len(c.in); j++ {
					check(i, j)
				}
			}
			// One byte per payload.
			cuts := make([]int, len(c.in))
			for i := range cuts {
				cuts[i] = i
			}
			check(cuts...)
		})
	}
}

// TestCanonicalIdentity generates streams as PostgreSQL's COPY TO writes
// them, with an encoder written from the documentation independently of
// the package's, and checks that the identity FieldFunc sees every value
// and leaves the stream byte-identical.
func TestCanonicalIdentity(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "Z", "0", "7", "x", "N", ".", "\\", "\\.", "\\N", "\t", "\n", "\r", "\r\n", ",", ";", "|", `"`, "'",
		"\b", "\f", "\v", "\x01", "\x7f", "é", "漢", "✓", " ", "nil", "#d"}
	value := func() *string {
		if r.IntN(6) == 0 {
			return nil
		}
		var b strings.Builder
		for range r.IntN(6) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		s := b.String()
		return &s
	}
	text := DefaultOptions(Text)
	textPipe := text
	textPipe.Delimiter, textPipe.Null = '|', "nil"
	csv := DefaultOptions(CSV)
	csvAlt := csv
	csvAlt.Delimiter, csvAlt.Quote, csvAlt.Escape, csvAlt.Null = ';', '\'', '\\', "nil"
	for _, opts := range []Options{text, textPipe, csv, csvAlt} {
		for _, nf := range []int{1, 3} {
			for iter := 0; iter < 200; iter++ {
				var in []byte
				var want []call
				rows := r.IntN(5)
				for rowNo := 1; rowNo <= rows; rowNo++ {
					for f := 0; f < nf; f++ {
						if f > 0 {
							in = append(in, opts.Delimiter)
						}
						v := value()
						if opts.Format == Text && v != nil && *v == "" && opts.Null == "" {
							v = nil
						}
						if v == nil {
							in = append(in, opts.Null...)
							want = append(want, call{row: int64(rowNo), field: f, null: true})
							continue
						}
						in = append(in, canonical(opts, *v, nf == 1)...)
						want = append(want, call{row: int64(rowNo), field: f, value: *v})
					}
					in = append(in, '\n')
				}
				fields := make([]bool, nf)
				for i := range fields {
					fields[i] = true
				}
				fn, calls := recorder(nil)
				out, err := run(opts, fields, fn, in)
				if err != nil {
					t.Fatalf("%s %q: %v", opts.Format, in, err)
				}
				if !bytes.Equal(out, in) {
					t.Fatalf("%s: identity changed\n%q\ninto\n%q", opts.Format, in, out)
				}
				if len(want) > 0 && !reflect.DeepEqual(*calls, want) {
					t.Fatalf("%s %q: calls\n%+v\nwant\n%+v", opts.Format, in, *calls, want)
				}
			}
		}
	}
}

// canonical encodes a non-NULL value as COPY TO does, per the COPY
// documentation's "Text Format" and "CSV Format" (and, for a value that
// would read back as NULL, the package's documented octal escape).
func canonical(o Options, v string, single bool) string {
	if o.Format == Text {
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			c := v[i]
			switch {
			case c == '\b':
				b.WriteString(`\b`)
			case c == '\f':
				b.WriteString(`\f`)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\r':
				b.WriteString(`\r`)
			case c == '\t':
				b.WriteString(`\t`)
			case c == '\v':
				b.WriteString(`\v`)
			case c == '\\' || c == o.Delimiter:
				b.WriteByte('\\')
				b.WriteByte(c)
			default:
				b.WriteByte(c)
			}
		}
		if s := b.String(); s != o.Null {
			return s
		}
		return `\` + string([]byte{'0' + v[0]>>6, '0' + v[0]>>3&7, '0' + v[0]&7}) + canonical(o, v[1:], single)
	}
	q, e := string(o.Quote), string(o.Escape)
	if v != o.Null && !(single && v == `\.`) && !strings.ContainsAny(v, string(o.Delimiter)+q+"\r\n") {
		return v
	}
	var b strings.Builder
	b.WriteString(q)
	for i := 0; i < len(v); i++ {
		if s := v[i : i+1]; s == q || s == e {
			b.WriteString(e)
		}
		b.WriteByte(v[i])
	}
	b.WriteString(q)
	return b.String()
}

// TestCanonicalPostgres checks streams in the form PostgreSQL's COPY TO
// writes them (as shown in the documentation's examples and rules).
func TestCanonicalPostgres(t *testing.T) {
	tests := []struct {
		opts   Options
		fields []bool
		in     string
	}{
		{DefaultOptions(Text), sel(true, true), "AF\tAFGHANISTAN\nAL\tALBANIA\nDZ\t\\N\n"},
		{DefaultOptions(Text), sel(true, true), "1\tback\\\\slash\\ttab\\nnewline\\rcr\n2\t\n"},
		{DefaultOptions(CSV), sel(true, true, true), "1,\"\",\n2,\"a,b\",\"say \"\"hi\"\"\"\n3,\"multi\nline\",x\n"},
		{DefaultOptions(CSV), sel(true), "\"\\.\"\n\"\"\n\n"},
	}
	for _, tc := range tests {
		if got := mustRun(t, tc.opts, tc.fields, identity, tc.in); got != tc.in {
			t.Errorf("%s identity changed\n%q\ninto\n%q", tc.opts.Format, tc.in, got)
		}
	}
}
