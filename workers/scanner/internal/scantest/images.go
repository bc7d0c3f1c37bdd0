package scantest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// APKPackage is one entry of /lib/apk/db/installed.
type APKPackage struct {
	Name, Version, Origin string
}

// APKInstalled renders an apk installed database.
func APKInstalled(pkgs ...APKPackage) string {
	var b strings.Builder
	for _, p := range pkgs {
		origin := p.Origin
		if origin == "" {
			origin = p.Name
		}
		fmt.Fprintf(&b, "C:Q1%s=\nP:%s\nV:%s\nA:x86_64\nS:1000\nI:2000\nT:%s\nU:https://example.org/\nL:MIT\no:%s\n\n",
			strings.Repeat("A", 27), p.Name, p.Version, p.Name, origin)
	}
	return b.String()
}

// Alpine322 returns the files of a minimal Alpine 3.22.0 root with these apk packages installed.
func Alpine322(pkgs ...APKPackage) map[string]string {
	return map[string]string{
		"etc/alpine-release":   "3.22.0\n",
		"etc/os-release":       "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.22.0\nPRETTY_NAME=\"Alpine Linux v3.22\"\n",
		"lib/apk/db/installed": APKInstalled(pkgs...),
		"etc/apk/world":        "",
		"usr/share/doc/README": "scantest\n",
	}
}

// NodeModule returns the package.json of an npm package installed under /app/node_modules.
func NodeModule(name, version string) map[string]string {
	return map[string]string{
		"app/node_modules/" + name + "/package.json": fmt.Sprintf(`{"name": %q, "version": %q, "license": "MIT"}`, name, version),
		"app/package.json":                           fmt.Sprintf(`{"name": "app", "version": "1.0.0", "dependencies": {%q: %q}}`, name, version),
	}
}

// Merge combines file maps; later ones win.
func Merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// Image builds a linux/amd64 image with one layer per file map.
func Image(layers ...map[string]string) (v1.Image, error) {
	var ls []v1.Layer
	for _, files := range layers {
		var buf bytes.Buffer
		if err := writeTar(&buf, files); err != nil {
			return nil, err
		}
		data := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		})
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	return withLayers(ls...)
}

// BigImage builds an image with a single layer holding files plus size bytes of random (incompressible)
// data split into count files under /opt/data (count 1: /opt/data/blob.bin). The gzipped layer is written
// under dir.
func BigImage(dir string, size int64, count int, files map[string]string) (v1.Image, error) {
	p := filepath.Join(dir, "big-layer.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	rnd := rand.NewChaCha8([32]byte{1, 2, 3})
	var big []bigFile
	if count <= 1 {
		big = append(big, bigFile{name: "opt/data/blob.bin", size: size, r: rnd})
	} else {
		for i := range count {
			big = append(big, bigFile{name: fmt.Sprintf("opt/data/%03d/file%05d.bin", i/1000, i), size: size / int64(count), r: rnd})
		}
	}
	err = writeTar(zw, files, big...)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromFile(p)
	if err != nil {
		return nil, err
	}
	return withLayers(l)
}

type bigFile struct {
	name string
	size int64
	r    io.Reader
}

func withLayers(ls ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cf.Config.Cmd = []string{"/bin/sh"}
	return mutate.ConfigFile(img, cf)
}

func writeTar(w io.Writer, files map[string]string, big ...bigFile) error {
	tw := tar.NewWriter(w)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	mkdirs := func(name string) error {
		var parents []string
		for d := path.Dir(name); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
			dirs[d] = true
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: parents[i] + "/", Mode: 0o755}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		if err := mkdirs(n); err != nil {
			return err
		}
		c := files[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(c))}); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, c); err != nil {
			return err
		}
	}
	for _, b := range big {
		if err := mkdirs(b.name); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: b.name, Mode: 0o644, Size: b.size}); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, b.r, b.size); err != nil {
			return err
		}
	}
	return tw.Close()
}
