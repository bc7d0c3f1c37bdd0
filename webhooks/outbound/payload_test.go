package outbound

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"
)

// The SPEC §8 example, reproduced from its inputs.
func specPayload(t *testing.T) Payload {
	t.Helper()
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		shanghai = time.FixedZone("CST", 8*3600) // no tzdata on this machine
	}
	return NewPayload(Repo{
		Namespace: "namespace",
		Name:      "repoTest",
		Region:    "cn-hangzhou",
		Public:    true,
		CreatedAt: time.Date(2016, 10, 28, 13, 31, 42, 0, time.UTC),
	},
		"sha256:457f4aa83fc9a6663ab9d1b0a6e2dce25a12a943ed5bf2c1747c58d48bbb4917",
		"latest",
		time.Date(2016, 11, 29, 4, 25, 46, 999, time.UTC),
		shanghai)
}

func TestPayloadGolden(t *testing.T) {
	got, err := specPayload(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/payload.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("payload\n got %s\nwant %s", got, want)
	}
}

func TestPayloadFieldSet(t *testing.T) {
	body, err := specPayload(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var k []string
		for key, v := range m {
			if _, ok := v.(string); !ok {
				t.Errorf("%s is %T, want a string", key, v)
			}
			k = append(k, key)
		}
		slices.Sort(k)
		return k
	}
	if len(m) != 2 {
		t.Errorf("top-level keys: %v", m)
	}
	if got := keys(m["push_data"]); !slices.Equal(got, []string{"digest", "pushed_at", "tag"}) {
		t.Errorf("push_data keys %v", got)
	}
	want := []string{"date_created", "name", "namespace", "region", "repo_authentication_type", "repo_full_name", "repo_origin_type", "repo_type"}
	if got := keys(m["repository"]); !slices.Equal(got, want) {
		t.Errorf("repository keys %v", got)
	}
}

func TestPayloadDefaults(t *testing.T) {
	p := NewPayload(Repo{Namespace: "ns", Name: "app<&>", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		"sha256:00", "v1", time.Date(2026, 1, 2, 3, 4, 6, 0, time.FixedZone("X", 3600)), nil)
	if p.Repository.RepoType != RepoTypePrivate {
		t.Errorf("repo_type %q, want PRIVATE by default", p.Repository.RepoType)
	}
	if p.PushData.PushedAt != "2026-01-02 02:04:06" || p.Repository.DateCreated != "2026-01-02 03:04:05" {
		t.Errorf("nil location should mean UTC: %+v", p)
	}
	body, _ := p.Marshal()
	if !bytes.Contains(body, []byte(`"name":"app<&>"`)) {
		t.Errorf("HTML-escaped body: %s", body)
	}
}

func TestSign(t *testing.T) {
	body := []byte(`{"push_data":{}}`)
	sig := Sign([]byte("s3cret"), body)
	// printf '%s' '{"push_data":{}}' | openssl dgst -sha256 -hmac s3cret
	if sig != "sha256=0ec5f2eb1e4127968b6529c96062965afe410ff8db6fca05494d8048d8967caa" {
		t.Fatalf("Sign = %s", sig)
	}
	if !VerifySignature([]byte("s3cret"), body, sig) {
		t.Fatalf("signature %s does not verify", sig)
	}
	for _, bad := range []string{"", sig[7:], "sha1=" + sig[7:], sig[:len(sig)-1], Sign([]byte("other"), body)} {
		if VerifySignature([]byte("s3cret"), body, bad) {
			t.Errorf("%q verified", bad)
		}
	}
}
