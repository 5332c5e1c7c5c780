//go:build !unix

package pgtest

import "syscall"

// serverUser returns the caller; only Unix needs to avoid running the
// server as root.
func serverUser() (osUser, error) {
	return osUser{name: "current user"}, nil
}

func (u osUser) sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
