#!/usr/bin/env bash
# Builds the example app (app/) from the packed npm tarball with each
# bundler's defaults, as an app's developer would, into OUT:
#   OUT/vite     `vite build` (no config file)
#   OUT/webpack  `webpack --mode production` (no config file: src/index.js
#                in, dist/main.js out), beside the page
#   OUT/esbuild  `esbuild --bundle --format=esm`, and the one step esbuild
#                needs that the npm README gives: the .wasm copied next to
#                the bundle (esbuild leaves `new URL(…, import.meta.url)`
#                as it is)
#   OUT/plain    no bundler: the page with an import map, the package in
#                its node_modules
#
#   bash tests/bundlers/build.sh OUT
#
# Needs npm/build.sh's output and this folder's npm packages (setup.sh
# installs them from the lock file); works offline.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
bin=$here/node_modules/.bin

# The package as npm would ship it.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$root/npm" && npm pack --silent --pack-destination "$work" >/dev/null)
tarball=$(ls "$work"/sipline-*.tgz)

# One app folder per bundler, each with the tarball installed.
app() {
    local dir=$out/$1
    rm -rf "$dir"
    mkdir -p "$dir"
    printf '{ "private": true, "type": "module" }\n' >"$dir/package.json"
    (cd "$dir" && npm install --offline --no-audit --no-fund --loglevel=error "$tarball" >/dev/null)
}

app vite
cp "$here/app/index.html" "$here/app/main.js" "$out/vite/"
(cd "$out/vite" && "$bin/vite" build --logLevel warn)

app webpack
mkdir -p "$out/webpack/src"
cp "$here/app/main.js" "$out/webpack/src/index.js"
(cd "$out/webpack" && "$bin/webpack" --mode production --no-stats)
cp "$here/app/index.html" "$out/webpack/dist/"

app esbuild
mkdir -p "$out/esbuild/dist"
cp "$here/app/main.js" "$out/esbuild/"
(cd "$out/esbuild" && "$bin/esbuild" main.js --bundle --format=esm --minify \
    --log-level=warning --outfile=dist/main.js)
cp "$out/esbuild/node_modules/sipline/wasm/sipline_wasm_bg.wasm" "$out/esbuild/dist/"
cp "$here/app/index.html" "$out/esbuild/dist/"

app plain
cp "$here/plain/index.html" "$here/app/main.js" "$out/plain/"
