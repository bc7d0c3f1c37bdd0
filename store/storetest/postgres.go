package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// startFerretOnPostgres runs a throwaway PostgreSQL cluster (Debian's postgresql package) in dir and FerretDB
// with its PostgreSQL handler in front of it: a second, independent backend for the same store tests.
func startFerretOnPostgres(dir string) (uri string, stop func(), err error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return "", nil, fmt.Errorf("PostgreSQL is not installed (apt-get install -y postgresql)")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	pgdata := filepath.Join(dir, "pgdata")
	// PostgreSQL refuses to run as root: run it as the postgres user, which owns dir.
	asPG := func(name string, args ...string) *exec.Cmd {
		if os.Getuid() == 0 {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
		return exec.Command(filepath.Join(bin, name), args...)
	}
	if os.Getuid() == 0 {
		if out, err := exec.Command("chown", "-R", "postgres:postgres", dir).CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("chown: %v: %s", err, out)
		}
	}
	if out, err := asPG("initdb", "-D", pgdata, "-U", "postgres", "--auth=trust", "-E", "UTF8").CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
	if out, err := asPG("pg_ctl", "-D", pgdata, "-o", opts, "-l", filepath.Join(dir, "pg.log"), "-w", "start").CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	stopPG := func() { _ = asPG("pg_ctl", "-D", pgdata, "-m", "immediate", "stop").Run() }
	if out, err := asPG("createdb", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-U", "postgres", "ferretdb").CombinedOutput(); err != nil {
		stopPG()
		return "", nil, fmt.Errorf("createdb: %v: %s", err, out)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:       "postgresql",
		PostgreSQLURL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/ferretdb", port),
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1})),
	})
	if err != nil {
		stopPG()
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = f.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done; stopPG() }
	for i := 0; i < 200; i++ {
		u := f.MongoDBURI()
		host := strings.TrimSuffix(strings.TrimPrefix(u, "mongodb://"), "/")
		if c, err := net.Dial("tcp", host); err == nil {
			c.Close()
			return u, stop, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("FerretDB on PostgreSQL did not start")
}
