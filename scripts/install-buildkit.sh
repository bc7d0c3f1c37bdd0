#!/usr/bin/env bash
# install-buildkit.sh [BIN_DIR] — build buildkitd and buildctl from the pinned
# module in tools/buildkit into BIN_DIR (default: <repo>/bin), and install runc
# and the build sandbox's packages (containernetworking-plugins, nftables,
# iptables: builds run in a network of their own) when they are missing. Does
# nothing (and prints nothing) when all is in place.
#
# The binaries are rebuilt only when missing or when they were built from a
# different BuildKit version than the one pinned in tools/buildkit/go.mod.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools_dir="$repo_root/tools/buildkit"
bin_dir=${1:-"$repo_root/bin"}

want=$(awk '$1 == "github.com/moby/buildkit" { print $2; exit }' "$tools_dir/go.mod")
if [[ -z "$want" ]]; then
	echo "install-buildkit: github.com/moby/buildkit is not pinned in $tools_dir/go.mod" >&2
	exit 1
fi

# built_version prints the BuildKit module version a binary was built from,
# or nothing when the binary is missing or not a Go binary.
built_version() {
	[[ -x "$1" ]] || return 0
	go version -m "$1" 2>/dev/null |
		awk '($1 == "dep" || $1 == "mod") && $2 == "github.com/moby/buildkit" { print $3; exit }'
}

stale=()
for cmd in buildkitd buildctl; do
	if [[ "$(built_version "$bin_dir/$cmd")" != "$want" ]]; then
		stale+=("github.com/moby/buildkit/cmd/$cmd")
	fi
done

if ((${#stale[@]} > 0)); then
	mkdir -p "$bin_dir"
	bin_dir=$(cd "$bin_dir" && pwd)
	echo "install-buildkit: building ${stale[*]##*/} $want into $bin_dir (the first build takes minutes)"
	start=$SECONDS
	(
		cd "$tools_dir"
		GOFLAGS=-buildvcs=false go build -trimpath \
			-ldflags "-s -w -X github.com/moby/buildkit/version.Version=$want" \
			-o "$bin_dir/" "${stale[@]}"
	)
	echo "install-buildkit: built in $((SECONDS - start))s"
fi

pkgs=()
command -v runc >/dev/null 2>&1 || pkgs+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback && -x /usr/lib/cni/firewall ]] ||
	pkgs+=(containernetworking-plugins)
command -v nft >/dev/null 2>&1 || pkgs+=(nftables)
command -v iptables >/dev/null 2>&1 || pkgs+=(iptables)
command -v ip >/dev/null 2>&1 || pkgs+=(iproute2)                                   # buildkitd's own network namespace
command -v nsenter >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1 || pkgs+=(util-linux)
[[ -x /usr/lib/cni/tuning ]] || pkgs+=(containernetworking-plugins)                # IPv6 off in build namespaces
if ((${#pkgs[@]} > 0)); then
	if [[ $(id -u) -eq 0 ]]; then
		echo "install-buildkit: installing ${pkgs[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null ||
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null; }
	else
		echo "install-buildkit: ${pkgs[*]} missing; run as root: apt-get install -y ${pkgs[*]}" >&2
		exit 1
	fi
fi
