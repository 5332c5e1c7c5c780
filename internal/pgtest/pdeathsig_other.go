//go:build !linux

package pgtest

import "syscall"

// setParentDeathSignal is a no-op where there is no parent-death signal; a
// test binary that dies without calling Stop leaves its server running.
func setParentDeathSignal(*syscall.SysProcAttr) {}
