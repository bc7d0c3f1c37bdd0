#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance suite against Berth's registry
# (registry/cmd/regserve, token auth, user conformance/conformance-pass).
#   registry/testdata/run-conformance.sh            # stable 1.1 defaults
#   OCI_VERSION=dev registry/testdata/run-conformance.sh
# Results land in ${OCI_RESULTS_DIR:-./conformance-results}. Exit code is the suite's.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODULE=github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111
BIN=${OCI_CONFORMANCE_BIN:-$(command -v conformance || echo "$(go env GOPATH)/bin/conformance")}
if [ ! -x "$BIN" ]; then
  go install "$MODULE"
  BIN="$(go env GOPATH)/bin/conformance"
fi
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
go build -o "$WORK/regserve" ./registry/cmd/regserve
PORT=${PORT:-$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')}
"$WORK/regserve" -addr "127.0.0.1:$PORT" -root "$WORK/root" >"$WORK/regserve.log" 2>&1 &
PID=$!
for _ in $(seq 50); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/token" && break; sleep 0.1; done
RESULTS=${OCI_RESULTS_DIR:-$PWD/conformance-results}
mkdir -p "$RESULTS"
(cd "$WORK" && env OCI_REGISTRY="127.0.0.1:$PORT" OCI_TLS=disabled \
  OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2 \
  OCI_USERNAME=conformance OCI_PASSWORD=conformance-pass \
  OCI_RESULTS_DIR="$RESULTS" OCI_VERSION="${OCI_VERSION:-1.1}" "$BIN")
