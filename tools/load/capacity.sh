#!/usr/bin/env bash
# How many calls one relay core carries: the relay pinned to core 0, the load
# generator (playing browsers and PBX) pinned to core 1, a ramp of call counts
# at 50 packets per second each way. Each row: the packets through the relay,
# its CPU (and CPU per packet), the p99 latency through it, the load
# generator's own p99 at the same load without the relay (baseline), the
# difference (what the relay adds), loss, and the relay's memory per call.
#
#   bash tools/load/capacity.sh                 # 160-byte payloads (G.711)
#   PAYLOAD=1200 CALLS=100,300 bash tools/load/capacity.sh
#   RECORD=1 CALLS=100,300 bash tools/load/capacity.sh   # every call recorded
#
# With RECORD=1 every call is recorded (pcap and WAV, into a temporary
# folder removed at the end; its writer thread on the relay's core too),
# and the end says how many bytes a recorded call-minute took.
set -euo pipefail
cd "$(dirname "$0")/../.."
CALLS="${CALLS:-100,300,600,1000}"
PAYLOAD="${PAYLOAD:-160}"
SECONDS_EACH="${SECONDS_EACH:-10}"
[ "$(nproc)" -ge 2 ] || { echo "needs two cores: one for the relay, one for the load" >&2; exit 1; }

cargo build --release --locked -p sipline-relay -p sipline-load

HTTP=127.0.0.1:28080 SIP=127.0.0.1:25070 PBX=127.0.0.1:25090
RECORDING=()
if [ -n "${RECORD:-}" ]; then
    records=$(mktemp -d)
    RECORDING=(--record all --record-dir "$records")
fi
RUST_LOG=warn,rtc_dtls=error taskset -c 0 target/release/sipline-relay \
    --pbx "$PBX" --http-listen "$HTTP" --sip-listen "$SIP" --media-ports 40000-59999 \
    --max-connections-per-ip 100000 --max-http-connections-per-ip 100000 \
    --messages-per-second 100000 --message-burst 100000 \
    "${RECORDING[@]}" &
relay=$!
trap 'kill $relay 2>/dev/null; wait $relay 2>/dev/null || true; [ -z "${records:-}" ] || rm -rf "$records"' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/${HTTP%:*}/${HTTP#*:}") 2>/dev/null && break
    sleep 0.05
done

echo "relay pid $relay on core 0; load on core 1; payload $PAYLOAD bytes, 50 pps each way per call"
taskset -c 1 target/release/sipline-load --ws "ws://$HTTP/sip" --pbx-listen "$PBX" \
    --gateway-pid "$relay" --payload "$PAYLOAD" --seconds "$SECONDS_EACH" \
    --setup-parallel 50 --ramp "$CALLS"

if [ -n "${RECORD:-}" ]; then
    # Each call of the ramp lasted SECONDS_EACH, recorded from its first
    # packet: bytes per call-minute, pcap and WAV together.
    sleep 1
    bytes=$(curl -s "http://$HTTP/metrics" | awk '$1 == "sipline_recording_bytes_total" { print $2 }')
    calls=$(tr ',' '\n' <<<"$CALLS" | awk '{ s += $1 } END { print s }')
    awk -v b="$bytes" -v c="$calls" -v s="$SECONDS_EACH" \
        'BEGIN { printf "recorded: %d bytes for %d calls of %d s: %.2f MB per call-minute (pcap and WAV)\n", b, c, s, b / c / s * 60 / 1e6 }'
fi
