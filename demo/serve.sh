#!/usr/bin/env bash
# Serves the demo: assembles the site (the page and the built npm package),
# runs the relay with its embedded mini PBX (or in front of SIPLINE_PBX),
# prints the URL to open, and runs until Ctrl-C. demo/run.sh (the main
# command) calls it after building; the demo's browser tests call it too,
# so that they go through the same code path.
#
# Environment:
#   SIPLINE_HTTP_PORT   the page and WebSocket port (8080)
#   SIPLINE_PBX         host:port of an existing PBX to front, instead of the
#                       embedded one; needs SIPLINE_DOMAIN, its users' domain
#   SIPLINE_SIP_LISTEN  the UDP side's address (127.0.0.1:0); a PBX on another
#                       host must reach it
#   SIPLINE_MEDIA_PORTS the RTP port range, MIN-MAX (the relay's default)
#   SIPLINE_RELAY       the relay binary (target/release/sipline-relay)
#   SIPLINE_SITE        where the site is assembled (target/demo-site)
#   SIPLINE_RECORD_DIR  where calls recorded on demand (the page's Record
#                       button) go (target/demo-recordings)
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/tools/setup.sh

HTTP_PORT="${SIPLINE_HTTP_PORT:-8080}"
PBX="${SIPLINE_PBX:-}"
DOMAIN="${SIPLINE_DOMAIN:-sipline.local}"
RELAY="${SIPLINE_RELAY:-target/release/sipline-relay}"
SITE="${SIPLINE_SITE:-target/demo-site}"
RECORD_DIR="${SIPLINE_RECORD_DIR:-target/demo-recordings}"
[ -x "$RELAY" ] || die "no relay binary at $RELAY: run bash demo/run.sh, which builds it"
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
[ -n "${SIPLINE_MEDIA_PORTS:-}" ] && MODE+=(--media-ports "$SIPLINE_MEDIA_PORTS")

# The site the relay serves: the page, and the package as an app ships it.
bash demo/site.sh "$SITE"

step "starting the relay $WHAT"
"$RELAY" "${MODE[@]}" --domain "$DOMAIN" \
    --http-listen "127.0.0.1:$HTTP_PORT" --sip-listen "${SIPLINE_SIP_LISTEN:-127.0.0.1:0}" \
    --web-root "$SITE" --shutdown-grace-secs 2 \
    --record on-demand --record-dir "$RECORD_DIR" &
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
  recordings  $RECORD_DIR   (the Record button in a call)
  metrics     http://127.0.0.1:$HTTP_PORT/metrics

  Ctrl-C stops it.
INFO
wait "$relay"
