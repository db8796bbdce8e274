#!/usr/bin/env bash
# Runs every sipline test: formatting, lints, the browser SDK's package build,
# unit and property tests, and the end-to-end tests against a real Kamailio
# (which the tests start and stop on 127.0.0.1). Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/tools/setup.sh
ensure_all

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the browser SDK: wasm build, npm package, and its check (tsc --strict)"
bash npm/build.sh
bash npm/check.sh

step "doc examples"
cargo test --workspace --doc --locked

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi
