package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"syscall"

	"github.com/xapi-go/xapi-go/internal/memtune"
)

// command is one subcommand of xapid.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands is the subcommand table; new subcommands (e.g. `user add`,
// `schema-fields`) register here.
var commands = map[string]command{}

func init() {
	commands["serve"] = command{"run one XenAPI host (default)", runServe}
	commands["version"] = command{"print the build version", runVersion}
	commands["help"] = command{"list the subcommands", runHelp}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "xapid: unknown command %q\n\n", name)
		runHelp(ctx, nil, stderr, stderr)
		return 2
	}
	return cmd.run(ctx, args, stdout, stderr)
}

func runServe(ctx context.Context, args []string, _, stderr io.Writer) int {
	o, err := parseServeFlags(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "xapid: %v\n", err)
		return 2
	}
	log := newLogger(stderr, o.LogLevel)
	memtune.Start(memtune.Default)
	if err := serve(ctx, o, log, stderr); err != nil {
		log.Error("xapid failed", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, "xapid", version())
	return 0
}

// version is the module version and VCS revision baked into the binary.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += "+dirty"
			}
		}
	}
	return v
}

func runHelp(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, "Usage: xapid [command] [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(stdout, "  %-14s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(stdout, "\nRun `xapid COMMAND -h` for a command's flags.")
	return 0
}
