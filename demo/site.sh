#!/usr/bin/env bash
# Assembles the demo site in folder $1 (default target/demo-site): the page
# (demo/) and the npm package as an app ships it (sdk/dist, sdk/wasm).
# Run after npm/build.sh. demo/run.sh and the demo's browser test use it.
set -euo pipefail
cd "$(dirname "$0")/.."
site="${1:-target/demo-site}"
[ -f npm/dist/index.js ] && [ -f npm/wasm/sipline_wasm_bg.wasm ] \
    || { echo "the npm package is not built: run bash npm/build.sh" >&2; exit 1; }
rm -rf "$site"
mkdir -p "$site/sdk"
cp demo/*.html demo/*.js demo/*.css "$site/"
cp -r npm/dist npm/wasm "$site/sdk/"
