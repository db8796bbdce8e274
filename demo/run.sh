#!/usr/bin/env bash
# The main command: builds everything, then runs sipline.
#
# Until the relay exists (issue 4), "running sipline" means: start a SIP
# server on 127.0.0.1 (Kamailio with the test config: WebSocket, registrar,
# digest auth) and register the native user agent, built on the same sans-IO
# core the browser SDK will run, as alice. It stays registered, refreshing,
# until Ctrl-C, then unregisters.
#
# Environment: SIPLINE_WS_PORT (default 5066) and SIPLINE_SIP_PORT (default
# 5070) pick Kamailio's WebSocket and UDP ports.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/tools/setup.sh
ensure_all

WS_PORT="${SIPLINE_WS_PORT:-5066}"
SIP_PORT="${SIPLINE_SIP_PORT:-5070}"

step "building"
cargo build --release --locked --workspace --bins
cargo build -p sipline-core --target wasm32-unknown-unknown --profile wasm --locked

step "starting the SIP server (Kamailio) on ws://127.0.0.1:$WS_PORT/ and udp 127.0.0.1:$SIP_PORT"
run_dir="$(mktemp -d)"
# Its own session, so that stopping it takes its forked workers along.
setsid kamailio -f tests/kamailio/kamailio.cfg -DD -E -n 1 \
    -Y "$run_dir/run" -P "$run_dir/kamailio.pid" -w "$run_dir" \
    -A "UDP_PORT=$SIP_PORT" -A "WS_PORT=$WS_PORT" >"$run_dir/kamailio.log" 2>&1 &
kamailio_pid=$!
stop_kamailio() {
    kill -TERM -- "-$kamailio_pid" 2>/dev/null || true
    sleep 0.2
    kill -KILL -- "-$kamailio_pid" 2>/dev/null || true
    rm -rf "$run_dir"
}
trap stop_kamailio EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$WS_PORT") 2>/dev/null && break
    kill -0 "$kamailio_pid" 2>/dev/null || { cat "$run_dir/kamailio.log" >&2; die "Kamailio did not start (port $WS_PORT or $SIP_PORT taken?)"; }
    sleep 0.05
done

step "registering sip:alice@sipline.test (Ctrl-C unregisters and stops)"
SIPLINE_PASSWORD=alice-secret target/release/sipline-ua \
    --server "ws://127.0.0.1:$WS_PORT/" --uri sip:alice@sipline.test --display-name Alice --expires 60
