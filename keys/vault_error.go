package keys

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// Errors of remote KEKs such as [VaultTransitKEK], for errors.Is. The
// Manager passes them on inside its own errors (wrapped with ErrUnwrap when
// unwrapping), so a caller can tell "Vault is down, retry later" from "this
// keyring is broken".
var (
	// ErrKEKUnavailable: the KEK service could not be used right now: Vault
	// refused or dropped the connection, did not answer within the timeout,
	// or answered 429, 502, 503 (sealed, or a standby without a leader) or
	// 504. Keyrings already unwrapped keep working; retry later.
	ErrKEKUnavailable = errors.New("KEK unavailable")
	// ErrKEKPermissionDenied: Vault answered 403: the token is invalid,
	// expired or revoked, or its policies do not allow the path.
	ErrKEKPermissionDenied = errors.New("KEK permission denied")
)

// VaultError is a failed request to Vault. It names the operation and the
// Vault path, never a token, a plaintext, a ciphertext or key material.
// errors.Is matches [ErrKEKUnavailable] or [ErrKEKPermissionDenied] as
// described there, and errors.As reaches the cause in Err: the
// *api.ResponseError with Vault's answer, a network error, or
// context.DeadlineExceeded.
type VaultError struct {
	// Op is what fleproxy was doing: "login", "read key", "wrap", "unwrap",
	// "rewrap".
	Op string
	// Path is the Vault API path without "/v1/", e.g.
	// "transit/encrypt/fleproxy".
	Path string
	// Address is the Vault server's address.
	Address string
	// StatusCode is Vault's HTTP status, 0 if no answer came.
	StatusCode int
	// Errors is Vault's "errors" list (truncated if it was not JSON).
	Errors []string
	// Timeout is set when no answer came within it.
	Timeout time.Duration
	// Err is the cause.
	Err error

	kind error // ErrKEKUnavailable, ErrKEKPermissionDenied or nil
}

func (e *VaultError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "keys: Vault %s (%s): ", e.Op, e.Path)
	switch {
	case e.Timeout > 0:
		fmt.Fprintf(&b, "Vault at %s did not answer within %s", e.Address, e.Timeout)
	case e.StatusCode != 0:
		msg := strings.Join(e.Errors, "; ")
		if msg == "" {
			msg = http.StatusText(e.StatusCode)
		}
		fmt.Fprintf(&b, "Vault answered %d: %s", e.StatusCode, msg)
		if e.kind == ErrKEKUnavailable {
			b.WriteString(" (Vault unavailable)")
		}
	case e.kind == ErrKEKUnavailable:
		fmt.Fprintf(&b, "Vault unreachable at %s: %v", e.Address, e.Err)
	default:
		fmt.Fprintf(&b, "%v", e.Err)
	}
	return b.String()
}

// Unwrap gives errors.Is and errors.As the kind sentinel and the cause.
func (e *VaultError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// maxRawError bounds how much of a non-JSON error body (say, a load
// balancer's HTML page) goes into an error.
const maxRawError = 200

// newVaultError classifies err from a request made with callCtx, derived
// from the caller's ctx with the KEK's timeout.
func newVaultError(ctx, callCtx context.Context, op, path, addr string, timeout time.Duration, err error) error {
	e := &VaultError{Op: op, Path: path, Address: addr, Err: err}
	var re *api.ResponseError
	switch {
	case errors.As(err, &re):
		e.StatusCode = re.StatusCode
		e.Errors = re.Errors
		if re.RawError && len(e.Errors) == 1 && len(e.Errors[0]) > maxRawError {
			e.Errors = []string{e.Errors[0][:maxRawError] + "…"}
		}
		switch re.StatusCode {
		case http.StatusForbidden:
			e.kind = ErrKEKPermissionDenied
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			e.kind = ErrKEKUnavailable
		}
	case ctx.Err() != nil:
		// The caller gave up; that says nothing about Vault.
	case errors.Is(callCtx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		e.Timeout = timeout
		e.kind = ErrKEKUnavailable
	case unreachable(err):
		e.kind = ErrKEKUnavailable
	}
	return e
}

// unreachable reports whether err means no conversation with Vault took
// place (refused, reset, dropped, name not found), as opposed to one that
// went wrong (a certificate that does not verify, a bad URL).
func unreachable(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	if errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &recordErr) {
		return false
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &opErr) || errors.As(err, &dnsErr) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// invalidToken reports whether err is Vault refusing the token itself
// (403 "permission denied", "invalid token"), which a new login can cure,
// rather than the token's policies. Vault says "invalid token" since 1.16
// (https://developer.hashicorp.com/vault/docs/concepts/tokens#error-responses);
// with an older Vault a revoked token is replaced only when the renewal
// goroutine gives up on it, at the latest when its TTL runs out.
func invalidToken(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		return false
	}
	for _, m := range re.Errors {
		if strings.Contains(m, "invalid token") {
			return true
		}
	}
	return false
}
