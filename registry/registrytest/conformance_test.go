package registrytest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCheckConformanceResults(t *testing.T) {
	suite := func(tests, failures, disabled int, cases string) string {
		return `<testsuites><testsuite name="OCI Conformance Test" tests="` + strconv.Itoa(tests) + `" failures="` + strconv.Itoa(failures) +
			`" errors="0" disabled="` + strconv.Itoa(disabled) + `">` + cases + `</testsuite></testsuites>`
	}
	pass := `<testcase name="a" status="passed"></testcase><testcase name="b" status="skipped"></testcase>`
	for _, c := range []struct {
		name, version, xml, want string
	}{
		{"stable, all ran", "1.1", suite(862, 0, 2, pass), ""},
		{"dev, all ran", "dev", suite(986, 0, 0, pass), ""},
		{"no results", "1.1", "", "wrote no junit.xml"},
		{"failures", "1.1", suite(862, 1, 2, `<testcase name="push blob" status="failed"><failure message="x"></failure></testcase>`), "push blob (failed)"},
		{"fewer specs (an option off)", "1.1", suite(700, 0, 162, pass), "ran 538 specs"},
		{"dev counted as stable", "1.1", suite(986, 0, 0, pass), "ran 986 specs"},
		{"garbage", "dev", "<testsuites", "junit.xml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.xml != "" {
				if err := os.WriteFile(filepath.Join(dir, "junit.xml"), []byte(c.xml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckConformanceResults(dir, c.version)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}
