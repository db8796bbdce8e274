#!/usr/bin/env bash
# SIP messages parsed per second by sipline's core compiled to wasm, beside
# JsSIP's parser on the same messages, in the same headless Chromium page.
#
#   bash tools/parse-bench/run.sh
#
# Steps (each prints what it does):
#   1. this crate to wasm32 with `--profile wasm` (what the npm package
#      ships: opt-level z, LTO), wasm-bindgen --target web, and wasm-opt -Oz
#      with npm/build.sh's flags, so the module is built as the shipped one;
#   2. JsSIP (exact version below) from the npm registry into a scratch
#      folder, and its lib/Parser.js bundled for the browser with esbuild;
#   3. driver.mjs: serves the page on 127.0.0.1, runs it in /usr/bin/chromium
#      (never a downloaded browser) and prints the table.
#
# Scratch: $PARSE_BENCH_DIR, else $CARGO_TARGET_DIR/parse-bench, else
# target/parse-bench. Knobs: PARSE_BENCH_OPT_LEVEL=3 builds the wasm for
# speed instead (cargo opt-level 3 and wasm-opt -O3), to see what the size
# profile costs; PARSE_BENCH_MIN_MS / _REPS / _WARM_MS / _ONLY: see
# driver.mjs; CHROMIUM: another Chromium binary.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
scratch=${PARSE_BENCH_DIR:-$target/parse-bench}
jssip_version=3.13.8
opt_level=${PARSE_BENCH_OPT_LEVEL:-}
# Nothing here may fetch a browser; playwright-core does not, but say so.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'parse-bench: %s\n' "$*" >&2; exit 1; }

chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || die "no Chromium at $chromium (Debian: apt-get install chromium)"
command -v node >/dev/null || die "node is missing"
want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' "$here/Cargo.toml")
[ "$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $want" ] ||
    die "wasm-bindgen CLI $want is needed (cargo install wasm-bindgen-cli --version $want)"

# The project's own npm tools (esbuild, wasm-opt; playwright-core), from
# their lock files, when absent.
if [ ! -x "$root/npm/node_modules/.bin/esbuild" ]; then
    step "npm ci in npm/ (esbuild, wasm-opt)"
    (cd "$root/npm" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
    step "npm ci in tests/browser/ (playwright-core, which never downloads a browser)"
    (cd "$root/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
fi

# 1. The wasm module.
profile_note="profile wasm (opt-level z)"
wasm_opt_level=-Oz
if [ -n "$opt_level" ]; then
    export CARGO_PROFILE_WASM_OPT_LEVEL=$opt_level
    profile_note="profile wasm with opt-level $opt_level"
    wasm_opt_level=-O$opt_level
fi
step "cargo build -p sipline-parse-bench --target wasm32-unknown-unknown ($profile_note)"
cargo build --manifest-path "$root/Cargo.toml" -p sipline-parse-bench \
    --target wasm32-unknown-unknown --profile wasm
site=$scratch/site
rm -rf "$site"
mkdir -p "$site"
step "wasm-bindgen --target web, wasm-opt $wasm_opt_level"
wasm-bindgen --target web --out-dir "$site/pkg" --out-name sipline_parse_bench \
    "$target/wasm32-unknown-unknown/wasm/sipline_parse_bench.wasm"
"$root/npm/node_modules/.bin/wasm-opt" "$wasm_opt_level" --strip-debug --strip-producers \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$site/pkg/sipline_parse_bench_bg.wasm" -o "$site/pkg/sipline_parse_bench_bg.wasm"

# 2. JsSIP's parser for the browser.
jssip=$scratch/jssip
have=$(node -p "require('$jssip/node_modules/jssip/package.json').version" 2>/dev/null || true)
if [ "$have" != "$jssip_version" ]; then
    step "npm install jssip@$jssip_version into $jssip"
    rm -rf "$jssip"
    mkdir -p "$jssip"
    printf '{ "private": true }\n' >"$jssip/package.json"
    (cd "$jssip" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
        "jssip@$jssip_version")
fi
# The entry sits in the scratch folder so that esbuild resolves `jssip`
# from its node_modules.
printf 'export { parseMessage } from "jssip/lib/Parser.js";\n' >"$jssip/entry.mjs"
step "esbuild: jssip/lib/Parser.js -> jssip-parser.js"
"$root/npm/node_modules/.bin/esbuild" "$jssip/entry.mjs" --bundle --format=esm \
    --platform=browser --log-level=warning --outfile="$site/jssip-parser.js"

# 3. The page in Chromium.
step "module sizes: $(wc -c <"$site/pkg/sipline_parse_bench_bg.wasm") bytes of wasm," \
    "$(wc -c <"$site/jssip-parser.js") bytes of JsSIP parser JS (unminified)"
step "running the page in $chromium (about 2 minutes)"
CHROMIUM=$chromium node "$here/driver.mjs" "$site" "$scratch/results.json"
step "results as JSON: $scratch/results.json"
