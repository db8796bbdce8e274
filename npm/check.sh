#!/usr/bin/env bash
# Checks the package: the facade's unit tests (node --test), then the
# package as a user gets it: `npm pack`, the tarball installed in a fresh
# folder (no network: it has no dependencies), and the README's example app
# type-checked against it with `tsc --strict`. Run after build.sh.
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The facade's own logic, on the built dist/ (stats, MOS, emitter, errors).
node --test test/ >"$work/unit.log" 2>&1 || { cat "$work/unit.log" >&2; exit 1; }

tarball=$(npm pack --silent --pack-destination "$work" | tail -1)
contents=$(tar tzf "$work/$tarball")
for f in package/dist/index.js package/dist/index.d.ts package/wasm/sipline_wasm.js package/wasm/sipline_wasm_bg.wasm; do
    grep -qx "$f" <<<"$contents" || { echo "the tarball lacks $f" >&2; exit 1; }
done
if grep -q "package/src/\|node_modules" <<<"$contents"; then
    echo "the tarball carries sources or node_modules" >&2; exit 1
fi

cd "$work"
printf '{ "name": "sample-app", "private": true, "type": "module" }\n' > package.json
npm install --no-audit --no-fund --loglevel=error --offline "./$tarball" >/dev/null
# The README's example, word for word (between the ```ts fences).
sed -n '/^```ts$/,/^```$/p' "$here/README.md" | sed '1d;$d' > app.ts
grep -q "Phone.connect" app.ts || { echo "no example found in npm/README.md" >&2; exit 1; }
"$here/node_modules/.bin/tsc" --strict --noEmit --target ES2022 --module ES2022 \
    --moduleResolution bundler --lib ES2022,DOM app.ts
echo "$(grep -c '^ok' "$work/unit.log") facade unit tests pass; $tarball installs in a fresh folder, and the README example type-checks with tsc --strict"
