#!/usr/bin/env bash
# The main command: builds everything, then runs sipline.
#
# Until the demo page and the embedded PBX exist (issues 5-7), "running
# sipline" means the signalling path end to end, on 127.0.0.1:
#   Kamailio as the PBX (SIP over UDP, registrar with digest auth)
#   <- the sipline relay (WebSocket on ws://127.0.0.1:$SIPLINE_HTTP_PORT/sip)
#   <- the native user agent, on the same sans-IO core the browser SDK will
#      run, registered as alice through the relay until Ctrl-C (which
#      unregisters it and stops everything).
#
# Environment: SIPLINE_HTTP_PORT (8080), SIPLINE_SIP_PORT (5070, the relay's
# UDP port) and SIPLINE_PBX_PORT (5060, Kamailio's UDP port).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/tools/setup.sh
ensure_all

HTTP_PORT="${SIPLINE_HTTP_PORT:-8080}"
SIP_PORT="${SIPLINE_SIP_PORT:-5070}"
PBX_PORT="${SIPLINE_PBX_PORT:-5060}"

step "building"
cargo build --release --locked --workspace --bins
cargo build -p sipline-core --target wasm32-unknown-unknown --profile wasm --locked

run_dir="$(mktemp -d)"
pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.3
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    rm -rf "$run_dir"
}
trap stop_all EXIT

wait_for_port() { # port what pid log
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { cat "$4" >&2; die "$2 did not start (port $1 taken?)"; }
        sleep 0.05
    done
    die "$2 did not open port $1"
}

step "starting the PBX: Kamailio on udp 127.0.0.1:$PBX_PORT"
ws_port=$((PBX_PORT + 20000 > 65000 ? 45066 : PBX_PORT + 20000))
# Its own session, so that stopping it takes its forked workers along.
setsid kamailio -f tests/kamailio/kamailio.cfg -DD -E -n 1 \
    -Y "$run_dir/run" -P "$run_dir/kamailio.pid" -w "$run_dir" \
    -A "UDP_PORT=$PBX_PORT" -A "WS_PORT=$ws_port" >"$run_dir/kamailio.log" 2>&1 &
pids+=($!)
wait_for_port "$ws_port" Kamailio "${pids[-1]}" "$run_dir/kamailio.log"

step "starting the relay: ws://127.0.0.1:$HTTP_PORT/sip -> udp 127.0.0.1:$PBX_PORT"
setsid target/release/sipline-relay --pbx "127.0.0.1:$PBX_PORT" \
    --http-listen "127.0.0.1:$HTTP_PORT" --sip-listen "127.0.0.1:$SIP_PORT" &
pids+=($!)
wait_for_port "$HTTP_PORT" "the relay" "${pids[-1]}" /dev/null

step "registering sip:alice@sipline.test through the relay (Ctrl-C unregisters and stops)"
echo "metrics: http://127.0.0.1:$HTTP_PORT/metrics"
SIPLINE_PASSWORD=alice-secret target/release/sipline-ua \
    --server "ws://127.0.0.1:$HTTP_PORT/sip" --uri sip:alice@sipline.test --display-name Alice --expires 60
