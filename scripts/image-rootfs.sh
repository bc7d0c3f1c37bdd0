#!/usr/bin/env bash
# image-rootfs.sh [OUT] — stage what deployments/Dockerfile copies into its FROM scratch image (default OUT:
# <repo>/bin/image): berth and berth-scanner from bin/ (built here when missing), the shared libraries they
# load (the host's glibc, found with ldd), CA certificates, /etc/passwd with the berth user, and /tmp.
#
# No base image is pulled: the engine on a closed network has none, and there is no Go image to build in. The
# binaries are the ones `task run` uses (cgo on, linked against glibc), so the image carries their runtime closure
# instead of a second, static compile of Trivy.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-"$repo_root/bin/image"}

if [[ ! -x "$repo_root/bin/berth-scanner" ]]; then
	echo "image-rootfs: building bin/berth-scanner (Trivy; minutes the first time)"
	(cd "$repo_root/workers/scanner" && GOEXPERIMENT=jsonv2 go build -o "$repo_root/bin/berth-scanner" ./cmd/berth-scanner)
fi
(cd "$repo_root" && go build -o "$repo_root/bin/berth" ./cmd/berth)

rm -rf "$out"
mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/tmp" "$out/var/lib/berth"
chmod 1777 "$out/tmp"
cp "$repo_root/bin/berth" "$repo_root/bin/berth-scanner" "$out/usr/local/bin/"
for bin in "$out/usr/local/bin/berth" "$out/usr/local/bin/berth-scanner"; do
	ldd "$bin" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' | while read -r lib; do
		mkdir -p "$out$(dirname "$lib")"
		cp -L "$lib" "$out$lib"
	done
done
cp -L /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/" 2>/dev/null ||
	echo "image-rootfs: no /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates): HTTPS downloads will fail" >&2
printf 'root:x:0:0:root:/root:/sbin/nologin\nberth:x:10001:10001:berth:/var/lib/berth:/sbin/nologin\n' >"$out/etc/passwd"
printf 'root:x:0:\nberth:x:10001:\n' >"$out/etc/group"
echo "image-rootfs: staged $(du -sh "$out" | cut -f1) in $out"
