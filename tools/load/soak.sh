#!/usr/bin/env bash
# A soak: CALLS calls to the embedded PBX's echo (ICE, DTLS-SRTP and digest,
# every packet checked on its way back) plus IDLE registered WebSockets that
# only send keep-alives, for SECONDS, through the real relay (release build),
# the relay pinned to core 0 and the load generator to core 1. The relay's
# RSS and open file descriptors are sampled every 10 s. It reports calls up
# and lost, packets sent and lost, idle sockets lost, and whether memory and
# descriptors stayed flat over the last half.
#
#   bash tools/load/soak.sh                       # 200 calls, 1,000 idle, 10 min
#   CALLS=20 IDLE=100 SECONDS_SOAK=60 bash tools/load/soak.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CALLS="${CALLS:-200}"
IDLE="${IDLE:-1000}"
SECONDS_SOAK="${SECONDS_SOAK:-600}"
OUT="${OUT:-target/soak}"
[ "$(nproc)" -ge 2 ] || { echo "needs two cores: one for the relay, one for the load" >&2; exit 1; }
mkdir -p "$OUT"

cargo build --release --locked -p sipline-relay -p sipline-load

HTTP=127.0.0.1:28180 SIP=127.0.0.1:25170
PASSWORD="soak-$(date +%s)"
# Every browser here is on 127.0.0.1: the per-address bounds are lifted.
SIPLINE_USERS="soak:$PASSWORD" RUST_LOG=warn,rtc_dtls=error taskset -c 0 \
    target/release/sipline-relay --embedded-pbx --domain sipline.local \
    --http-listen "$HTTP" --sip-listen "$SIP" --media-ports 40000-59999 \
    --max-connections-per-ip 100000 --max-http-connections-per-ip 100000 \
    --messages-per-second 100000 --message-burst 100000 >"$OUT/relay.log" 2>&1 &
relay=$!
sampler=""
cleanup() {
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
    kill "$relay" 2>/dev/null
    wait "$relay" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/${HTTP%:*}/${HTTP#*:}") 2>/dev/null && break
    sleep 0.05
done

# seconds, RSS in KiB, open descriptors: one line every 10 s.
(
    start=$(date +%s)
    while kill -0 "$relay" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$relay/status" 2>/dev/null || echo 0)
        fds=$(ls "/proc/$relay/fd" 2>/dev/null | wc -l)
        echo "$(( $(date +%s) - start )) $rss $fds"
        sleep 10
    done
) >"$OUT/samples.txt" &
sampler=$!

echo "soak: $CALLS calls + $IDLE idle registered WebSockets for $SECONDS_SOAK s (relay pid $relay, core 0)"
SIPLINE_LOAD_PASSWORD="$PASSWORD" taskset -c 1 target/release/sipline-load \
    --ws "ws://$HTTP/sip" --echo echo --domain sipline.local --user soak \
    --calls "$CALLS" --idle "$IDLE" --seconds "$SECONDS_SOAK" --setup-parallel 20 \
    --gateway-pid "$relay" \
    --json | tee "$OUT/report.json"
sleep 10 # one more sample, after the hangups

kill "$sampler" 2>/dev/null || true
sampler=""
python3 - "$OUT/samples.txt" "$OUT/report.json" <<'PY'
import json, sys
samples = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
report = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
sent, received = report["to_pbx"]["sent"], report["to_pbx"]["received"]
# The media phase's samples (setup and hangup excluded): its second half.
during = [s for s in samples[:-1] if s[2] > 0]
half = during[len(during) // 2:] or during
rss = [s[1] for s in half]
fds = [s[2] for s in half]
growth = (rss[-1] - rss[0]) / rss[0] * 100 if rss and rss[0] else 0.0
print(f"calls: {report['calls_up']} of {report['calls']} up, {report['failures']} failed or lost")
print(f"packets: {sent} sent, {received} came back, {sent - received} lost")
print(f"idle WebSockets: {report['idle_registered']} registered, {report['idle_lost']} lost")
print(f"relay RSS over the last half: {rss[0] / 1024:.1f} -> {rss[-1] / 1024:.1f} MiB ({growth:+.1f} %), "
      f"max {max(rss) / 1024:.1f} MiB")
print(f"relay descriptors over the last half: {min(fds)}..{max(fds)}; after the hangups: {samples[-1][2]}")
ok = (report["failures"] == 0 and report["calls_up"] == report["calls"] and sent == received
      and report["idle_lost"] in (0, None) and abs(growth) < 5)
print("soak: " + ("PASS" if ok else "FAIL"))
sys.exit(0 if ok else 1)
PY
