#!/usr/bin/env bash
# The main command: builds everything, then runs sipline.
#
# It runs the relay with its embedded mini PBX on 127.0.0.1, so no PBX is
# needed: browsers (and the native user agent) connect to
# ws://127.0.0.1:$SIPLINE_HTTP_PORT/sip and register as one of the demo users
# below, then call each other. Until the demo page arrives (issue 7), the
# native user agent, on the same sans-IO core the browser SDK will run,
# registers as alice through it and stays registered until Ctrl-C, which
# unregisters it and stops everything.
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

pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_all EXIT

step "starting the relay with its embedded PBX: ws://127.0.0.1:$HTTP_PORT/sip"
# Its own session: Ctrl-C goes to the user agent, which unregisters first;
# the exit trap then stops the relay.
setsid target/release/sipline-relay --embedded-pbx --domain "$DOMAIN" \
    --http-listen "127.0.0.1:$HTTP_PORT" --sip-listen 127.0.0.1:0 --shutdown-grace-secs 2 &
pids+=($!)
for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null && break
    kill -0 "${pids[-1]}" 2>/dev/null || die "the relay did not start (port $HTTP_PORT taken?)"
    sleep 0.05
done

cat <<INFO

  WebSocket   ws://127.0.0.1:$HTTP_PORT/sip   (subprotocol "sip")
  users       alice / alice-demo, bob / bob-demo, carol / carol-demo @ $DOMAIN
  metrics     http://127.0.0.1:$HTTP_PORT/metrics
  config      http://127.0.0.1:$HTTP_PORT/api/config

INFO
step "registering sip:alice@$DOMAIN (Ctrl-C unregisters and stops)"
SIPLINE_PASSWORD=alice-demo target/release/sipline-ua \
    --server "ws://127.0.0.1:$HTTP_PORT/sip" --uri "sip:alice@$DOMAIN" --display-name Alice --expires 600
