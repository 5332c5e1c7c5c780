// Command fleproxy is the field-level encryption proxy for PostgreSQL: `fleproxy serve` runs the
// proxy, `fleproxy demo` runs the quickstart, `fleproxy version` prints the build.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fleproxy:", err)
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// exitCoder is an error that chooses the process exit code.
type exitCoder interface{ ExitCode() int }

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "fleproxy",
		Short:         "Field-level encryption proxy for PostgreSQL",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand(), newVersionCommand(), newDemoCommand(), newKeysCommand(), newPolicyCommand(), newMigrateCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the fleproxy version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "fleproxy", version)
			return err
		},
	}
}
