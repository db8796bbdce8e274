#!/usr/bin/env bash
# Builds the npm package `sipline` from source, offline:
#   1. the web layer and core to wasm32 (cargo, profile `wasm`: opt-level z, LTO);
#   2. its JS bindings with wasm-bindgen, target `web`: an ES module that
#      bundlers and a plain <script type="module"> both load;
#   3. wasm-opt -Oz, from the npm package binaryen (Debian 12's binaryen 108
#      exports the wrong table for wasm-bindgen's externrefs and the module
#      fails to load);
#   4. the TypeScript facade with tsc, into dist/.
# Steps whose inputs did not change are skipped. tests/tools/setup.sh
# installs the tools (the wasm32 target, wasm-bindgen-cli at the version
# sdk-wasm/Cargo.toml pins, and this folder's npm packages from its lock file).
set -euo pipefail
cd "$(dirname "$0")"
root=..
wasm_in="$root/target/wasm32-unknown-unknown/wasm/sipline_wasm.wasm"

cargo build --manifest-path "$root/Cargo.toml" -p sipline-wasm \
    --target wasm32-unknown-unknown --profile wasm --locked

if [ ! -f wasm/sipline_wasm_bg.wasm ] || [ "$wasm_in" -nt wasm/sipline_wasm_bg.wasm ]; then
    rm -rf wasm
    wasm-bindgen --target web --out-dir wasm --out-name sipline_wasm "$wasm_in"
    # The features Rust's wasm32 target emits; wasm-opt must accept them.
    node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers \
        --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types --enable-multivalue \
        wasm/sipline_wasm_bg.wasm -o wasm/sipline_wasm_bg.wasm
fi

if [ ! -f dist/index.js ] || [ -n "$(find src wasm/sipline_wasm.d.ts tsconfig.json -newer dist/index.js 2>/dev/null | head -1)" ]; then
    rm -rf dist
    node_modules/.bin/tsc -p tsconfig.json
fi
