package pgtest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// Main is for a package's TestMain: starts one cluster, stores it in *c,
// runs m, stops it, and exits with m's code. If the cluster cannot start —
// including when the PostgreSQL binaries are missing — it exits non-zero
// with the reason; it never skips. When tests fail it prints the tail of
// the server log.
func Main(m *testing.M, c **Cluster) {
	os.Exit(run(m, c))
}

func run(m *testing.M, c **Cluster) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cluster, err := Start(ctx, Options{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot start the test PostgreSQL cluster: %v\n", err)
		return 1
	}
	*c = cluster
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- tail of the test PostgreSQL log (%s):\n%s\n---\n", cluster.LogFile, cluster.logTail())
	}
	if err := cluster.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: stop the test PostgreSQL cluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
