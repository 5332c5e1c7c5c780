package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNotInstalled is returned (wrapped) by [Start] when no PostgreSQL server
// binaries are found.
var ErrNotInstalled = errors.New("PostgreSQL server binaries (initdb, postgres) not found; install postgresql (Debian: apt-get install postgresql)")

// findBinDir returns the directory holding initdb and postgres. pg_config is
// asked first, but on Debian it comes with libpq-dev and may name a version
// whose server is not installed, so its answer is checked.
func findBinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); isServerBinDir(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		// Newest first; "9.6" < "10" numerically.
		va, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(a)), 64)
		vb, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(b)), 64)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return strings.Compare(b, a)
	})
	for _, dir := range dirs {
		if isServerBinDir(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("pgtest: %w (looked at pg_config --bindir and /usr/lib/postgresql/*/bin)", ErrNotInstalled)
}

func isServerBinDir(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}
