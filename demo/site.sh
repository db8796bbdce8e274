#!/usr/bin/env bash
# Assembles the demo site in folder $1 (default target/demo-site): the page
# (demo/) and the npm package as an app ships it (sdk/dist, sdk/wasm).
# Run after npm/build.sh. demo/serve.sh (the main command's last step, and
# the demo's browser tests) uses it.
#
# The folder is replaced, so it must be one this script made (it leaves a
# .sipline-site mark, which the relay never serves) or not exist yet: a
# mistyped SIPLINE_SITE cannot wipe anything else.
set -euo pipefail
cd "$(dirname "$0")/.."
site="${1:-target/demo-site}"
[ -f npm/dist/index.js ] && [ -f npm/wasm/sipline_wasm_bg.wasm ] \
    || { echo "the npm package is not built: run bash npm/build.sh" >&2; exit 1; }
if [ -e "$site" ] && [ ! -f "$site/.sipline-site" ] && [ "$site" != target/demo-site ]; then
    echo "$site exists and is not a demo site this script made: name a new folder" >&2
    exit 1
fi
rm -rf "$site"
mkdir -p "$site/sdk"
touch "$site/.sipline-site"
cp demo/*.html demo/*.js demo/*.css "$site/"
cp -r npm/dist npm/wasm "$site/sdk/"
