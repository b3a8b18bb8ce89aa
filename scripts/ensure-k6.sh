#!/usr/bin/env bash
# k6, built from source with the machine's Go (go install, through the Go module proxy) into a
# cache keyed by the pinned tag. Prints the path of the k6 binary.
set -euo pipefail
K6_VERSION=v1.8.1
cache=${MSR_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/msr}
dest="$cache/k6-$K6_VERSION"
if [ -x "$dest/k6" ]; then
  echo "$dest/k6"
  exit 0
fi
command -v go >/dev/null || { echo "ensure-k6: Go is needed to build k6" >&2; exit 1; }
mkdir -p "$dest.partial"
GOBIN="$dest.partial" GOFLAGS=-mod=mod CGO_ENABLED=0 go install "go.k6.io/k6@$K6_VERSION" >&2
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "$dest/k6"
