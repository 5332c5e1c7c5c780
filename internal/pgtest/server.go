package pgtest

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// server is a running postmaster.
type server struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's result; read only after exited is closed
}

// startServer starts cmd, which should have been prepared with
// setParentDeathSignal so that the server dies with the test binary even
// when a panic or a test timeout skips Stop.
func startServer(cmd *exec.Cmd) (*server, error) {
	s := &server{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Linux sends the parent-death signal when the OS thread that forked
		// the child exits, not when the process does (prctl(2)
		// PR_SET_PDEATHSIG). Pin this goroutine to its thread for the
		// child's lifetime; the runtime discards the thread afterwards.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.err = cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	return s, nil
}

// stop asks for an immediate shutdown (SIGQUIT, see "Shutting Down the
// Server" in the PostgreSQL manual) and kills the postmaster if it is
// still there after timeout.
func (s *server) stop(timeout time.Duration) error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		return fmt.Errorf("pgtest: signal postgres: %w", err)
	}
	select {
	case <-s.exited:
		return nil
	case <-time.After(timeout):
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
		return fmt.Errorf("pgtest: postgres ignored immediate shutdown for %v and was killed", timeout)
	case <-time.After(timeout):
		return fmt.Errorf("pgtest: postgres (pid %d) survived SIGKILL for %v", s.cmd.Process.Pid, timeout)
	}
}
