#!/usr/bin/env bash
# install-bench-deps.sh — what `task bench` needs beyond the test dependencies: the pinned Trivy CLI, which the
# full scan benchmark (server TestScanBench300MB with BERTH_SCAN_BENCH=1) times beside Berth's scanner.
# Slow the first time (Trivy compiles for minutes); quiet when in place.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo_root/scripts/install-test-deps.sh"
gobin=$(go env GOPATH)/bin
trivy_version=v0.74.0
if ! go version -m "$gobin/trivy" 2>/dev/null | grep -q "$trivy_version"; then
	echo "install-bench-deps: installing the trivy CLI $trivy_version (minutes)"
	GOEXPERIMENT=jsonv2 go install "github.com/aquasecurity/trivy/cmd/trivy@$trivy_version"
fi
