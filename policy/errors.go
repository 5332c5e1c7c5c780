package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a policy file.
type Problem struct {
	// Line is the 1-based line in the file the problem is about, or 0 when it
	// is about the file as a whole.
	Line int
	// Field is the path of the offending field, e.g. "columns[2].type", or ""
	// for the file as a whole.
	Field string
	// Msg says what is wrong and, where it can, how to fix it.
	Msg string
}

// String formats p as "line 7: columns[1].type: unknown type ...".
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ValidationError lists every problem found in a policy file, in file order.
// [Parse], [Load] and [Policy.CheckAgainstCatalog] return it; use errors.As
// to get at the problems.
type ValidationError struct {
	// Source names the file, as given to Parse or Load.
	Source   string
	Problems []Problem
}

// Error formats one problem as
//
//	policy: policy.yaml:7: columns[1].type: unknown type "strng" ...
//
// and several as a count followed by one "file:line: field: message" line
// each.
func (e *ValidationError) Error() string {
	src := e.Source
	if src == "" {
		src = "policy"
	}
	loc := func(p Problem) string {
		s := src
		if p.Line > 0 {
			s += ":" + strconv.Itoa(p.Line)
		}
		s += ": "
		if p.Field != "" {
			s += p.Field + ": "
		}
		return s + p.Msg
	}
	if len(e.Problems) == 1 {
		return "policy: " + loc(e.Problems[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "policy: %d problems in %s:", len(e.Problems), src)
	for _, p := range e.Problems {
		b.WriteString("\n\t")
		b.WriteString(loc(p))
	}
	return b.String()
}
