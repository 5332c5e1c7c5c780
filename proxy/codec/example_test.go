package codec_test

import (
	"fmt"

	"github.com/fleproxy/fleproxy/proxy/codec"
)

func Example() {
	var sess codec.Session
	// From ParameterStatus.
	if err := sess.Set("TimeZone", "America/New_York"); err != nil {
		panic(err)
	}
	typ, _ := codec.Lookup("timestamp with time zone")

	// Write path: a text Bind parameter becomes canonical plaintext.
	plain, err := codec.Canonical(typ, codec.FormatText, []byte("2020-07-01 12:00:00+02"), &sess)
	if err != nil {
		panic(err)
	}
	fmt.Printf("canonical %x\n", plain)

	// Read path: the decrypted value is written as the client asked.
	text, _ := codec.Wire(typ, codec.FormatText, plain, &sess)
	fmt.Printf("text %s\n", text)
	fmt.Printf("RowDescription type %d, size %d, modifier %d\n", typ.OID, typ.Len, typ.Typmod)

	// Errors carry a SQLSTATE and never the value.
	_, err = codec.Canonical(typ, codec.FormatText, []byte("2020-02-30"), &sess)
	fmt.Println(err.(*codec.Error).Code, err)
	// Output:
	// canonical 00024c5d1fa50800
	// text 2020-07-01 06:00:00-04
	// RowDescription type 1184, size 8, modifier -1
	// 22008 date/time field value out of range
}
