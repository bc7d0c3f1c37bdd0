package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type ociDesc struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ociManifest struct {
	SchemaVersion int       `json:"schemaVersion"`
	MediaType     string    `json:"mediaType"`
	Config        ociDesc   `json:"config"`
	Layers        []ociDesc `json:"layers"`
}

// image is a multi-layer image in an OCI layout on disk.
type image struct {
	dir    string
	tag    string
	layers []ociDesc
	bytes  int64 // layers' total size
}

// writeBlob stores b in the layout's blob directory.
func writeBlob(dir string, b []byte) (string, error) {
	dg := digestOf(b)
	return dg, os.WriteFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(dg, "sha256:")), b, 0o644)
}

// writeImage writes an OCI layout in dir holding one image tagged tag: layers layers, each a tar of one file
// of layerSize bytes from random (stamped with seed so no two images share a layer), gzip-framed without
// compression (real clients copy it as it is instead of compressing it).
func writeImage(dir, tag, seed string, layers, layerSize int, random []byte) (*image, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	img := &image{dir: dir, tag: tag}
	var diffIDs []string
	for k := range layers {
		data := random[(k*layerSize)%(len(random)-layerSize+1):][:layerSize]
		dg, diffID, size, err := writeLayer(dir, fmt.Sprintf("%s layer %d\n", seed, k), data)
		if err != nil {
			return nil, err
		}
		img.layers = append(img.layers, ociDesc{MediaType: mtLayer, Digest: dg, Size: size})
		diffIDs = append(diffIDs, diffID)
		img.bytes += size
	}
	config, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cd, err := writeBlob(dir, config)
	if err != nil {
		return nil, err
	}
	m, _ := json.Marshal(ociManifest{2, mtManifest, ociDesc{MediaType: mtConfig, Digest: cd, Size: int64(len(config))}, img.layers})
	md, err := writeBlob(dir, m)
	if err != nil {
		return nil, err
	}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []ociDesc{{MediaType: mtManifest, Digest: md, Size: int64(len(m)),
			Annotations: map[string]string{"org.opencontainers.image.ref.name": tag}}}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		return nil, err
	}
	return img, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// writeLayer writes gzip(tar(one file: stamp + data)) as a blob and returns its digest, its diff ID and size.
func writeLayer(dir, stamp string, data []byte) (dg, diffID string, size int64, err error) {
	tmp, err := os.CreateTemp(dir, "layer-")
	if err != nil {
		return "", "", 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	blobHash, tarHash := sha256.New(), sha256.New()
	counter := &countWriter{w: io.MultiWriter(tmp, blobHash)}
	zw, _ := gzip.NewWriterLevel(counter, gzip.NoCompression)
	tw := tar.NewWriter(io.MultiWriter(zw, tarHash))
	content := append([]byte(stamp), data...)
	if err := tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return "", "", 0, err
	}
	if _, err := tw.Write(content); err != nil {
		return "", "", 0, err
	}
	if err := tw.Close(); err != nil {
		return "", "", 0, err
	}
	if err := zw.Close(); err != nil {
		return "", "", 0, err
	}
	if err := tmp.Close(); err != nil {
		return "", "", 0, err
	}
	dg, diffID = hexDigest(blobHash), hexDigest(tarHash)
	return dg, diffID, counter.n, os.Rename(tmp.Name(), filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(dg, "sha256:")))
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func hexDigest(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

// toolClient runs crane or skopeo against a target.
type toolClient struct {
	name       string
	bin        string
	dockerConf string // crane's DOCKER_CONFIG directory (credentials of every target)
}

func findCrane() (string, error) {
	if p, err := exec.LookPath("crane"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", err
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "bin", "crane")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("crane not found (scripts/install-test-deps.sh installs it): %w", err)
	}
	return p, nil
}

// newTools finds crane and skopeo and writes crane's credentials for the targets that need them.
func newTools(dir string, targets []*target) ([]*toolClient, error) {
	crane, err := findCrane()
	if err != nil {
		return nil, err
	}
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		return nil, fmt.Errorf("skopeo not found (apt-get install -y skopeo): %w", err)
	}
	auths := map[string]any{}
	for _, t := range targets {
		if t.user != "" {
			for _, b := range t.bases {
				auths[strings.TrimPrefix(b, "http://")] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(t.user + ":" + t.password))}
			}
		}
	}
	conf := filepath.Join(dir, "docker-config")
	if err := os.MkdirAll(conf, 0o700); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(map[string]any{"auths": auths})
	if err := os.WriteFile(filepath.Join(conf, "config.json"), b, 0o600); err != nil {
		return nil, err
	}
	return []*toolClient{{name: "crane", bin: crane, dockerConf: conf}, {name: "skopeo", bin: skopeo}}, nil
}

func (c *toolClient) run(args ...string) error {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = os.Environ()
	if c.dockerConf != "" {
		cmd.Env = append(cmd.Env, "DOCKER_CONFIG="+c.dockerConf)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", c.name, strings.Join(args, " "), err, tail(out, 4000))
	}
	return nil
}

// push copies img from its layout to the target's first replica as repo:img.tag.
func (c *toolClient) push(t *target, img *image) error {
	ref := strings.TrimPrefix(t.bases[0], "http://") + "/" + repo + ":" + img.tag
	if c.name == "crane" {
		return c.run("push", "--insecure", img.dir, ref)
	}
	args := []string{"--insecure-policy", "copy", "--dest-tls-verify=false"}
	if t.user != "" {
		args = append(args, "--dest-creds", t.user+":"+t.password)
	}
	return c.run(append(args, "oci:"+img.dir+":"+img.tag, "docker://"+ref)...)
}

// pull copies repo:img.tag from the target's last replica into a new OCI layout in dir and checks that it
// holds every layer, whole.
func (c *toolClient) pull(t *target, img *image, dir string) error {
	ref := strings.TrimPrefix(t.bases[len(t.bases)-1], "http://") + "/" + repo + ":" + img.tag
	var err error
	if c.name == "crane" {
		err = c.run("pull", "--insecure", "--format", "oci", ref, dir)
	} else {
		args := []string{"--insecure-policy", "copy", "--src-tls-verify=false"}
		if t.user != "" {
			args = append(args, "--src-creds", t.user+":"+t.password)
		}
		err = c.run(append(args, "docker://"+ref, "oci:"+dir+":"+img.tag)...)
	}
	if err != nil {
		return err
	}
	for _, l := range img.layers {
		fi, err := os.Stat(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(l.Digest, "sha256:")))
		if err != nil || fi.Size() != l.Size {
			return fmt.Errorf("%s pull: layer %s missing or short in %s: %v", c.name, l.Digest, dir, err)
		}
	}
	return nil
}
