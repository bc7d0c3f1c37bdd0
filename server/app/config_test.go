package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(file, []byte("region: from-file\naddr: 127.0.0.1:7000\nnamespace-limit: 9\n"+
		"mongo-uri: mongodb://file\ntrigger-allow-cidr: [10.0.0.0/8, 192.168.0.0/16]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_REGION", "from-env")
	t.Setenv("BERTH_REDIS_ADDR", "127.0.0.1:6390")
	t.Setenv("BERTH_MASTER_KEY", "ab12")
	c, err := ParseConfig("serve", []string{"--config", file, "--addr", "127.0.0.1:7001"})
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]string{
		"addr (flag beats file)":  {c.Addr, "127.0.0.1:7001"},
		"region (env beats file)": {c.Region, "from-env"},
		"redis (env)":             {c.RedisAddr, "127.0.0.1:6390"},
		"mongo (file)":            {c.MongoURI, "mongodb://file"},
		"data dir (default)":      {c.DataDir, "./data"},
		"allow list (file, list)": {c.TriggerAllow.String(), "10.0.0.0/8,192.168.0.0/16"},
		"master key (env)":        {c.MasterKey, "ab12"},
	}
	for what, v := range checks {
		if v[0] != v[1] {
			t.Errorf("%s: got %q, want %q", what, v[0], v[1])
		}
	}
	if c.NamespaceLimit != 9 {
		t.Errorf("namespace-limit from file: %d", c.NamespaceLimit)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("data_dir: /x\n"), 0o600)
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--config", bad}, nil, `unknown key "data_dir"`},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, nil, "read --config"},
		{[]string{"--namespace-limit", "many"}, nil, "namespace-limit"},
		{nil, map[string]string{"BERTH_NAMESPACE_LIMIT": "x"}, "namespace_limit"},
		{[]string{"stray"}, nil, `unexpected argument "stray"`},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		_, err := ParseConfig("serve", c.args)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(c.want)) {
			t.Errorf("%v %v: got %v, want an error containing %q", c.args, c.env, err, c.want)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}

func TestCheckQueues(t *testing.T) {
	for _, c := range []struct{ cmd, queues, err string }{
		{"serve", "", ""},
		{"serve", "none", ""},
		{"serve", "default,overseas", ""},
		{"serve", "none,default", `--queues "none,default": none means no build queue, so it cannot stand beside others`},
		{"worker", "none", "--queues none: a berth worker with no build queue does nothing; name its queues, e.g. --queues default"},
		{"worker", "overseas", ""},
	} {
		err := CheckQueues(c.cmd, c.queues)
		if got := fmt.Sprint(err); (c.err == "" && err != nil) || (c.err != "" && got != c.err) {
			t.Errorf("%s --queues %q: %v, want %q", c.cmd, c.queues, err, c.err)
		}
	}
}

// TestPublicAndInternalURL: --trusted-proxy is repeatable and comma-separated in BERTH_TRUSTED_PROXY; with a
// wildcard --addr and no --public-url, the public URL is each request's own and builds and the scanner use
// the listener on loopback; --public-url wins over both.
func TestPublicAndInternalURL(t *testing.T) {
	t.Setenv("BERTH_TRUSTED_PROXY", "10.0.0.0/8, 192.0.2.7")
	c, err := ParseConfig("serve", nil)
	if err != nil || c.TrustedProxy.String() != "10.0.0.0/8,192.0.2.7" {
		t.Fatalf("BERTH_TRUSTED_PROXY: %v %v", c.TrustedProxy, err)
	}
	if c, _ := ParseConfig("serve", []string{"--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "fd00::/64"}); c.TrustedProxy.String() != "10.0.0.0/8,fd00::/64" {
		t.Fatalf("repeated --trusted-proxy: %v", c.TrustedProxy)
	}
	for _, c := range []struct{ addr, public, wantPublic, wantInternal string }{
		{"127.0.0.1:5000", "", "http://127.0.0.1:5000", "http://127.0.0.1:5000"},
		{"0.0.0.0:5000", "", "", "http://127.0.0.1:5000"},
		{"[::]:5000", "", "", "http://127.0.0.1:5000"},
		{":5000", "", "", "http://127.0.0.1:5000"},
		{"0.0.0.0:5000", "https://registry.example.com/", "https://registry.example.com", "https://registry.example.com"},
	} {
		cfg := &Config{Addr: c.addr, PublicURL: c.public}
		u, err := cfg.internalURL()
		if got := cfg.publicURL(); got != c.wantPublic || err != nil || u.String() != c.wantInternal {
			t.Errorf("--addr %s --public-url %q: public %q, internal %v %v; want %q, %q", c.addr, c.public, got, u, err, c.wantPublic, c.wantInternal)
		}
	}
}
