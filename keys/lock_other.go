//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package keys

import "os"

// Without flock, FileStore serializes writers within one process only.
func lockFile(*os.File) error   { return nil }
func unlockFile(*os.File) error { return nil }
