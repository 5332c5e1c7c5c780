package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// osUser is the OS account initdb and postgres run as.
type osUser struct {
	name     string
	uid, gid int
	// switched is set when the account is not the caller's.
	switched bool
}

// chown gives paths to u; a no-op when u is the caller.
func (u osUser) chown(paths ...string) error {
	if !u.switched {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, u.uid, u.gid); err != nil {
			return fmt.Errorf("pgtest: chown %s to %s: %w", p, u.name, err)
		}
	}
	return nil
}

// command prepares bin to run as u in dir with an environment free of PG*
// variables (PGDATA, PGPORT, ... would override our flags) and of locale
// settings, so that server messages are in English.
func (u osUser) command(ctx context.Context, dir, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = u.sysProcAttr()
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") || strings.HasPrefix(name, "LC_") || name == "LANG" || name == "LANGUAGE" {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "LC_ALL=C")
	return cmd
}
