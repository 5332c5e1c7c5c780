package wire

import "fmt"

// MalformedError reports a message that violates the framing rules of PostgreSQL protocol §55.7.
type MalformedError struct {
	// Type is the message type byte, or 0 for a start-up packet.
	Type   byte
	Reason string
}

func (e *MalformedError) Error() string {
	if e.Type == 0 {
		return "malformed start-up packet: " + e.Reason
	}
	return fmt.Sprintf("malformed message of type %q: %s", e.Type, e.Reason)
}

// TooLargeError reports a message whose body exceeds the configured limit.
type TooLargeError struct {
	Type     byte
	Len, Max int // bytes
}

func (e *TooLargeError) Error() string {
	if e.Type == 0 {
		return fmt.Sprintf("start-up packet of %d bytes exceeds the limit of %d bytes", e.Len, e.Max)
	}
	return fmt.Sprintf("message of type %q with %d bytes exceeds the limit of %d bytes", e.Type, e.Len, e.Max)
}
