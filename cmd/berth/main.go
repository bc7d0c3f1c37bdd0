// Command berth is the whole of Berth in one binary: `berth serve` runs the API, the registry and the
// pipeline workers; `berth worker` runs only workers for chosen queues (e.g. on an overseas machine);
// `berth admin` holds operator tools.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: berth <command> [flags]

commands:
  serve    run the API, the registry and the workers (all-in-one on embedded defaults)
  worker   run pipeline workers only (--queues default,overseas …)
  admin    operator tools: reset-password, scan-db build
  version  print the version

Run "berth <command> -h" for the flags of a command.
`

var version = "dev"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "worker":
		err = worker(ctx, os.Args[2:])
	case "admin":
		err = admin(ctx, os.Args[2:])
	case "version", "--version":
		fmt.Println("berth", version)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "berth: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(1)
	}
}
