package copyfmt

import "testing"

func TestCSV(t *testing.T) {
	def := DefaultOptions(CSV)
	header := def
	header.Header = true
	single := def
	apos := def
	apos.Quote, apos.Escape = '\'', '\\'
	backslash := def
	backslash.Escape = '\\'
	semiNil := def
	semiNil.Delimiter, semiNil.Null = ';', "nil"
	withDefault := def
	d := "#d"
	withDefault.Default = &d
	force := def
	force.ForceQuote = sel(false, true, false)
	force.ForceNotNull = sel(false, false, true)
	notNull := def
	notNull.ForceNotNull = sel(true, false)
	forceNull := def
	forceNull.ForceNull = sel(true, false)
	both := def
	both.ForceNotNull, both.ForceNull = sel(true, false), sel(true, false)

	tests := []struct {
		name   string
		opts   Options
		fields []bool
		fn     FieldFunc
		in     string
		want   string
		calls  []call
	}{
		{name: "uppercase field 1", opts: def, fields: sel(false, true), fn: upper,
			in: "1,abc\n2,def\n", want: "1,ABC\n2,DEF\n"},
		{name: "embedded delimiter", opts: def, fields: sel(false, true), fn: upper,
			in: `1,"a,b"` + "\n", want: `1,"A,B"` + "\n", calls: []call{{row: 1, field: 1, value: "a,b"}}},
		{name: "doubled quotes", opts: def, fields: sel(false, true), fn: upper,
			in: `1,"say ""hi"""` + "\n", want: `1,"SAY ""HI"""` + "\n", calls: []call{{row: 1, field: 1, value: `say "hi"`}}},
		{name: "embedded line breaks", opts: def, fields: sel(false, true, false), fn: upper,
			in: "1,\"l1\nl2\r\nl3\rl4\",\"x\ny\"\n", want: "1,\"L1\nL2\r\nL3\rL4\",\"x\ny\"\n",
			calls: []call{{row: 1, field: 1, value: "l1\nl2\r\nl3\rl4"}}},
		{name: "NULL versus empty string", opts: def, fields: sel(true, true),
			in: ",\"\"\n", want: ",\"\"\n", calls: []call{{row: 1, field: 0, null: true}, {row: 1, field: 1, value: ""}}},
		{name: "quoted and unquoted parts", opts: def, fields: sel(true, false),
			in: "ab\"c,d\"e,x\n", want: "\"abc,de\",x\n", calls: []call{{row: 1, value: "abc,de"}}},
		{name: "quote in an unquoted replacement", opts: def, fields: sel(true), fn: constant([]byte(`a"b`)),
			in: "x\n", want: `"a""b"` + "\n"},
		{name: "header passes through", opts: header, fields: sel(false, true), fn: upper,
			in: "id,\"na\nme\"\n1,x\n", want: "id,\"na\nme\"\n1,X\n"},
		{name: "quote and escape", opts: apos, fields: sel(false, true, false), fn: upper,
			in: `1,'it\'s \\ ok',"q"` + "\n", want: `1,'IT\'S \\ OK',"q"` + "\n", calls: []call{{row: 1, field: 1, value: `it's \ ok`}}},
		{name: "escape outside quotes is literal", opts: backslash, fields: sel(true, false),
			in: `a\b,"c\"d"` + "\n", want: `a\b,"c\"d"` + "\n", calls: []call{{row: 1, value: `a\b`}}},
		{name: "escape before other byte is literal", opts: backslash, fields: sel(true),
			in: `"a\b\\c\"d"` + "\n", want: `"a\\b\\c\"d"` + "\n", calls: []call{{row: 1, value: `a\b\c"d`}}},
		{name: "escape doubled when quoting", opts: backslash, fields: sel(true), fn: constant([]byte(`a\b,"`)),
			in: "x\n", want: `"a\\b,\""` + "\n"},
		{name: "CRLF", opts: def, fields: sel(false, true), fn: upper,
			in: "1,a\r\n2,\"b\r\nc\"\r\n", want: "1,A\r\n2,\"B\r\nC\"\r\n"},
		{name: "custom delimiter and null", opts: semiNil, fields: sel(true, true, true),
			in: "nil;\"nil\";a,b\n", want: "nil;\"nil\";a,b\n",
			calls: []call{{row: 1, field: 0, null: true}, {row: 1, field: 1, value: "nil"}, {row: 1, field: 2, value: "a,b"}}},
		{name: "value equal to NULL string is quoted", opts: semiNil, fields: sel(true), fn: constant([]byte("nil")),
			in: "x\n", want: "\"nil\"\n"},
		{name: "DEFAULT marker passes through, quoted one is data", opts: withDefault, fields: sel(true, true),
			in: "#d,\"#d\"\n", want: "#d,\"#d\"\n", calls: []call{{row: 1, field: 1, value: "#d"}}},
		{name: "unicode", opts: def, fields: sel(false, true), fn: upper,
			in: "1,\"héllo, wörld ✓\"\n", want: "1,\"HÉLLO, WÖRLD ✓\"\n"},
		{name: "end marker withheld with what follows", opts: def, fields: sel(false, true), fn: upper,
			in: "1,a\n\\.\n2,secret\n", want: "1,A\n"},
		{name: "quoted marker is data", opts: single, fields: sel(true),
			in: "\"\\.\"\n", want: "\"\\.\"\n", calls: []call{{row: 1, value: `\.`}}},
		{name: "marker without line ending is data", opts: single, fields: sel(true),
			in: "a\n\\.", want: "a\n\"\\.\"", calls: []call{{row: 1, value: "a"}, {row: 2, value: `\.`}}},
		{name: "marker-like value in a wider row", opts: def, fields: sel(true, false),
			in: "\\.,x\n", want: "\\.,x\n", calls: []call{{row: 1, value: `\.`}}},
		{name: "FORCE_QUOTE and FORCE_NOT_NULL", opts: force, fields: sel(true, true, true),
			in: "a,b,\n", want: "a,\"b\",\"\"\n",
			calls: []call{{row: 1, field: 0, value: "a"}, {row: 1, field: 1, value: "b"}, {row: 1, field: 2, value: ""}}},
		{name: "FORCE_NOT_NULL with custom null", opts: func() Options { o := notNull; o.Null = "nil"; return o }(), fields: sel(true, true),
			in: "nil,nil\n", want: "\"nil\",nil\n", calls: []call{{row: 1, field: 0, value: "nil"}, {row: 1, field: 1, null: true}}},
		{name: "FORCE_NULL", opts: forceNull, fields: sel(true, true),
			in: "\"\",\"\"\n", want: ",\"\"\n", calls: []call{{row: 1, field: 0, null: true}, {row: 1, field: 1, value: ""}}},
		{name: "FORCE_NOT_NULL and FORCE_NULL", opts: both, fields: sel(true, false),
			in: ",x\n\"\",y\n", want: ",x\n\"\",y\n", calls: []call{{row: 1, value: ""}, {row: 2, null: true}}},
		{name: "final row without newline", opts: def, fields: sel(true), fn: upper, in: "a\nb", want: "A\nB"},
		{name: "empty line is NULL", opts: single, fields: sel(true), in: "\n", want: "\n", calls: []call{{row: 1, null: true}}},
		{name: "unselected field untouched", opts: def, fields: sel(false, true),
			in: "\"a\"\"b\",c\n", want: "\"a\"\"b\",c\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fn, calls := recorder(nil)
			if tc.fn != nil {
				inner := tc.fn
				fn = func(row int64, field int, v []byte) ([]byte, error) {
					*calls = append(*calls, call{row: row, field: field, value: string(v), null: v == nil})
					return inner(row, field, v)
				}
			}
			got := mustRun(t, tc.opts, tc.fields, fn, tc.in)
			if got != tc.want {
				t.Errorf("output\n%q\nwant\n%q", got, tc.want)
			}
			checkCalls(t, *calls, tc.calls)
		})
	}
}

func TestCSVErrors(t *testing.T) {
	def := DefaultOptions(CSV)
	notNull := def
	notNull.ForceNotNull = sel(false, true)
	forceNull := def
	forceNull.ForceNull = sel(false, true)
	tests := []struct {
		name   string
		opts   Options
		fields []bool
		fn     FieldFunc
		in     string
		row    int64
		field  int
		reason string
	}{
		{name: "unterminated quote", opts: def, fields: sel(false, true), in: "1,\"secret\n", row: 1, field: -1, reason: "unterminated CSV quoted field"},
		{name: "too many fields", opts: def, fields: sel(false, true), in: "1,a\n2,\"secret\",x\n", row: 2, field: -1, reason: "row has 3 fields"},
		{name: "too few fields", opts: def, fields: sel(false, true), in: "\"secret,x\"\n", row: 1, field: -1, reason: "row has 1 fields"},
		{name: "unquoted CR in LF stream", opts: def, fields: sel(true), in: "a\nsec\rret\n", row: 2, field: -1, reason: "unquoted carriage return"},
		{name: "NULL into FORCE_NOT_NULL", opts: notNull, fields: sel(false, true), fn: constant(nil), in: "1,secret\n", row: 1, field: 1,
			reason: "cannot write NULL"},
		{name: "NULL string into FORCE_NULL", opts: forceNull, fields: sel(false, true), fn: constant([]byte{}), in: "1,secret\n", row: 1, field: 1,
			reason: "would read back as NULL"},
	}
	header := def
	header.Header = true
	tests = append(tests, []struct {
		name   string
		opts   Options
		fields []bool
		fn     FieldFunc
		in     string
		row    int64
		field  int
		reason string
	}{
		{name: "unterminated header", opts: header, fields: sel(true), in: "\"secret", row: 0, field: -1, reason: "unterminated CSV quoted field"},
		{name: "no fields but data", opts: def, fields: sel(), in: "\n\"secret\"\n", row: 2, field: -1, reason: "row has 1 fields, expected 0"},
		{name: "field function error", opts: def, fields: sel(false, true), in: "1,\"secret\"\n",
			fn: func(int64, int, []byte) ([]byte, error) { return nil, errTest }, row: 1, field: 1, reason: "field function failed"},
	}...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fn := tc.fn
			if fn == nil {
				fn = identity
			}
			_, err := run(tc.opts, tc.fields, fn, []byte(tc.in))
			wantErr(t, err, tc.row, tc.field, tc.reason, "secret")
		})
	}
}
