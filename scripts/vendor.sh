#!/usr/bin/env bash
# Vendor the browser libraries from their npm packages (no CDN at run time): `make vendor`.
# Versions are pinned here and recorded in static/vendor/README.md; bump both together.
set -euo pipefail
cd "$(dirname "$0")/.."
UPLOT=1.6.32
AXE=4.14.1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$UPLOT" "axe-core@$AXE" >/dev/null)
tar -xzf "$tmp/uplot-$UPLOT.tgz" -C "$tmp" && mv "$tmp/package" "$tmp/uplot"
tar -xzf "$tmp/axe-core-$AXE.tgz" -C "$tmp" && mv "$tmp/package" "$tmp/axe"
mkdir -p static/vendor/uplot static/vendor/axe-core
cp "$tmp/uplot/dist/uPlot.iife.min.js" "$tmp/uplot/dist/uPlot.min.css" "$tmp/uplot/LICENSE" static/vendor/uplot/
cp "$tmp/axe/axe.min.js" "$tmp/axe/LICENSE" static/vendor/axe-core/
echo "vendored uPlot $UPLOT and axe-core $AXE into static/vendor/"
