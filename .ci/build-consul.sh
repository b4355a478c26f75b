#!/usr/bin/env bash
# Builds the Consul agent the HA tests run (Consul v1.16.1, the last MPL-2.0
# release) from the Go module proxy into a cache directory outside the clone.
# A binary already there is reused. Usage: build-consul.sh [output-path]
set -euo pipefail
VERSION=1.16.1 # keep in step with CONSUL_VERSION in the Makefile
OUT="${1:-${CORRAL_CONSUL_BIN:-$HOME/.cache/corral/consul-$VERSION/consul}}"
# (Not "| grep -q": with pipefail, grep quitting early fails the pipeline.)
if [ -x "$OUT" ] && [[ "$("$OUT" version 2>/dev/null)" == *"Consul v$VERSION"* ]]; then
	echo "consul $VERSION already built: $OUT"
	exit 0
fi
GO="${GO:-go}"
dir=$(cd /tmp && GOFLAGS= "$GO" mod download -json "github.com/hashicorp/consul@v$VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "build-consul: go mod download gave no directory" >&2; exit 1; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$dir" "$work/consul"
chmod -R u+w "$work/consul"
cd "$work/consul"
# The module zip does not hold its nested modules; take them from the proxy
# at the versions go.mod requires instead of the local replace paths.
sed -i -E '/^replace[[:space:]]+github.com\/hashicorp\/consul\/(api|proto-public|sdk|envoyextensions|troubleshoot)[[:space:]]/d' go.mod
sed -i -E '/^[[:space:]]*github.com\/hashicorp\/consul\/(api|proto-public|sdk|envoyextensions|troubleshoot)[[:space:]]+=>/d' go.mod
mkdir -p "$(dirname "$OUT")"
GONOSUMDB=github.com/hashicorp/consul/envoyextensions GOFLAGS=-mod=mod "$GO" build -o "$OUT.tmp" .
mv "$OUT.tmp" "$OUT"
"$OUT" version
