package copyfmt

import (
	"bytes"
	"reflect"
	"testing"
)

// fuzzOptions picks the options and field selection a fuzz input runs with.
func fuzzOptions(mode byte) (Options, []bool) {
	fields := [][]bool{sel(true), sel(false, true, true), sel(true, false), sel()}[mode>>4&3]
	var o Options
	switch mode & 7 {
	case 0:
		o = DefaultOptions(Text)
	case 1:
		o = DefaultOptions(Text)
		d := "#d"
		o.Delimiter, o.Null, o.Header, o.Default = '|', "nil", true, &d
	case 2:
		o = DefaultOptions(Text)
		o.Null = ""
	case 3:
		o = DefaultOptions(CSV)
	case 4:
		o = DefaultOptions(CSV)
		o.Quote, o.Escape, o.Null, o.Header = '\'', '\\', "nil", true
	case 5:
		o = DefaultOptions(CSV)
		n := len(fields)
		o.ForceQuote, o.ForceNotNull, o.ForceNull = make([]bool, n), make([]bool, n), make([]bool, n)
		for i := range n {
			o.ForceQuote[i], o.ForceNotNull[i], o.ForceNull[i] = i%2 == 0, i < 2, i > 0
		}
	default:
		o = DefaultOptions(Binary)
	}
	return o, fields
}

// FuzzTransformer feeds arbitrary streams through every format. It must
// never panic; splitting the stream into payloads must not change the
// result; with the identity FieldFunc a binary stream must come out
// unchanged, and a text or CSV output must be a fixed point that decodes to
// the same values.
func FuzzTransformer(f *testing.F) {
	for _, c := range splitCases() {
		for mode := range byte(8) {
			f.Add(c.in, mode|0x10, uint16(len(c.in)/3), uint16(len(c.in)/2))
		}
	}
	f.Add([]byte("a\r\nb\rc\n"), byte(0), uint16(2), uint16(3))
	f.Add([]byte("\"a\nb\",c\n\\.\n"), byte(3|0x20), uint16(3), uint16(9))
	f.Add(binStream(nil, true, row("1", "<null>"), row("", "x")), byte(7|0x30), uint16(20), uint16(25))
	f.Fuzz(func(t *testing.T, in []byte, mode byte, cut1, cut2 uint16) {
		opts, fields := fuzzOptions(mode)
		once := func(chunks ...[]byte) ([]byte, string, []call) {
			fn, calls := recorder(nil)
			out, err := run(opts, fields, fn, chunks...)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			return out, msg, *calls
		}
		out, msg, calls := once(in)

		i, j := int(cut1)%(len(in)+1), int(cut2)%(len(in)+1)
		if i > j {
			i, j = j, i
		}
		out2, msg2, calls2 := once(in[:i], in[i:j], in[j:])
		// On error the output of earlier payloads differs; the error may not.
		if msg != msg2 || !reflect.DeepEqual(calls, calls2) || msg == "" && !bytes.Equal(out, out2) {
			t.Fatalf("split at %d,%d changed the result:\n%q %q\n%q %q", i, j, out, msg, out2, msg2)
		}
		if msg != "" {
			return
		}
		if opts.Format == Binary {
			if !bytes.Equal(out, in) {
				t.Fatalf("identity changed a binary stream:\n%q\n%q", in, out)
			}
			return
		}
		again, msg3, calls3 := once(out)
		if msg3 != "" {
			t.Fatalf("output %q of %q does not parse: %s", out, in, msg3)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("output is not a fixed point:\n%q\n%q\n%q", in, out, again)
		}
		if !reflect.DeepEqual(calls, calls3) {
			t.Fatalf("output %q of %q decodes differently:\n%+v\n%+v", out, in, calls, calls3)
		}
	})
}
