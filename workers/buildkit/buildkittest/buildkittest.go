// Package buildkittest holds test fixtures for builds: a base image made from Debian's busybox-static (no
// public base image can be pulled here) and a reader of an image's files.
package buildkittest

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxBinary is where busybox-static installs busybox.
const BusyboxBinary = "/bin/busybox"

// BusyboxTools are linked to /bin/busybox in the base image.
var BusyboxTools = []string{"sh", "cat", "cp", "echo", "sleep", "ls", "mkdir", "env", "true", "false", "test", "wc", "date", "head"}

// BusyboxImage makes an OCI image of one layer: bin/busybox from BusyboxBinary, symlinks for BusyboxTools,
// and /tmp. It fails when busybox-static is not installed (apt-get install busybox-static).
func BusyboxImage() (v1.Image, error) {
	bb, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		return nil, fmt.Errorf("need %s (apt-get install busybox-static): %w", BusyboxBinary, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := time.Unix(0, 0)
	hdrs := []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: mod},
		{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb)), ModTime: mod},
	}
	for _, tool := range BusyboxTools {
		hdrs = append(hdrs, &tar.Header{Name: "bin/" + tool, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: mod})
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bb); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	return mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: cf.RootFS,
		Config: v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"sh"}}})
}

// Files returns the regular files of img's flattened filesystem (path without a leading slash → content),
// busybox itself left out.
func Files(img v1.Image) (map[string]string, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg || h.Name == "bin/busybox" {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[strings.TrimPrefix(h.Name, "/")] = string(b)
	}
}
