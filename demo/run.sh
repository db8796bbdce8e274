#!/usr/bin/env bash
# The main command: builds everything, then runs sipline with its demo.
#
# It builds the relay and the browser SDK's npm package, then serves the
# demo phone page (demo/serve.sh) with the relay's embedded mini PBX on
# 127.0.0.1, so no PBX is needed, at http://127.0.0.1:$SIPLINE_HTTP_PORT/.
# Open it in two browser windows, connect as two of the demo users, and
# call each other, or call `echo` to hear yourself. Ctrl-C stops it.
#
# With SIPLINE_PBX=host:port (and SIPLINE_DOMAIN, your users' SIP domain)
# the same relay and page go in front of that PBX instead: its users log
# in with their own credentials. demo/serve.sh lists every setting.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/tools/setup.sh
ensure_build

step "building"
cargo build --release --locked -p sipline-relay
bash npm/build.sh

exec bash demo/serve.sh
