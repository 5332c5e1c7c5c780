package copyfmt

import "testing"

func TestText(t *testing.T) {
	def := DefaultOptions(Text)
	pipeNil := def
	pipeNil.Delimiter, pipeNil.Null = '|', "nil"
	emptyNull := def
	emptyNull.Null = ""
	header := def
	header.Header = true
	withDefault := def
	d := "#d"
	withDefault.Default = &d

	tests := []struct {
		name   string
		opts   Options
		fields []bool
		fn     FieldFunc
		in     string
		want   string
		calls  []call // if not nil, the FieldFunc calls expected
	}{
		{name: "uppercase field 1", opts: def, fields: sel(false, true), fn: upper,
			in: "1\tabc\n2\tdef\n", want: "1\tABC\n2\tDEF\n",
		},
		{name: "escapes decoded and re-encoded", opts: def, fields: sel(false, true), fn: upper,
			in:    "1\ta\\tb\\nc\\\\d\\re\\bf\\fg\\vh\n",
			want:  "1\tA\\tB\\nC\\\\D\\rE\\bF\\fG\\vH\n",
			calls: []call{{row: 1, field: 1, value: "a\tb\nc\\d\re\bf\fg\vh"}},
		},
		{name: "octal and hex", opts: def, fields: sel(true),
			in:    `\101\x42\x4g\1234\x\0` + "\n",
			want:  "AB\x04gS4x\x00\n",
			calls: []call{{row: 1, field: 0, value: "AB\x04gS4x\x00"}},
		},
		{name: "hex digits of either case", opts: def, fields: sel(true),
			in: `\xAf\xaF\x7` + "\n", calls: []call{{row: 1, value: "\xaf\xaf\x07"}}, want: "\xaf\xaf\x07\n",
		},
		{name: "empty last row keeps a CRLF line ending", opts: emptyNull, fields: sel(true), fn: constant(nil),
			in: "a\r\nb", want: "\r\n\r\n",
		},
		{name: "empty last row keeps a CR line ending", opts: def, fields: sel(true), fn: constant([]byte{}),
			in: "a\rb", want: "\r\r",
		},
		{name: "empty only row gets a newline", opts: def, fields: sel(true), fn: constant([]byte{}),
			in: "a", want: "\n",
		},
		{name: "octal overflow wraps like PostgreSQL", opts: def, fields: sel(true),
			in: `\777` + "\n", calls: []call{{row: 1, value: "\xff"}}, want: "\xff\n",
		},
		{name: "any other escaped byte is itself", opts: def, fields: sel(true),
			in: `\q\N\\N\é` + "\n", calls: []call{{row: 1, value: `qN\Né`}}, want: `qN\\Né` + "\n",
		},
		{name: "null matched before de-escaping", opts: def, fields: sel(true, true),
			in:    "\\N\t\\\\N\n",
			want:  "\\N\t\\\\N\n",
			calls: []call{{row: 1, field: 0, null: true}, {row: 1, field: 1, value: `\N`}},
		},
		{name: "escaped delimiter and newline", opts: def, fields: sel(true, false),
			in:    "a\\\tb\\\nc\tx\n",
			want:  "a\\tb\\nc\tx\n",
			calls: []call{{row: 1, field: 0, value: "a\tb\nc"}},
		},
		{name: "CRLF preserved", opts: def, fields: sel(false, true), fn: upper,
			in: "1\tabc\r\n2\t\\N\r\n", want: "1\tABC\r\n2\t\\N\r\n",
		},
		{name: "CR preserved", opts: def, fields: sel(false, true), fn: upper,
			in: "1\tabc\r2\tdef\r", want: "1\tABC\r2\tDEF\r",
		},
		{name: "escaped CR inside a CRLF row is data", opts: def, fields: sel(true),
			in: "a\\\r\r\n", want: "a\\r\r\n", calls: []call{{row: 1, value: "a\r"}},
		},
		{name: "custom delimiter and null", opts: pipeNil, fields: sel(true, true, true),
			in:    "nil|\\nil|a\\|b\n",
			want:  "nil|\\nil|a\\|b\n",
			calls: []call{{row: 1, field: 0, null: true}, {row: 1, field: 1, value: "\nil"}, {row: 1, field: 2, value: "a|b"}},
		},
		{name: "value equal to custom null is octal-escaped", opts: pipeNil, fields: sel(false, true),
			fn: constant([]byte("nil")), in: "1|x\n", want: "1|\\156il\n",
		},
		{name: "value equal to DEFAULT is octal-escaped", opts: withDefault, fields: sel(true),
			fn: constant([]byte("#d")), in: "x\n", want: "\\043d\n",
		},
		{name: "DEFAULT marker passes through", opts: withDefault, fields: sel(true, true),
			in: "#d\t\\#d\n", want: "#d\t\\043d\n", calls: []call{{row: 1, field: 1, value: "#d"}},
		},
		{name: "empty null string", opts: emptyNull, fields: sel(true, true),
			in: "\tx\n", want: "\tx\n", calls: []call{{row: 1, field: 0, null: true}, {row: 1, field: 1, value: "x"}},
		},
		{name: "replacement with specials is escaped", opts: def, fields: sel(false, true),
			fn: constant([]byte("a\tb\\c\nd\re\x01\x7f")), in: "1\tx\n", want: "1\ta\\tb\\\\c\\nd\\re\x01\x7f\n",
		},
		{name: "control-character delimiter escaped", opts: Options{Format: Text, Delimiter: 0x01, Null: `\N`}, fields: sel(true, false),
			fn: constant([]byte("a\x01b\tc")), in: "x\x01y\n", want: "a\\\x01b\\tc\x01y\n",
		},
		{name: "nil replacement writes NULL", opts: def, fields: sel(true), fn: constant(nil), in: "x\n", want: "\\N\n"},
		{name: "unicode", opts: def, fields: sel(false, true), fn: upper,
			in: "1\théllo wörld ✓\n", want: "1\tHÉLLO WÖRLD ✓\n",
		},
		{name: "header passes through", opts: header, fields: sel(false, true), fn: upper,
			in: "id\tna\\\\me\n1\tx\n", want: "id\tna\\\\me\n1\tX\n",
		},
		{name: "end marker forwarded and what follows dropped", opts: def, fields: sel(false, true), fn: upper,
			in: "1\ta\n\\.\n2\tsecret\n", want: "1\tA\n\\.\n",
		},
		{name: "end marker with CRLF", opts: def, fields: sel(true), fn: upper,
			in: "a\r\n\\.\r\nzzz", want: "A\r\n\\.\r\n",
		},
		{name: "end marker as first line", opts: header, fields: sel(true), in: "\\.\nx\n", want: "\\.\n"},
		{name: "final row without newline", opts: def, fields: sel(false, true), fn: upper,
			in: "1\tabc\n2\tdef", want: "1\tABC\n2\tDEF",
		},
		{name: "final row ends in CR", opts: def, fields: sel(true), fn: upper, in: "a\rb\r", want: "A\rB\r"},
		{name: "empty line is one empty field", opts: def, fields: sel(true),
			in: "\n\n", want: "\n\n", calls: []call{{row: 1, value: ""}, {row: 2, value: ""}},
		},
		{name: "no fields", opts: def, fields: nil, in: "\n\n", want: "\n\n"},
		{name: "unselected fields untouched", opts: def, fields: sel(false, false),
			in: "\\x41\t\\101\n", want: "\\x41\t\\101\n", calls: []call{},
		},
		{name: "empty stream", opts: def, fields: sel(true), in: "", want: "", calls: []call{}},
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

func TestTextErrors(t *testing.T) {
	def := DefaultOptions(Text)
	tests := []struct {
		name       string
		fields     []bool
		fn         FieldFunc
		in         string
		row        int64
		field      int
		reason     string
		wantOutput string // output of the rows before the bad one, from Write
	}{
		{name: "too many fields", fields: sel(false, true), in: "1\ta\n2\tsecret\tx\n", row: 2, field: -1,
			reason: "row has 3 fields, expected 2", wantOutput: "1\ta\n"},
		{name: "too few fields", fields: sel(false, true), in: "secret\n", row: 1, field: -1, reason: "row has 1 fields, expected 2"},
		{name: "too few fields in the final row", fields: sel(false, true), in: "1\ta\nsecret", row: 2, field: -1, reason: "expected 2",
			wantOutput: "1\ta\n"},
		{name: "no fields but data", fields: sel(), in: "secret\n", row: 1, field: -1, reason: "row has 1 fields, expected 0"},
		{name: "CRLF then LF", fields: sel(true), in: "a\r\nsecret\n", row: 2, field: -1, reason: "literal newline"},
		{name: "LF then CR", fields: sel(true), in: "a\nsecret\rb\n", row: 2, field: -1, reason: "literal carriage return"},
		{name: "CRLF then CR", fields: sel(true), in: "a\r\nsecret\rb", row: 2, field: -1, reason: "literal carriage return"},
		{name: "CR then LF", fields: sel(true), in: "a\rsecret\n", row: 2, field: -1, reason: "literal newline"},
		{name: "CRLF stream ends in CR", fields: sel(true), in: "a\r\nsecret\r", row: 2, field: -1, reason: "literal carriage return",
			wantOutput: "a\r\n"},
		{name: "marker after data", fields: sel(true), in: "secret\\.\n", row: 1, field: -1, reason: "not alone on its line"},
		{name: "marker before data", fields: sel(true), in: "\\.secret\n", row: 1, field: -1, reason: "not alone on its line"},
		{name: "marker without line ending", fields: sel(true), in: "a\n\\.", row: 2, field: -1, reason: "has no line ending",
			wantOutput: "a\n"},
		{name: "trailing backslash", fields: sel(false, true), in: "1\tsecret\\", row: 1, field: 1, reason: "backslash at end of data"},
		{name: "field function error", fields: sel(false, true),
			fn: func(row int64, field int, v []byte) ([]byte, error) {
				if string(v) == "secret" {
					return nil, errTest
				}
				return v, nil
			},
			in: "1\tok\n2\tsecret\n", row: 2, field: 1, reason: "field function failed: test failure", wantOutput: "1\tok\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fn := tc.fn
			if fn == nil {
				fn = identity
			}
			tr, err := NewTransformer(def, tc.fields, fn)
			if err != nil {
				t.Fatal(err)
			}
			prefix := []byte("prefix:")
			out, err := tr.Write(prefix, []byte(tc.in))
			if err == nil {
				if string(out) != "prefix:"+tc.wantOutput {
					t.Errorf("Write output %q, want %q", out, "prefix:"+tc.wantOutput)
				}
				out, err = tr.Close(prefix)
			}
			if string(out) != "prefix:" {
				t.Errorf("output on error %q, want dst unchanged", out)
			}
			wantErr(t, err, tc.row, tc.field, tc.reason, "secret")
			// The error is sticky.
			if _, err2 := tr.Write(nil, []byte("x\n")); err2 != err {
				t.Errorf("Write after error: %v, want %v", err2, err)
			}
			if _, err2 := tr.Close(nil); err2 != err {
				t.Errorf("Close after error: %v, want %v", err2, err)
			}
		})
	}
}

type testError struct{}

func (testError) Error() string { return "test failure" }

var errTest error = testError{}
