#!/usr/bin/env bash
# install-gitea.sh [BIN_DIR] — build a Gitea server for the tests that run against a real Git host
# (server/app TestGiteaAccount) into BIN_DIR (default: <repo>/bin): BIN_DIR/gitea and, next to it,
# BIN_DIR/gitea-data/ (its templates, options and public files: a build without the bindata tag reads them
# from disk, the test points STATIC_ROOT_PATH there). `go install` refuses Gitea (its go.mod has replace
# directives), so the module source is downloaded through the Go module proxy and built in a copy.
# Does nothing (and prints nothing) when BIN_DIR/gitea was built from the pinned version. The first build
# takes about 12 minutes on 2 cores.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=${1:-"$repo_root/bin"}
version=v1.26.0

built_version() { # the Gitea version a binary reports (main.Version, set below), or nothing
	[[ -x "$1" ]] || return 0
	"$1" --version 2>/dev/null | awk 'tolower($1) == "gitea" && $2 == "version" { print "v" $3; exit }'
}

if [[ "$(built_version "$bin_dir/gitea")" == "$version" && -d "$bin_dir/gitea-data/templates" ]]; then
	exit 0
fi

mkdir -p "$bin_dir"
bin_dir=$(cd "$bin_dir" && pwd)
echo "install-gitea: building Gitea $version into $bin_dir (the first build takes about 12 minutes)"
start=$SECONDS
src=$(go mod download -json "code.gitea.io/gitea@$version" | awk -F'"' '$2 == "Dir" { print $4; exit }')
if [[ -z "$src" || ! -d "$src" ]]; then
	echo "install-gitea: go mod download code.gitea.io/gitea@$version gave no source directory" >&2
	exit 1
fi
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
(
	cd "$work"
	GOFLAGS=-buildvcs=false go build -trimpath -tags 'sqlite sqlite_unlock_notify' \
		-ldflags "-s -w -X main.Version=${version#v}" -o "$bin_dir/gitea.new" .
)
rm -rf "$bin_dir/gitea-data"
mkdir -p "$bin_dir/gitea-data"
for d in templates options public; do
	[[ -d "$work/$d" ]] && cp -r "$work/$d" "$bin_dir/gitea-data/"
done
mv "$bin_dir/gitea.new" "$bin_dir/gitea"
echo "install-gitea: built in $((SECONDS - start))s"
