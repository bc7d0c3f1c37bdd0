// Package deployments_test checks that the files in deployments/ parse, say only what Berth understands, and
// (the BuildKit config) start the daemon they are for.
package deployments_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/workers/buildkit"
)

// checkBerthEnv parses a container's BERTH_* environment and arguments as `berth serve` does, and fails on a
// variable that names no flag.
func checkBerthEnv(t *testing.T, where string, env map[string]string, args []string) *app.Config {
	t.Helper()
	return checkBerthSettings(t, where, "serve", env, args)
}

// checkBerthSettings parses a container's BERTH_* environment and arguments as `berth command` does (serve or
// worker, whose flags are the same), with no other BERTH_* variable set, and fails on a variable that names
// no flag.
func checkBerthSettings(t *testing.T, where, command string, env map[string]string, args []string) *app.Config {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "BERTH_") {
			t.Setenv(k, "") // restored when the test ends
			os.Unsetenv(k)
		}
	}
	fs := (&app.Config{}).Flags(command)
	for k, v := range env {
		switch k {
		case "BERTH_ADMIN_PASSWORD", "BERTH_SCAN_DB_PASSWORD":
			continue // secrets Berth reads from the environment only, never from a flag
		}
		name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "BERTH_")), "_", "-")
		if !strings.HasPrefix(k, "BERTH_") || fs.Lookup(name) == nil {
			t.Errorf("%s: %s is not a berth %s setting", where, k, command)
			continue
		}
		t.Setenv(k, v)
	}
	cfg, err := app.ParseConfig(command, args)
	for k := range env {
		os.Unsetenv(k)
	}
	if err != nil {
		t.Fatalf("%s: berth %s would refuse its settings: %v", where, command, err)
	}
	return cfg
}

func TestExampleConfig(t *testing.T) {
	cfg, err := app.ParseConfig("serve", []string{"--config", "berth.example.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "0.0.0.0:5000" || cfg.RedisAddr != "redis://redis:6379/0" || cfg.NamespaceLimit != 10 ||
		len(cfg.TriggerAllow) != 1 || cfg.TriggerAllow[0] != "10.20.0.0/16" || cfg.LogFormat != "json" {
		t.Errorf("berth.example.yaml read as %+v", cfg)
	}
}

func TestCompose(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
			Command     []string          `yaml:"command"`
		} `yaml:"services"`
	}
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	berth, ok := c.Services["berth"]
	if !ok {
		t.Fatalf("compose.yaml has no berth service: %v", c.Services)
	}
	env := map[string]string{}
	for k, v := range berth.Environment {
		env[k] = os.Expand(v, func(string) string { return "x" }) // ${VAR:-default} forms: any value
	}
	cfg := checkBerthEnv(t, "compose.yaml", env, nil)
	if cfg.MongoURI == "" || cfg.RedisAddr == "" || cfg.BuildkitAddr == "" {
		t.Errorf("compose.yaml leaves Berth on embedded services: %+v", cfg)
	}
	for _, svc := range []string{"mongo", "redis", "buildkitd"} {
		if _, ok := c.Services[svc]; !ok {
			t.Errorf("compose.yaml has no %s service", svc)
		}
	}

	// docker compose's own validation, with and without the required administrator password.
	compose := []string{"docker", "compose"}
	if exec.Command("docker", "compose", "version").Run() != nil {
		compose = []string{"docker-compose"} // Debian's docker-compose package
		if _, err := exec.LookPath("docker-compose"); err != nil {
			t.Fatal("neither docker compose nor docker-compose is installed: scripts/install-test-deps.sh installs docker-compose")
		}
	}
	run := func(env ...string) (string, error) {
		cmd := exec.Command(compose[0], append(compose[1:], "-f", "compose.yaml", "config", "-q")...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("BERTH_ADMIN_PASSWORD=x"); err != nil {
		t.Errorf("docker compose config: %v\n%s", err, out)
	}
	if out, err := run("BERTH_ADMIN_PASSWORD="); err == nil || !strings.Contains(out, "set an administrator password") {
		t.Errorf("docker compose config without BERTH_ADMIN_PASSWORD: %v\n%s", err, out)
	}
}

func TestKubernetes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("kubernetes", "berth.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type doc struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		StringData map[string]string `yaml:"stringData"`
		Spec       struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args    []string `yaml:"args"`
						EnvFrom []struct {
							SecretRef struct {
								Name string `yaml:"name"`
							} `yaml:"secretRef"`
						} `yaml:"envFrom"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(false)
	var docs []doc
	for {
		var d doc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("kubernetes/berth.yaml document %d: %v", len(docs)+1, err)
		}
		if d.APIVersion == "" || d.Kind == "" || d.Metadata.Name == "" {
			t.Errorf("document %d lacks apiVersion, kind or metadata.name: %+v", len(docs)+1, d)
		}
		docs = append(docs, d)
	}
	secrets := map[string]map[string]string{}
	var deployment *doc
	for i, d := range docs {
		switch d.Kind {
		case "Secret":
			secrets[d.Metadata.Name] = d.StringData
		case "Deployment":
			if d.Metadata.Name == "berth" {
				deployment = &docs[i]
			}
		}
	}
	if deployment == nil || len(deployment.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("no Deployment named berth with one container in kubernetes/berth.yaml")
	}
	c := deployment.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" || len(c.EnvFrom) != 1 {
		t.Fatalf("container: %+v", c)
	}
	env, ok := secrets[c.EnvFrom[0].SecretRef.Name]
	if !ok {
		t.Fatalf("the Deployment reads Secret %q, which is not in the file", c.EnvFrom[0].SecretRef.Name)
	}
	cfg := checkBerthEnv(t, "kubernetes/berth.yaml", env, c.Args[1:])
	if !strings.HasPrefix(cfg.RedisAddr, "redis-sentinel://") || cfg.MongoURI == "" || cfg.BuildkitAddr == "" {
		t.Errorf("kubernetes/berth.yaml read as %+v", cfg)
	}
}

// TestBuildkitdConfig starts the pinned buildkitd with deployments/buildkitd.toml (socket and root moved into
// a temporary directory by flags, which override the file) and waits until it answers.
func TestBuildkitdConfig(t *testing.T) {
	bin, err := buildkit.FindBinary()
	if err != nil {
		t.Fatalf("%v (scripts/install-test-deps.sh installs buildkitd and runc)", err)
	}
	raw, err := os.ReadFile("buildkitd.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "bkconf")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// The file names the operator's CNI conflist; point it at one in the temporary directory, and start no
	// network namespaces ahead (pool 0), so the test leaves no bridge behind.
	conflist := filepath.Join(dir, "berth.conflist")
	if err := os.WriteFile(conflist, []byte(`{"cniVersion": "1.0.0", "name": "berth-conf-test", "plugins": [
  {"type": "bridge", "bridge": "bkconftest0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.213.254.0/24"}]]}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for old, repl := range map[string]string{`"/etc/berth/cni/berth.conflist"`: strconv.Quote(conflist), "cniPoolSize = 2": "cniPoolSize = 0"} {
		if !strings.Contains(text, old) {
			t.Fatalf("deployments/buildkitd.toml no longer has %s", old)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	conf := filepath.Join(dir, "buildkitd.toml")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "unix://" + filepath.Join(dir, "bk.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config", conf, "--addr", addr, "--root", filepath.Join(dir, "root"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		cancel()
		<-exited
	}()
	buildctl := filepath.Join(filepath.Dir(bin), "buildctl")
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("buildkitd with deployments/buildkitd.toml exited: %v\n%s", waitErr, out.String())
		default:
		}
		ans, err := exec.Command(buildctl, "--addr", addr, "debug", "workers", "--verbose").CombinedOutput()
		if err == nil {
			// The file's worker and GC settings are the daemon's (reservedSpace = "2GB").
			if !regexp.MustCompile(`worker\.snapshotter:\s+overlayfs`).Match(ans) || !regexp.MustCompile(`Reserved space:\s+2\.147483648GB`).Match(ans) {
				t.Errorf("buildctl debug workers: %s", ans)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("buildkitd not answering within 30s: %v %s\n%s", err, ans, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
