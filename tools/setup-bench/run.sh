#!/usr/bin/env bash
# How fast a call starts, for sipline and the JavaScript SIP libraries, in
# the same headless Chromium against the same relay and far ends on
# 127.0.0.1:
#
#   bash tools/setup-bench/run.sh [--calls 50] [--only sipline,jssip,sipjs]
#
# Steps (each prints what it does):
#   1. the relay (release) and this benchmark, and the npm package
#      (npm/build.sh), as the shipped ones are built;
#   2. JsSIP and SIP.js (exact versions below) from the npm registry into a
#      scratch folder, each bundled for the browser with esbuild, and so is
#      the sipline package (its .wasm beside the bundle, where the bundle
#      looks for it), as an app would ship them;
#   3. sipline-setup-bench: Kamailio, baresip, two relays (one in front of
#      Kamailio, one with its embedded PBX), then driver.mjs in
#      /usr/bin/chromium (never a downloaded browser); prints the tables.
#
# Needs what `bash tests/run.sh` installs (Kamailio, baresip, Chromium, the
# npm packages of npm/ and tests/browser/). Scratch: $SETUP_BENCH_DIR, else
# $CARGO_TARGET_DIR/setup-bench, else target/setup-bench.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
scratch=${SETUP_BENCH_DIR:-$target/setup-bench}
jssip_version=3.13.8
sipjs_version=0.21.2
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'setup-bench: %s\n' "$*" >&2; exit 1; }

[ -x /usr/bin/chromium ] || die "no /usr/bin/chromium (bash tests/run.sh installs it)"
[ -x "$root/npm/node_modules/.bin/esbuild" ] || die "no esbuild in npm/ (bash tests/run.sh installs it)"
[ -d "$root/tests/browser/node_modules/playwright-core" ] ||
    die "no playwright-core in tests/browser/ (bash tests/run.sh installs it)"

# 1. What is measured, built as it ships.
step "cargo build --release -p sipline-relay -p sipline-setup-bench"
cargo build --manifest-path "$root/Cargo.toml" --release -p sipline-relay -p sipline-setup-bench
step "npm/build.sh"
bash "$root/npm/build.sh"

# 2. The JavaScript libraries, bundled and minified as an app would ship them.
libs=$scratch/libs
mkdir -p "$libs"
have() { node -p "require('$libs/node_modules/$1/package.json').version" 2>/dev/null || true; }
if [ "$(have jssip)" != "$jssip_version" ] || [ "$(have sip.js)" != "$sipjs_version" ]; then
    step "npm install jssip@$jssip_version sip.js@$sipjs_version into $libs"
    printf '{ "private": true }\n' >"$libs/package.json"
    (cd "$libs" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
        "jssip@$jssip_version" "sip.js@$sipjs_version")
fi
printf 'import * as JsSIP from "jssip";\nwindow.JsSIP = JsSIP.default ?? JsSIP;\n' >"$libs/jssip-entry.js"
printf 'import * as SIP from "sip.js";\nwindow.SIP = SIP;\n' >"$libs/sipjs-entry.js"
for lib in jssip sipjs; do
    step "esbuild: $lib -> $libs/$lib.js"
    "$root/npm/node_modules/.bin/esbuild" "$libs/$lib-entry.js" --bundle --minify --format=iife \
        --platform=browser --log-level=warning --outfile="$libs/$lib.js"
done
step "esbuild: sipline (npm/dist) -> $libs/sipline.js, its .wasm beside it"
"$root/npm/node_modules/.bin/esbuild" "$root/npm/dist/index.js" --bundle --minify --format=esm \
    --platform=browser --log-level=warning --outfile="$libs/sipline.js"
cp "$root/npm/wasm/sipline_wasm_bg.wasm" "$libs/"

# 3. The calls.
step "sipline-setup-bench (a few minutes: 50 calls per library, scenario and direction)"
"$target/release/sipline-setup-bench" --relay "$target/release/sipline-relay" \
    --libs "$libs" --out "$scratch" "$@"
