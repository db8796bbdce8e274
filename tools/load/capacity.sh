#!/usr/bin/env bash
# How many calls one gateway core carries, sipline's relay against the
# classic WebRTC gateway (Debian's rtpengine in userspace behind Kamailio's
# websocket module), in one run on the same machine: the gateway pinned to
# core 0, the load generator (playing browsers and PBX) pinned to core 1, a
# ramp of call counts at 50 packets per second each way. Each row: the
# packets through the gateway, its media process's CPU (and CPU per
# packet), the p99 latency through it, the load generator's own p99 at the
# same load without a gateway (baseline), the difference (what the gateway
# adds), loss, and the media process's memory per call. Then the machine's
# floor for the same pattern (sipline-floor: a socket pair per call in one
# epoll, each datagram sent on as it is, nothing of a gateway), and the
# gateways side by side with their ratios, over the floor too.
#
#   bash tools/load/capacity.sh                 # 160-byte payloads (G.711)
#   PAYLOAD=1200 CALLS=100,300 bash tools/load/capacity.sh
#   GATEWAYS=relay bash tools/load/capacity.sh  # the relay alone
#   RECORD=1 CALLS=100,300 GATEWAYS=relay bash tools/load/capacity.sh
#   SHARED_PORT=1 GATEWAYS=relay bash tools/load/capacity.sh  # one browser port
#
# GATEWAYS: "relay rtpengine" (the default), or either. rtpengine and
# Kamailio come from Debian (installed when missing, as the tests do); for
# rtpengine the CPU is rtpengine's alone (Kamailio only sets the calls up,
# on the same core). With RECORD=1 every call through the relay is recorded
# (pcap and WAV, into a temporary folder removed at the end; its writer
# thread on the relay's core too), and the end says how many bytes a
# recorded call-minute took.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/tools/setup.sh
CALLS="${CALLS:-100,300,600,1000}"
PAYLOAD="${PAYLOAD:-160}"
SECONDS_EACH="${SECONDS_EACH:-10}"
GATEWAYS="${GATEWAYS:-relay rtpengine}"
[ "$(nproc)" -ge 2 ] || die "needs two cores: one for the gateway, one for the load"

cargo build --release --locked -p sipline-relay -p sipline-load --bins
[[ " $GATEWAYS " == *" rtpengine "* ]] && ensure_apt_packages kamailio kamailio-websocket-modules rtpengine-daemon

PBX=127.0.0.1:25090
work=$(mktemp -d)
pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

wait_tcp() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nothing listens on $1"
}

# The ramp through a gateway at WS whose media process is PID; the table to
# OUT (and the screen).
ramp() { # WS PID DOMAIN OUT
    echo "$4: media process pid $2 on core 0; load on core 1; payload $PAYLOAD bytes, 50 pps each way per call"
    # A gateway that cannot take the next step of the ramp ends its table
    # there (the load says why); the other is still measured.
    taskset -c 1 target/release/sipline-load --ws "$1" --pbx-listen "$PBX" --domain "$3" \
        --gateway-pid "$2" --payload "$PAYLOAD" --seconds "$SECONDS_EACH" \
        --setup-parallel 50 --ramp "$CALLS" 2>&1 | grep --line-buffered -v '^ *[0-9]*: \|^ *at \|^Stack\|^$' | tee "$work/$4.txt" || true
}

relay() {
    local http=127.0.0.1:28080
    local recording=() shared=()
    # One UDP port for every browser instead of one per call.
    [ -n "${SHARED_PORT:-}" ] && shared=(--media-browser-port 39000)
    if [ -n "${RECORD:-}" ]; then
        mkdir -p "$work/records"
        recording=(--record all --record-dir "$work/records")
    fi
    RUST_LOG=warn,rtc_dtls=error taskset -c 0 target/release/sipline-relay \
        --pbx "$PBX" --http-listen "$http" --sip-listen 127.0.0.1:25070 --media-ports 40000-59999 \
        --max-connections-per-ip 100000 --max-http-connections-per-ip 100000 \
        --messages-per-second 100000 --message-burst 100000 \
        "${recording[@]}" "${shared[@]}" &
    local pid=$!
    pids+=("$pid")
    wait_tcp "$http"
    ramp "ws://$http/sip" "$pid" load.invalid relay
    if [ -n "${RECORD:-}" ]; then
        # Each call of the ramp lasted SECONDS_EACH, recorded from its first
        # packet: bytes per call-minute, pcap and WAV together.
        sleep 1
        local bytes calls
        bytes=$(curl -s "http://$http/metrics" | awk '$1 == "sipline_recording_bytes_total" { print $2 }')
        calls=$(tr ',' '\n' <<<"$CALLS" | awk '{ s += $1 } END { print s }')
        awk -v b="$bytes" -v c="$calls" -v s="$SECONDS_EACH" \
            'BEGIN { printf "recorded: %d bytes for %d calls of %d s: %.2f MB per call-minute (pcap and WAV)\n", b, c, s, b / c / s * 60 / 1e6 }'
    fi
    stop_all
}

rtpengine_gateway() {
    local ng=25223 udp=25060 ws=28090
    mkdir -p "$work/kamailio/run"
    taskset -c 0 rtpengine --config-file=none --table=-1 --interface=127.0.0.1 \
        --listen-ng="127.0.0.1:$ng" --port-min=10000 --port-max=39999 --delete-delay=0 \
        --foreground --log-stderr --log-level=4 --pidfile="$work/rtpengine.pid" \
        2>"$work/rtpengine.log" &
    local pid=$!
    pids+=("$pid")
    # Shared memory for a thousand WebSockets and their transactions (the
    # default 64 MB runs out at a few hundred).
    taskset -c 0 kamailio -f tests/kamailio/kamailio.cfg -DD -E -n 1 -m 1024 \
        -Y "$work/kamailio/run" -P "$work/kamailio/kamailio.pid" -w "$work/kamailio" \
        -A "UDP_PORT=$udp" -A "WS_PORT=$ws" -A WITH_RTPENGINE \
        -A "RTPENGINE_SOCK=\"udp:127.0.0.1:$ng\"" >"$work/kamailio.log" 2>&1 &
    pids+=("$!")
    wait_tcp "127.0.0.1:$ws"
    # Kamailio relays to an IPv4 literal: the load's PBX side.
    ramp "ws://127.0.0.1:$ws/" "$pid" "$PBX" rtpengine
    stop_all
}

# The floor, at each step of the ramp: CPU per datagram of a forwarder
# with nothing of a gateway in it.
floor() {
    echo "floor: sipline-floor forwarding on core 0, its load on core 1"
    for calls in ${CALLS//,/ }; do
        taskset -c 0 target/release/sipline-floor forward "$calls" $((SECONDS_EACH + 2)) >"$work/floor-$calls.txt" &
        local pid=$!
        sleep 0.3
        taskset -c 1 target/release/sipline-floor load "$calls" "$SECONDS_EACH" >/dev/null
        wait "$pid"
        cat "$work/floor-$calls.txt"
        awk -v c="$calls" '{ print c, $(NF-3) }' "$work/floor-$calls.txt" >>"$work/floor.txt"
    done
    echo
}
floor

for gateway in $GATEWAYS; do
    case "$gateway" in
        relay) relay ;;
        rtpengine) rtpengine_gateway ;;
        *) die "unknown gateway $gateway (relay, rtpengine)" ;;
    esac
    echo
done

# Side by side: the rows of both tables by call count (columns: calls, pps,
# CPU %, µs/pkt, p99, base p99, added p99, loss %, KiB/call).
if [ -f "$work/relay.txt" ] && [ -f "$work/rtpengine.txt" ]; then
    echo "relay against rtpengine (userspace), same ramp, same machine:"
    awk -v ramp="$CALLS" 'FNR == 1 { file++ } $1 ~ /^[0-9]+$/ { us[file, $1] = $4; p99[file, $1] = $7; loss[file, $1] = $8 }
        FILENAME ~ /floor/ { floor[$1] = $2 }
        END {
            printf " calls   relay µs/pkt   rtpengine µs/pkt   ratio   floor µs/pkt   ratio over the floor   relay added p99 µs   rtpengine added p99 µs   loss %% (relay / rtpengine)\n"
            n = split(ramp, order, ",")
            for (i = 1; i <= n; i++) {
                c = order[i]
                if ((1, c) in us && (2, c) in us) {
                    over = (us[1, c] > floor[c]) ? (us[2, c] - floor[c]) / (us[1, c] - floor[c]) : 0
                    printf "%6d %14.2f %18.2f %7.2f %14.2f %22.1f %20d %24d   %s / %s\n", c, us[1, c], us[2, c], us[2, c] / us[1, c], floor[c], over, p99[1, c], p99[2, c], loss[1, c], loss[2, c]
                }
            }
        }' "$work/relay.txt" "$work/rtpengine.txt" "$work/floor.txt"
fi
