#!/usr/bin/env bash
# The main command: builds everything, then runs sipline with its demo.
#
# It runs the relay with its embedded mini PBX on 127.0.0.1, so no PBX is
# needed, and serves the demo phone page (demo/, with the npm package it
# loads) at http://127.0.0.1:$SIPLINE_HTTP_PORT/. Open it in two browser
# windows, connect as two of the demo users below, and call each other, or
# call `echo` to hear yourself. Ctrl-C stops it.
#
# Environment: SIPLINE_HTTP_PORT (8080).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/tools/setup.sh
ensure_all

HTTP_PORT="${SIPLINE_HTTP_PORT:-8080}"
DOMAIN=sipline.local
# Demo accounts (NAME:PASSWORD). For anything but a local demo, put real
# users in a config file (relay/relay.example.toml shows how).
export SIPLINE_USERS="alice:alice-demo,bob:bob-demo,carol:carol-demo"

step "building"
cargo build --release --locked --workspace --bins
bash npm/build.sh

# The site the relay serves: the page, and the package as an app ships it.
SITE=target/demo-site
bash demo/site.sh "$SITE"

step "starting the relay with its embedded PBX"
target/release/sipline-relay --embedded-pbx --domain "$DOMAIN" \
    --http-listen "127.0.0.1:$HTTP_PORT" --sip-listen 127.0.0.1:0 \
    --web-root "$SITE" --shutdown-grace-secs 2 &
relay=$!
trap 'kill -TERM $relay 2>/dev/null || true; wait $relay 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null && break
    kill -0 "$relay" 2>/dev/null || die "the relay did not start (port $HTTP_PORT taken?)"
    sleep 0.05
done

cat <<INFO

  Open        http://127.0.0.1:$HTTP_PORT/
  users       alice / alice-demo, bob / bob-demo, carol / carol-demo @ $DOMAIN
              (or call "echo" to hear yourself)
  WebSocket   ws://127.0.0.1:$HTTP_PORT/sip   (subprotocol "sip")
  metrics     http://127.0.0.1:$HTTP_PORT/metrics

  Ctrl-C stops it.
INFO
wait "$relay"
