package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/berth-dev/berth/store"

	"github.com/berth-dev/berth/policies/access"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/workers/scandb"
)

const adminUsage = `usage:
  berth admin reset-password [serve flags] USER     set a new random password (or $BERTH_NEW_PASSWORD)
  berth admin gc [--dry-run] [serve flags]          collect the registry's garbage now (graces: --gc-untagged-grace, --gc-blob-grace)
  berth admin scan-db build --advisories FILE --out DIR   write a Trivy DB from an advisory file
  berth admin scan-db push --from DIR --to REF [--username U] [--insecure]
                                                   push DIR/db as Trivy's DB artifact (password in $BERTH_SCAN_DB_PASSWORD)
`

func admin(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, adminUsage)
		return errors.New("admin needs a command")
	}
	switch args[0] {
	case "reset-password":
		return resetPassword(ctx, args[1:])
	case "gc":
		return collectGarbage(ctx, args[1:])
	case "scan-db":
		if len(args) >= 2 && args[1] == "push" {
			return scanDBPush(ctx, args[2:])
		}
		if len(args) < 2 || args[1] != "build" {
			return errors.New("usage: berth admin scan-db build --advisories FILE --out DIR | berth admin scan-db push --from DIR --to REF")
		}
		fs := flag.NewFlagSet("berth admin scan-db build", flag.ContinueOnError)
		adv := fs.String("advisories", "", "advisory JSON file")
		out := fs.String("out", "", "output directory (gets db/trivy.db and db/metadata.json)")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		if *adv == "" || *out == "" {
			return errors.New("--advisories and --out are required")
		}
		f, err := os.Open(*adv)
		if err != nil {
			return err
		}
		defer f.Close()
		af, err := scandb.LoadAdvisories(f)
		if err != nil {
			return err
		}
		if err := scandb.Build(ctx, af, *out); err != nil {
			return err
		}
		fmt.Printf("wrote %s/db/trivy.db (%d advisories, %d vulnerabilities)\n", *out, len(af.Advisories), len(af.Vulnerabilities))
		return nil
	default:
		fmt.Fprint(os.Stderr, adminUsage)
		return fmt.Errorf("unknown admin command %q", args[0])
	}
}

// scanDBPush packs a DB as Trivy publishes it (one layer of application/vnd.aquasec.trivy.db.layer.v1.tar+gzip
// holding trivy.db and metadata.json) and pushes it, e.g. into Berth's own registry for --scan-db-repository.
func scanDBPush(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("berth admin scan-db push", flag.ContinueOnError)
	from := fs.String("from", "", "directory holding db/trivy.db and db/metadata.json (the --out of build, or a --scan-db-dir)")
	to := fs.String("to", "", "artifact reference, e.g. 127.0.0.1:5000/mirror/trivy-db:2")
	user := fs.String("username", "", "registry user (password in $BERTH_SCAN_DB_PASSWORD)")
	insecure := fs.Bool("insecure", false, "plain HTTP (loopback and private addresses always are)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return errors.New("--from and --to are required")
	}
	d, err := scandb.Push(ctx, *from, scandb.Remote{Repository: *to, Username: *user,
		Password: os.Getenv("BERTH_SCAN_DB_PASSWORD"), Insecure: *insecure})
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", *to, d)
	return nil
}

func resetPassword(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: berth admin reset-password [--data-dir DIR | --mongo-uri URI] USER")
	}
	user := args[len(args)-1]
	cfg, err := app.ParseConfig("admin", args[:len(args)-1])
	if err != nil {
		return err
	}
	a, err := app.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	pw := os.Getenv("BERTH_NEW_PASSWORD")
	if pw == "" {
		pw = access.RandomPassword()
	}
	hash, err := access.HashPassword(pw)
	enabled := true
	if err != nil {
		return err
	}
	if _, err := a.Store.ChangeUser(ctx, user, store.UserUpdate{PasswordHash: &hash, Enabled: &enabled}); err != nil {
		return fmt.Errorf("user %s: %w", user, err)
	}
	fmt.Printf("password of %s set to: %s\n", user, pw)
	return nil
}

// collectGarbage runs one garbage collection in this process, under the same lease as the servers' runs, and
// prints its record.
func collectGarbage(ctx context.Context, args []string) error {
	dryRun := false
	var rest []string
	for _, a := range args {
		switch a {
		case "--dry-run", "-dry-run", "--dry-run=true", "-dry-run=true":
			dryRun = true
		case "--dry-run=false", "-dry-run=false":
			dryRun = false
		default:
			rest = append(rest, a)
		}
	}
	cfg, err := app.ParseConfig("admin gc", rest)
	if err != nil {
		return err
	}
	a, err := app.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	opts := a.GC.DefaultOptions()
	opts.DryRun = dryRun
	run, err := a.GC.Run(ctx, opts, "cli")
	if err != nil {
		return fmt.Errorf("garbage collection: %w", err)
	}
	what := "deleted"
	if dryRun {
		what = "would delete (dry run)"
	}
	fmt.Printf("garbage collection %s: %s %d manifests and %d blobs, %d bytes\n", run.ID, what, run.ManifestsDeleted, run.BlobsDeleted, run.BytesFreed)
	return nil
}
