package reference

import (
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	good := []string{
		"sha256:" + strings.Repeat("a", 64),
		"sha512:" + strings.Repeat("0", 128),
	}
	for _, s := range good {
		d, err := Parse(s)
		if err != nil || d.String() != s {
			t.Errorf("Parse(%q) = %v, %v", s, d, err)
		}
	}
	bad := []string{
		"", "sha256", "sha256:", ":abc",
		"sha256:../../etc",
		"sha256:" + strings.Repeat("A", 64),
		"sha256:" + strings.Repeat("a", 63),
		"sha256:" + strings.Repeat("a", 128),
		"sha512:" + strings.Repeat("a", 64),
		"sha256:baddigeststring",
		"SHA256:" + strings.Repeat("a", 64),
		"sha256:" + strings.Repeat("a", 63) + "/",
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"../sha256:" + strings.Repeat("a", 64),
	}
	for _, s := range bad {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

func TestFromBytes(t *testing.T) {
	if got := FromBytes(SHA256, nil).String(); got != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatal(got)
	}
	if got := FromBytes(SHA512, nil).Hex(); !strings.HasPrefix(got, "cf83e1357eefb8bd") {
		t.Fatal(got)
	}
}

func TestValidName(t *testing.T) {
	good := []string{"a", "ns/repo", "a/b/c", "a.b", "a_b", "a__b", "a---b", "library/busybox", "conformance/repo1", "x0/y-1.z"}
	for _, s := range good {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	bad := []string{"", "../x", "a/../../b", "%2e%2e", "..", ".", "a/./b", "A/b", "a//b", "/a", "a/", "a___b", "-a", "a-", "a.", ".a", "a..b", "a/b\x00", "a b", "a:b", strings.Repeat("a", 256)}
	for _, s := range bad {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

func TestValidTag(t *testing.T) {
	for _, s := range []string{"latest", "v1.0", "_x", "A-b_c.d", strings.Repeat("a", 128)} {
		if !ValidTag(s) {
			t.Errorf("ValidTag(%q) = false", s)
		}
	}
	for _, s := range []string{"", ".x", "-x", "a/b", "..", "a:b", strings.Repeat("a", 129), "sha256:abc"} {
		if ValidTag(s) {
			t.Errorf("ValidTag(%q) = true", s)
		}
	}
}
