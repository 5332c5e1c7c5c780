package analyze

import (
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// CopyDirection says which way a COPY's data flows through the proxy.
type CopyDirection int

const (
	// CopyIn is COPY … FROM STDIN: the client sends CopyData to the server.
	CopyIn CopyDirection = iota + 1
	// CopyOut is COPY … TO STDOUT: the server sends CopyData to the client.
	CopyOut
)

// String returns "in" or "out".
func (d CopyDirection) String() string {
	switch d {
	case CopyIn:
		return "in"
	case CopyOut:
		return "out"
	}
	return "CopyDirection(" + strconv.Itoa(int(d)) + ")"
}

// CopyFormat is the data format of a COPY.
type CopyFormat int

const (
	// CopyText is the default tab-separated text format.
	CopyText CopyFormat = iota
	// CopyCSV is comma-separated values.
	CopyCSV
	// CopyBinary is PostgreSQL's binary COPY format.
	CopyBinary
)

// String returns the format's name as in FORMAT text|csv|binary.
func (f CopyFormat) String() string {
	switch f {
	case CopyText:
		return "text"
	case CopyCSV:
		return "csv"
	case CopyBinary:
		return "binary"
	}
	return "CopyFormat(" + strconv.Itoa(int(f)) + ")"
}

// Copy describes a COPY between the client and a table with protected
// columns, with every option that affects how the data stream is split into
// fields; defaults are filled in as PostgreSQL applies them (COPY reference
// page). Options that do not change the stream (FREEZE, ON_ERROR,
// LOG_VERBOSITY, REJECT_LIMIT) are accepted and not recorded.
type Copy struct {
	// Direction is CopyIn (FROM STDIN) or CopyOut (TO STDOUT).
	Direction CopyDirection
	// Schema and Table name the relation ("" Schema if unqualified and not
	// resolvable to one schema, which only COPY TO allows).
	Schema, Table string
	// Format is text, csv or binary.
	Format CopyFormat
	// Delimiter separates fields: tab for text, comma for csv; "" for binary.
	Delimiter string
	// Null is the string that represents NULL: `\N` for text, "" for csv.
	Null string
	// Default, if not nil, is the string that stands for the column default
	// (DEFAULT option, PostgreSQL 16+); such a field must not be encrypted.
	Default *string
	// Header reports a header line (csv, and text since PostgreSQL 15).
	Header bool
	// HeaderMatch reports HEADER MATCH: the header names must match the columns.
	HeaderMatch bool
	// Quote and Escape are the csv quote and escape characters (both `"` by
	// default); "" for other formats.
	Quote, Escape string
	// Encoding is the ENCODING option, "" if absent (client_encoding applies).
	Encoding string
	// Fields has one entry per field of each row, in order.
	Fields []CopyField
}

// CopyField is one field of each row of a COPY.
type CopyField struct {
	// Name is the table column the field belongs to.
	Name string
	// Column is the protected column the field feeds, nil if not protected.
	Column *Column
	// ForceQuote, ForceNotNull and ForceNull report the csv FORCE_QUOTE,
	// FORCE_NOT_NULL and FORCE_NULL options for this field. With
	// ForceNotNull an unquoted empty field is an empty string, not NULL; with
	// ForceNull a quoted field equal to Null is NULL as well.
	ForceQuote, ForceNotNull, ForceNull bool
}

func (a *analyzer) copyStmt(s *pg.CopyStmt, sc *scope) {
	if s.Query != nil { // COPY (query) TO …: a read, or a DML with RETURNING
		a.stmt(s.Query, sc)
		return
	}
	if s.Relation == nil {
		return
	}
	t := a.resolveTable(s.Relation, s.IsFrom)
	if a.failed() {
		return
	}
	lvl := newLevel(sc, a.tableRel(t, nil))
	a.expr(s.WhereClause, lvl, whyWhere)
	if !t.protected() || a.failed() {
		return
	}
	client := s.Filename == "" && !s.IsProgram
	if s.IsFrom && !client {
		a.reject(t.firstProt(), s.Relation.Location,
			"COPY FROM a server file or program into a table with protected columns; the data would not pass through the proxy",
			"use COPY … FROM STDIN (psql: \\copy)")
		return
	}
	if !client {
		return // COPY TO a server file writes the ciphertext as stored
	}
	names := stringsOf(s.Attlist)
	if len(names) == 0 {
		cols, ok := a.schema.ColumnOrder(t.schema, t.name)
		if !ok {
			if s.IsFrom {
				a.reject(t.firstProt(), s.Relation.Location,
					"COPY without a column list into a table with protected columns whose column order the proxy does not know",
					"list the columns: COPY t (a, b, …) FROM STDIN")
			}
			return // COPY TO unmapped: the data stays ciphertext
		}
		names = cols
	}
	cp, reason := parseCopyOptions(s.Options, names)
	if reason != "" {
		a.reject(t.firstProt(), s.Relation.Location, reason,
			"supported COPY options: FORMAT, DELIMITER, NULL, DEFAULT, HEADER, QUOTE, ESCAPE, FORCE_QUOTE, FORCE_NOT_NULL, FORCE_NULL, ENCODING, FREEZE, ON_ERROR, LOG_VERBOSITY, REJECT_LIMIT")
		return
	}
	cp.Direction = CopyOut
	if s.IsFrom {
		cp.Direction = CopyIn
	}
	cp.Schema, cp.Table = t.schema, t.name
	for i := range cp.Fields {
		if c, ok := t.prot[cp.Fields[i].Name]; ok {
			cp.Fields[i].Column = &c
		}
	}
	a.st.Copy = cp
}

// parseCopyOptions interprets COPY options (both the parenthesised list and
// the pre-9.0 syntax, which the parser turns into the same DefElems). It
// returns a reason when an option is unknown or its value cannot be read.
func parseCopyOptions(opts []*pg.Node, fields []string) (*Copy, string) {
	cp := &Copy{}
	var delim, null, quote, escape *string
	seen := map[string]bool{}
	forced := map[string]map[string]bool{}
	for _, o := range opts {
		de := o.GetDefElem()
		if de == nil {
			return nil, "unrecognised COPY option"
		}
		name := de.Defname
		if seen[name] {
			return nil, "COPY option " + strings.ToUpper(name) + " given more than once"
		}
		seen[name] = true
		switch name {
		case "format":
			s, _ := defString(de.Arg)
			switch strings.ToLower(s) {
			case "text":
				cp.Format = CopyText
			case "csv":
				cp.Format = CopyCSV
			case "binary":
				cp.Format = CopyBinary
			default:
				return nil, "unrecognised COPY format"
			}
		case "delimiter", "null", "quote", "escape", "encoding", "default":
			s, ok := defString(de.Arg)
			if !ok {
				return nil, "COPY option " + strings.ToUpper(name) + " needs a string value"
			}
			switch name {
			case "delimiter":
				delim = &s
			case "null":
				null = &s
			case "quote":
				quote = &s
			case "escape":
				escape = &s
			case "encoding":
				cp.Encoding = s
			case "default":
				cp.Default = &s
			}
		case "header":
			if s, ok := defString(de.Arg); ok && strings.EqualFold(s, "match") {
				cp.Header, cp.HeaderMatch = true, true
				break
			}
			b, ok := defBool(de.Arg)
			if !ok {
				return nil, "COPY option HEADER needs a boolean value or MATCH"
			}
			cp.Header = b
		case "force_quote", "force_not_null", "force_null":
			set := map[string]bool{}
			switch {
			case de.Arg.GetAStar() != nil:
				for _, f := range fields {
					set[f] = true
				}
			case de.Arg.GetList() != nil:
				for _, n := range de.Arg.GetList().Items {
					set[n.GetString_().GetSval()] = true
				}
			default:
				return nil, "COPY option " + strings.ToUpper(name) + " needs a column list"
			}
			forced[name] = set
		case "freeze", "on_error", "log_verbosity", "reject_limit":
			// no effect on how the data stream is split into fields
		default:
			return nil, "unrecognised COPY option " + strings.ToUpper(name)
		}
	}
	switch cp.Format {
	case CopyText:
		cp.Delimiter, cp.Null = "\t", `\N`
	case CopyCSV:
		cp.Delimiter, cp.Null, cp.Quote = ",", "", `"`
	}
	if delim != nil {
		cp.Delimiter = *delim
	}
	if null != nil {
		cp.Null = *null
	}
	if quote != nil {
		cp.Quote = *quote
	}
	cp.Escape = cp.Quote
	if escape != nil {
		cp.Escape = *escape
	}
	for _, f := range fields {
		cp.Fields = append(cp.Fields, CopyField{
			Name:         f,
			ForceQuote:   forced["force_quote"][f],
			ForceNotNull: forced["force_not_null"][f],
			ForceNull:    forced["force_null"][f],
		})
	}
	return cp, ""
}

// defString reads a DefElem argument as a string, as defGetString does.
func defString(n *pg.Node) (string, bool) {
	switch x := n.GetNode().(type) {
	case *pg.Node_String_:
		return x.String_.Sval, true
	case *pg.Node_Integer:
		return strconv.Itoa(int(x.Integer.Ival)), true
	case *pg.Node_Float:
		return x.Float.Fval, true
	case *pg.Node_Boolean:
		return strconv.FormatBool(x.Boolean.Boolval), true
	}
	return "", false
}

// defBool reads a DefElem argument as a boolean, as defGetBoolean does: no
// value means true.
func defBool(n *pg.Node) (bool, bool) {
	switch x := n.GetNode().(type) {
	case nil:
		return true, true
	case *pg.Node_Boolean:
		return x.Boolean.Boolval, true
	case *pg.Node_Integer:
		switch x.Integer.Ival {
		case 0:
			return false, true
		case 1:
			return true, true
		}
	case *pg.Node_String_:
		switch strings.ToLower(x.String_.Sval) {
		case "true", "on":
			return true, true
		case "false", "off":
			return false, true
		}
	}
	return false, false
}
