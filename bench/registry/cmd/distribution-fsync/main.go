// Command distribution-fsync runs distribution/distribution v3 as its own process for bench/registry, on its
// filesystem driver with Berth's durability: distribution's driver already fsyncs a file when a writer commits
// or closes and when PutContent writes it (and PutContent's directory after the rename); this driver,
// "filesystem-fsync", also fsyncs the directory that receives a Move (a finished upload becoming a blob) and
// the parents of directories created for a Move or PutContent, as Berth's driver does, so an acknowledged push
// survives a power loss on both sides.
//
//	distribution-fsync -addr 127.0.0.1:5000 -root DIR
//
// It runs distribution's own app (handlers.NewApp) with auth off, the in-memory blob descriptor cache,
// logging at error level and no access log or tracing: its cheapest setup.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/sirupsen/logrus"
)

const driverName = "filesystem-fsync"

func init() { factory.Register(driverName, fsyncFactory{}) }

type fsyncFactory struct{}

func (fsyncFactory) Create(ctx context.Context, parameters map[string]any) (storagedriver.StorageDriver, error) {
	d, err := filesystem.FromParameters(parameters)
	if err != nil {
		return nil, err
	}
	root, _ := parameters["rootdirectory"].(string)
	if root == "" {
		return nil, errors.New("filesystem-fsync: rootdirectory is required")
	}
	return &fsyncDriver{StorageDriver: d, root: root}, nil
}

// fsyncDriver is distribution's filesystem driver whose Move and PutContent also make the new name durable.
type fsyncDriver struct {
	storagedriver.StorageDriver
	root string
}

func (d *fsyncDriver) Name() string { return driverName }

func (d *fsyncDriver) full(p string) string { return filepath.Join(d.root, filepath.FromSlash(p)) }

// missingParents lists the parents of the directories that creating dir's missing ones will change.
func (d *fsyncDriver) missingParents(dir string) []string {
	var parents []string
	for p := dir; len(p) > len(d.root); p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		parents = append(parents, filepath.Dir(p))
	}
	return parents
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (d *fsyncDriver) Move(ctx context.Context, src, dst string) error {
	dir := filepath.Dir(d.full(dst))
	parents := d.missingParents(dir)
	if err := d.StorageDriver.Move(ctx, src, dst); err != nil {
		return err
	}
	for _, p := range append([]string{dir}, parents...) {
		if err := syncDir(p); err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
	}
	return nil
}

func (d *fsyncDriver) PutContent(ctx context.Context, p string, content []byte) error {
	parents := d.missingParents(filepath.Dir(d.full(p)))
	if err := d.StorageDriver.PutContent(ctx, p, content); err != nil { // syncs the file and its directory
		return err
	}
	for _, dir := range parents {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
	}
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "listen address")
	root := flag.String("root", "", "storage directory")
	flag.Parse()
	if *root == "" {
		fmt.Fprintln(os.Stderr, "distribution-fsync: -root is required")
		os.Exit(2)
	}
	logrus.SetLevel(logrus.ErrorLevel)
	cfg := &configuration.Configuration{}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.Storage = configuration.Storage{
		driverName:    configuration.Parameters{"rootdirectory": *root},
		"cache":       configuration.Parameters{"blobdescriptor": "inmemory"},
		"delete":      configuration.Parameters{"enabled": true},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	app := handlers.NewApp(ctx, cfg)
	srv := &http.Server{Addr: *addr, Handler: app}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "distribution-fsync:", err)
		os.Exit(1)
	}
}
