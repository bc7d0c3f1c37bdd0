#!/usr/bin/env bash
# install-test-deps.sh — everything the test suite runs for real, installed only when missing:
#   Debian packages: redis-server (queue), runc (BuildKit), containernetworking-plugins, nftables and iptables
#   (the build sandbox), skopeo and podman (registry clients; podman's Docker API is a second engine behind the
#   docker CLI), docker.io (the docker CLI and the real Docker Engine) when the docker CLI is missing,
#   busybox-static (test base images), git (http-backend), postgresql (FerretDB's second backend),
#   chromium (the console's browser test);
#   docker-compose (when the compose plugin is missing; validates deployments/compose.yaml);
#   Go tools: the OCI distribution conformance suite, versitygw (the S3 server of the S3 driver's tests),
#   crane, oras and cosign, buildkitd/buildctl from the pinned module, a Gitea server (bin/gitea).
# Quiet and quick when all is in place.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/firewall ]] || need+=(containernetworking-plugins) # builds' own network
command -v nft >/dev/null || need+=(nftables)
command -v iptables >/dev/null || need+=(iptables)
command -v skopeo >/dev/null || need+=(skopeo)
command -v podman >/dev/null || need+=(podman)
[[ -x /bin/busybox ]] || need+=(busybox-static)
command -v git >/dev/null || need+=(git)
command -v docker >/dev/null || need+=(docker.io) # TestDockerEngine, TestDockerCLI, the deployment image test
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql) # second store backend (FerretDB on PostgreSQL)
# deployments/compose.yaml is validated by compose itself: the docker compose plugin, or Debian's docker-compose.
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || need+=(docker-compose)
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

if ! docker info >/dev/null 2>&1; then
	echo "install-test-deps: the docker CLI cannot reach a Docker Engine (docker info fails): start dockerd" \
		"(systemctl start docker, or dockerd &); TestDockerEngine and the deployment image test need it" >&2
	exit 1
fi

gobin=$(go env GOPATH)/bin
conformance_version=v0.0.0-20260831232431-97274622c111
if ! go version -m "$gobin/conformance" 2>/dev/null | grep -q "$conformance_version"; then
	echo "install-test-deps: installing the OCI conformance suite $conformance_version"
	go install "github.com/opencontainers/distribution-spec/conformance@$conformance_version"
fi

# Registry clients (server/app/clients_test.go) and the S3 server of the S3 driver's tests.
go_tool() { # go_tool BINARY MODULE_PATH@VERSION
	if ! go version -m "$gobin/$1" 2>/dev/null | grep -q "${2##*@}"; then
		echo "install-test-deps: installing $1 ${2##*@}"
		go install "$2"
	fi
}
go_tool crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
go_tool oras oras.land/oras/cmd/oras@v1.3.6
go_tool versitygw github.com/versity/versitygw/cmd/versitygw@v1.8.0
go_tool cosign github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5 # the stock signing client (SPEC §15 tests)

"$repo_root/scripts/install-buildkit.sh"

# A real Gitea for the code-account test (server/app TestGiteaAccount); about 12 minutes the first time.
"$repo_root/scripts/install-gitea.sh"
