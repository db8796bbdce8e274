#!/usr/bin/env bash
# The main command: builds everything, then runs sipline with its demo.
#
# It runs the relay with its embedded mini PBX on 127.0.0.1, so no PBX is
# needed, and serves the demo phone page (demo/, with the npm package it
# loads) at http://127.0.0.1:$SIPLINE_HTTP_PORT/. Open it in two browser
# windows, connect as two of the demo users below, and call each other, or
# call `echo` to hear yourself. Ctrl-C stops it.
#
# With SIPLINE_PBX=host:port (and SIPLINE_DOMAIN, your users' SIP domain)
# the same relay and page go in front of that PBX instead: its users log
# in with their own credentials.
#
# Environment: SIPLINE_HTTP_PORT (8080), SIPLINE_PBX, SIPLINE_DOMAIN.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/tools/setup.sh
ensure_all

HTTP_PORT="${SIPLINE_HTTP_PORT:-8080}"
PBX="${SIPLINE_PBX:-}"
DOMAIN="${SIPLINE_DOMAIN:-sipline.local}"
if [ -n "$PBX" ]; then
    [ -n "${SIPLINE_DOMAIN:-}" ] || die "SIPLINE_PBX needs SIPLINE_DOMAIN: your users' SIP domain"
    MODE=(--pbx "$PBX")
    WHAT="in front of the PBX at $PBX"
else
    MODE=(--embedded-pbx)
    WHAT="with its embedded PBX"
    # Demo accounts (NAME:PASSWORD). For anything but a local demo, put
    # real users in a config file (relay/relay.example.toml shows how).
    export SIPLINE_USERS="alice:alice-demo,bob:bob-demo,carol:carol-demo"
fi

step "building"
cargo build --release --locked --workspace --bins
bash npm/build.sh

# The site the relay serves: the page, and the package as an app ships it.
SITE=target/demo-site
bash demo/site.sh "$SITE"

step "starting the relay $WHAT"
# The UDP side listens where SIPLINE_SIP_LISTEN says (a PBX on another host
# must reach it), on 127.0.0.1 otherwise.
target/release/sipline-relay "${MODE[@]}" --domain "$DOMAIN" \
    --http-listen "127.0.0.1:$HTTP_PORT" --sip-listen "${SIPLINE_SIP_LISTEN:-127.0.0.1:0}" \
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
INFO
if [ -n "$PBX" ]; then
    echo "  users       your PBX's users @ $DOMAIN, with their own passwords"
else
    echo "  users       alice / alice-demo, bob / bob-demo, carol / carol-demo @ $DOMAIN"
    echo "              (or call \"echo\" to hear yourself)"
fi
cat <<INFO
  WebSocket   ws://127.0.0.1:$HTTP_PORT/sip   (subprotocol "sip")
  metrics     http://127.0.0.1:$HTTP_PORT/metrics

  Ctrl-C stops it.
INFO
wait "$relay"
