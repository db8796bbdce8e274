#!/usr/bin/env bash
# Runs every sipline test: formatting, lints, the browser SDK's package build,
# unit and property tests, and the end-to-end tests against a real Kamailio
# (which the tests start and stop on 127.0.0.1), then five seconds of each
# fuzz target. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/tools/setup.sh
ensure_all

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fuzz targets: format and lint (a crate of their own, see fuzz/run.sh)"
cargo fmt --manifest-path fuzz/Cargo.toml --check
cargo clippy --manifest-path fuzz/Cargo.toml --locked -- -D warnings

step "the demo page's and the test pages' scripts parse as ES modules"
for f in demo/*.js tests/browser/*.mjs tests/browser/misuse.js tests/bundlers/app/*.js tools/*/*.mjs; do
    node --input-type=module --check <"$f" || { echo "in $f" >&2; exit 1; }
done

step "the browser SDK: wasm build, npm package, and its check (tsc --strict)"
bash npm/build.sh
bash npm/check.sh

step "the browser SDK's size, against its budget (npm/size.sh)"
bash npm/size.sh --gate

step "doc examples"
cargo test --workspace --doc --locked

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi

# The browser tests again, every browser on one UDP port of the relay
# (media.browser_port): Chromium and Firefox, calls both ways, ICE
# restart, a call moving to a new WebSocket, transfers.
step "browser tests with one shared browser port"
browser_tests=(--test sdk_browser --test browser_calls --test demo_page --test sdk_ice)
if cargo nextest --version >/dev/null 2>&1; then
    SIPLINE_TEST_BROWSER_PORT=1 cargo nextest run -p sipline-relay --locked --no-fail-fast "${browser_tests[@]}"
else
    SIPLINE_TEST_BROWSER_PORT=1 cargo test -p sipline-relay --locked --no-fail-fast "${browser_tests[@]}"
fi

# The relay as operators install it: the Debian package in a clean
# Debian 12, the container image, the Kubernetes manifests.
bash tests/packaging.sh

step "fuzz smoke"
bash fuzz/run.sh 5
