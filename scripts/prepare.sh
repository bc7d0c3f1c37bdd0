#!/usr/bin/env bash
# prepare.sh — get what `berth serve` needs for its main job into bin/, then exit (task run then starts Berth):
#   1. runc (apt-get, when root) for BuildKit's worker;
#   2. buildkitd and buildctl from the pinned module (scripts/install-buildkit.sh);
#   3. berth-scanner (Trivy as a library, the nested module workers/scanner, GOEXPERIMENT=jsonv2);
#   4. berth itself.
# Each step shows what it does and how long it has been at it. A step whose output is up to date does
# nothing, so a second run takes seconds. A step that fails is reported and skipped: Berth still starts, and
# says at start, in /readyz and in each failed build or scan what is missing.
set -uo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir="$repo_root/bin"
log_dir="$repo_root/bin/.prepare"
mkdir -p "$bin_dir" "$log_dir"
total=$SECONDS
missing=()

# step NAME LOG CMD...: run CMD with its output in LOG, print elapsed time every 15 s while it runs.
step() {
	local name=$1 log=$2
	shift 2
	local start=$SECONDS
	echo "prepare: $name ..."
	"$@" >"$log" 2>&1 &
	local pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		for _ in $(seq 15); do
			sleep 1
			kill -0 "$pid" 2>/dev/null || break
		done
		kill -0 "$pid" 2>/dev/null && echo "prepare: $name ... $((SECONDS - start))s"
	done
	if wait "$pid"; then
		echo "prepare: $name: done in $((SECONDS - start))s"
		return 0
	fi
	echo "prepare: $name FAILED after $((SECONDS - start))s; the end of $log:" >&2
	tail -n 15 "$log" >&2
	return 1
}

# newer_sources OUT DIR...: true when OUT is missing or a Go source, go.mod or go.sum under DIRs is newer.
newer_sources() {
	local out=$1
	shift
	[[ -x "$out" ]] || return 0
	[[ -n "$(find "$@" \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$out" -print -quit 2>/dev/null)" ]]
}

# 1. runc
if ! command -v runc >/dev/null 2>&1; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		install_runc() {
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q runc ||
				{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q runc; }
		}
		step "1/4 installing runc (apt-get)" "$log_dir/runc.log" install_runc || missing+=("runc: apt-get install -y runc")
	else
		echo "prepare: 1/4 runc is missing and this is not root: builds need it (sudo apt-get install -y runc)" >&2
		missing+=("runc: sudo apt-get install -y runc")
	fi
fi

# 2. buildkitd + buildctl (the script checks the version the binaries were built from)
bk_want=$(awk '$1 == "github.com/moby/buildkit" { print $2; exit }' "$repo_root/tools/buildkit/go.mod")
bk_have=$(go version -m "$bin_dir/buildkitd" 2>/dev/null | awk '$2 == "github.com/moby/buildkit" { print $3; exit }')
bk_ctl=$(go version -m "$bin_dir/buildctl" 2>/dev/null | awk '$2 == "github.com/moby/buildkit" { print $3; exit }')
if [[ "$bk_have" != "$bk_want" || "$bk_ctl" != "$bk_want" ]]; then
	step "2/4 building buildkitd and buildctl $bk_want (minutes the first time)" "$log_dir/buildkit.log" \
		env GOFLAGS=-buildvcs=false "$repo_root/scripts/install-buildkit.sh" "$bin_dir" ||
		missing+=("buildkitd: scripts/install-buildkit.sh (see $log_dir/buildkit.log)")
fi

# 3. berth-scanner
if newer_sources "$bin_dir/berth-scanner" "$repo_root/workers/scanner"; then
	build_scanner() {
		cd "$repo_root/workers/scanner" && GOEXPERIMENT=jsonv2 go build -o "$bin_dir/berth-scanner" ./cmd/berth-scanner
	}
	step "3/4 building berth-scanner (Trivy; 5-15 minutes the first time, under a minute after)" "$log_dir/scanner.log" build_scanner ||
		missing+=("berth-scanner: task build-scanner (see $log_dir/scanner.log)")
fi

# 4. berth, when a source of the main module is newer than bin/berth
if [[ ! -x "$bin_dir/berth" || -n "$(find "$repo_root" \( -path "$repo_root/bin" -o -path "$repo_root/data" -o -name .git \) -prune -o \
	\( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$bin_dir/berth" -print -quit)" ]]; then
	build_berth() { cd "$repo_root" && go build -o "$bin_dir/berth" ./cmd/berth; }
	step "4/4 building berth" "$log_dir/berth.log" build_berth || exit 1
fi

if ((${#missing[@]} > 0)); then
	echo "prepare: Berth starts without: ${missing[*]}" >&2
fi
echo "prepare: ready in $((SECONDS - total))s"
