package pgtest

import "syscall"

// setParentDeathSignal makes the kernel send the postmaster SIGQUIT
// (immediate shutdown) if the test binary dies without calling Stop.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGQUIT }
