package copyfmt

import "errors"

// FieldFunc replaces the value of one selected field. row is the 1-based
// data row (a header line is not counted) and field the 0-based field index.
// value is the field's decoded value: the de-escaped text for the text
// format, the de-quoted text for CSV, the field's bytes for binary; it is nil
// for SQL NULL and non-nil (possibly empty) otherwise. value is only valid
// during the call and must not be modified or retained.
//
// The returned value is encoded in the stream's format; nil writes NULL. An
// error aborts the stream: Write returns it wrapped in an [*Error] that names
// the row and field, so the error itself should not contain the value.
type FieldFunc func(row int64, field int, value []byte) ([]byte, error)

// maxRow is the largest text or CSV row, and the largest binary field the
// Transformer buffers; PostgreSQL's limit (MaxAllocSize) is the same.
const maxRow = 1<<30 - 1

// Transformer rewrites one COPY data stream. Create it with NewTransformer,
// call Write for each CopyData payload in order, and Close at CopyDone. After
// an error every call returns the same error; the caller must abort the COPY
// (CopyFail towards the server, an ErrorResponse towards the client). A
// Transformer is not safe for concurrent use.
type Transformer struct {
	opts   Options
	fields []bool // fields[i]: call fn for field i
	sel    []int  // the indexes i with fields[i]
	fn     FieldFunc
	def    string // *opts.Default
	hasDef bool

	row    int64 // data rows begun
	err    error // sticky
	closed bool
	maxRow int

	val    []byte // the value being decoded or collected; never nil
	bounds []int  // field boundaries of the current text or CSV row

	// Text and CSV.
	lineOut, lineIn   byteSet // bytes the line scanner must look at outside and inside CSV quotes
	fieldOut, fieldIn byteSet // the same for splitting a row into fields
	pending           []byte  // the incomplete row, when it spans payloads
	eol               eolType
	needHeader        bool
	ended             bool // after the end-of-data marker
	esc               bool // text: the previous byte was an unescaped backslash
	cr                bool // a \r ended the scanned bytes and the next byte decides CR or CRLF
	inQuote           bool // CSV: inside a quoted section
	lastEsc           bool // CSV: the previous byte in quotes was an ESCAPE that escapes the next

	// Binary.
	bstate binState
	small  [binHeaderLen]byte // a header, count or length word being collected
	sn     int                // bytes in small
	remain int64              // bytes left in the extension, field or value
	field  int                // the field being read
}

// byteSet is a set of bytes, for skipping quickly over the others.
type byteSet [256]bool

func (s *byteSet) add(bs ...byte) {
	for _, b := range bs {
		s[b] = true
	}
}

// NewTransformer returns a Transformer for a stream with len(fields) fields
// per row that calls fn for each field i with fields[i] set. Options are
// checked as PostgreSQL checks them where they affect framing (for example,
// the NULL string may not contain the delimiter); the error for invalid
// options is not an [*Error]. fields is copied.
func NewTransformer(opts Options, fields []bool, fn FieldFunc) (*Transformer, error) {
	if fn == nil {
		return nil, errors.New("copyfmt: nil FieldFunc")
	}
	if err := opts.validate(len(fields)); err != nil {
		return nil, err
	}
	t := &Transformer{
		opts:       opts,
		fields:     append([]bool(nil), fields...),
		fn:         fn,
		maxRow:     maxRow,
		val:        make([]byte, 0, 256),
		needHeader: opts.Header,
	}
	if opts.Default != nil {
		t.def, t.hasDef = *opts.Default, true
	}
	switch opts.Format {
	case Text:
		t.lineOut.add('\\', '\n', '\r')
		t.fieldOut.add('\\', opts.Delimiter)
	case CSV:
		t.lineOut.add(opts.Quote, '\n', '\r')
		t.lineIn.add(opts.Quote, opts.Escape)
		t.fieldOut.add(opts.Quote, opts.Delimiter)
		t.fieldIn.add(opts.Quote, opts.Escape)
	}
	for i, on := range fields {
		if on {
			t.sel = append(t.sel, i)
		}
	}
	return t, nil
}

// Write consumes the next CopyData payload and appends the rewritten output
// that is complete so far to dst, returning the extended slice. For text and
// CSV that is every complete row: an incomplete trailing row is held back
// until a later payload or Close completes it. For binary it is everything
// except an incomplete selected field, length or count word, so an
// unselected field of any size streams through. In text and CSV the bytes
// after the end-of-data marker line are discarded, as PostgreSQL ignores
// them; in binary, bytes after the trailer are an error, as PostgreSQL
// reports. payload is not retained; dst must not overlap it.
//
// Errors are [*Error]s: a malformed stream, a row with more or fewer fields
// than len(fields), or a failed FieldFunc. On error dst is returned as
// passed in.
func (t *Transformer) Write(dst, payload []byte) ([]byte, error) {
	if t.err != nil {
		return dst, t.err
	}
	if t.closed {
		return dst, ErrClosed
	}
	n := len(dst)
	var err error
	if t.opts.Format == Binary {
		dst, err = t.writeBinary(dst, payload)
	} else {
		dst, err = t.writeLines(dst, payload)
	}
	if err != nil {
		t.err = err
		return dst[:n], err
	}
	return dst, nil
}

// Close ends the stream at CopyDone and appends whatever output is left to
// dst. A text or CSV row without a final line ending is a row, as
// PostgreSQL reads it. It is an error if the stream stops inside a row, a
// quoted CSV field, a backslash escape or the binary header, or if the text
// end-of-data marker has no line ending; a binary stream may end without its
// trailer, as PostgreSQL accepts. On error dst is returned as passed in.
func (t *Transformer) Close(dst []byte) ([]byte, error) {
	if t.err != nil {
		return dst, t.err
	}
	if t.closed {
		return dst, ErrClosed
	}
	t.closed = true
	n := len(dst)
	var err error
	if t.opts.Format == Binary {
		err = t.closeBinary()
	} else {
		dst, err = t.closeLines(dst)
	}
	if err != nil {
		t.err = err
		return dst[:n], err
	}
	return dst, nil
}

// call runs the FieldFunc for field i of the current row.
func (t *Transformer) call(i int, v []byte) ([]byte, error) {
	out, err := t.fn(t.row, i, v)
	if err != nil {
		return nil, &Error{Row: t.row, Field: i, Reason: "field function failed", Err: err}
	}
	return out, nil
}

// releaseVal drops t.val if an unusually large value grew it.
func (t *Transformer) releaseVal() {
	if cap(t.val) > 1<<20 {
		t.val = make([]byte, 0, 256)
	}
}

func (t *Transformer) rowErr(field int, reason string) *Error {
	return &Error{Row: t.row, Field: field, Reason: reason}
}
