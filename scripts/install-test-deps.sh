#!/usr/bin/env bash
# install-test-deps.sh — everything the test suite runs for real, installed only when missing:
#   Debian packages: redis-server (queue), runc (BuildKit), skopeo and podman (registry clients; podman stands
#   in for the Docker engine behind the docker CLI), busybox-static (test base images), git (http-backend), postgresql (FerretDB's second backend),
#   chromium (the console's browser test);
#   Go tools: the OCI distribution conformance suite, buildkitd/buildctl from the pinned module.
# Quiet and quick when all is in place.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v runc >/dev/null || need+=(runc)
command -v skopeo >/dev/null || need+=(skopeo)
command -v podman >/dev/null || need+=(podman)
[[ -x /bin/busybox ]] || need+=(busybox-static)
command -v git >/dev/null || need+=(git)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql) # second store backend (FerretDB on PostgreSQL)
command -v chromium >/dev/null || need+=(chromium) # the console's browser test (headless, driven by chromedp)
if ((${#need[@]} > 0)); then
	if [[ $(id -u) != 0 ]]; then
		echo "install-test-deps: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
		exit 1
	fi
	echo "install-test-deps: apt-get install ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

gobin=$(go env GOPATH)/bin
conformance_version=v0.0.0-20260831232431-97274622c111
if ! go version -m "$gobin/conformance" 2>/dev/null | grep -q "$conformance_version"; then
	echo "install-test-deps: installing the OCI conformance suite $conformance_version"
	go install "github.com/opencontainers/distribution-spec/conformance@$conformance_version"
fi

"$repo_root/scripts/install-buildkit.sh"
