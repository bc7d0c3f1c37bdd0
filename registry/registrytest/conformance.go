package registrytest

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ConformanceSpecs is how many specs the pinned OCI conformance suite runs against a registry that enables every
// API and data option (sha512 and referrers included), per OCI_VERSION: the stable 1.1 run has 862 specs of which
// 2 are disabled, the dev run 986. A change of the pinned suite changes these figures on purpose.
var ConformanceSpecs = map[string]int{"1.1": 860, "dev": 986}

type junitReport struct {
	Suites []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Errors   int    `xml:"errors,attr"`
		Disabled int    `xml:"disabled,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Status  string    `xml:"status,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// CheckConformanceResults reads the junit.xml the conformance suite wrote into its OCI_RESULTS_DIR and checks
// that it ran exactly ConformanceSpecs[version] specs with no failure and no error. The suite's exit status alone
// proves nothing: it exits 0 when its configuration fails to load and it runs nothing.
func CheckConformanceResults(resultsDir, version string) error {
	want, ok := ConformanceSpecs[version]
	if !ok {
		return fmt.Errorf("no expected spec count for OCI_VERSION=%q", version)
	}
	b, err := os.ReadFile(filepath.Join(resultsDir, "junit.xml"))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the conformance suite wrote no junit.xml in %s: it ran nothing (did its configuration load?)", resultsDir)
	}
	if err != nil {
		return err
	}
	var rep junitReport
	if err := xml.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("conformance junit.xml: %w", err)
	}
	if len(rep.Suites) != 1 {
		return fmt.Errorf("conformance junit.xml has %d test suites, want 1", len(rep.Suites))
	}
	s := rep.Suites[0]
	var failed []string
	for _, c := range s.Cases {
		if c.Failure != nil || c.Error != nil || (c.Status != "passed" && c.Status != "skipped") {
			failed = append(failed, fmt.Sprintf("%s (%s)", c.Name, c.Status))
		}
	}
	if s.Failures != 0 || s.Errors != 0 || len(failed) > 0 {
		return fmt.Errorf("conformance %s: %d failures, %d errors:\n%s", version, s.Failures, s.Errors, strings.Join(failed, "\n"))
	}
	if ran := s.Tests - s.Disabled; ran != want {
		return fmt.Errorf("conformance %s ran %d specs (%d, %d disabled), want %d: is every API and data option on?", version, ran, s.Tests, s.Disabled, want)
	}
	return nil
}
