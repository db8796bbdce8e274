#!/usr/bin/env bash
# The new user's check: the README's two commands on a Debian 12 with
# nothing installed, timed.
#
#   sudo bash tools/fresh-debian/check.sh [FOLDER]     (default /var/tmp/sipline-fresh)
#
# It debootstraps a minimal Debian 12 (bookworm, minbase: no Rust, no
# Node, no compiler, no curl) into FOLDER, with the sources a normal install
# has (bookworm, -updates, -security), and clones this repository's HEAD
# into it. Then, chrooted, as the README says:
#   1. `bash demo/run.sh`, timed until it prints the URL; the page and the
#      SDK's wasm module must be served there;
#   2. `bash tests/run.sh`, timed, and its exit code;
#   3. `bash demo/run.sh` again, timed the same way (nothing to rebuild),
#      and a browser at the URL: headless Chromium (which the test command
#      installed; the main command installs no browser, the user has one)
#      connects as alice, calls `echo` and must see its tone on the page's
#      meters.
# Each line of the summary at the end goes into the issue note as it is.
# Needs root (debootstrap, chroot, mounts) and about 6 GB in FOLDER.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
commit=$(git -C "$repo" rev-parse --short HEAD)
root="${1:-/var/tmp/sipline-fresh}"
port=18080
[ "$(id -u)" -eq 0 ] || { echo "run as root: debootstrap and chroot need it" >&2; exit 1; }
command -v debootstrap >/dev/null || apt-get install -y -q debootstrap

mounts=(proc sys dev)
cleanup() {
    pkill -INT -f "bash demo/(run|serve)\.sh" 2>/dev/null || true
    for m in "${mounts[@]}"; do umount -R "$root/$m" 2>/dev/null || true; done
}
trap cleanup EXIT

if [ ! -x "$root/usr/bin/apt-get" ]; then
    echo "==> debootstrap bookworm (minbase) into $root"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
fi
cat >"$root/etc/apt/sources.list" <<'SOURCES'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The host's network trust: where HTTPS goes through a proxy with its own
# CA (as on the machines this project is built on), every machine on that
# network has the CA; installing ca-certificates in the chroot picks it up.
mkdir -p "$root/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"

rm -rf "$root/root/sipline"
git clone -q "$repo" "$root/root/sipline"
echo "==> fresh clone of $commit in $root/root/sipline"

# In the chroot, as root, with the login environment a new shell has.
# The CA variables the host's environment sets for that proxy go along.
in_root() {
    local ca=()
    for v in SSL_CERT_FILE CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS; do [ -n "${!v:-}" ] && ca+=("$v=${!v}"); done
    chroot "$root" env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "${ca[@]}" bash -c "$1"
}

# Starts the main command in the background and waits until it prints the
# URL; sets $took to the seconds that took.
start_main() {
    local log=$1 t0
    t0=$(date +%s)
    in_root "cd /root/sipline && SIPLINE_HTTP_PORT=$port bash demo/run.sh" >"$log" 2>&1 &
    main_pid=$!
    until grep -q "Open        http://127.0.0.1:$port/" "$log"; do
        kill -0 "$main_pid" 2>/dev/null || { tail -30 "$log" >&2; echo "the main command failed" >&2; exit 1; }
        sleep 1
    done
    took=$(($(date +%s) - t0))
}

# Ctrl-C, as the person at the terminal would.
stop_main() {
    pkill -INT -f "bash demo/(run|serve)\.sh" || true
    wait "$main_pid" || true
}

# A browser at the printed URL: connect as alice, call echo, hear the tone.
# Its microphone is a 1 kHz tone, written by the Node the command installed.
cat >"$root/tmp/tone.js" <<'TONE'
const rate = 48000, n = rate * 5, b = Buffer.alloc(44 + 2 * n);
b.write("RIFF", 0); b.writeUInt32LE(36 + 2 * n, 4); b.write("WAVEfmt ", 8);
b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22); b.writeUInt32LE(rate, 24);
b.writeUInt32LE(2 * rate, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34);
b.write("data", 36); b.writeUInt32LE(2 * n, 40);
for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(16000 * Math.sin((2 * Math.PI * 1000 * i) / rate)), 44 + 2 * i);
require("fs").writeFileSync("/tmp/tone.wav", b);
TONE
call_echo() {
    in_root "node /tmp/tone.js && cd /root/sipline/tests/browser && node demo.mjs \
        '{\"url\":\"http://127.0.0.1:$port/\",\"mic\":\"/tmp/tone.wav\",\"password\":\"alice-demo\",\"target\":\"echo\"}'"
}

# What the browser fetches first: the page, and the SDK's wasm module.
served() {
    curl -fsS -o /dev/null -w '%{http_code} %{content_type}' "http://127.0.0.1:$port/$1"
}

start_main "$root/main-1.log"
first=$took
echo "==> main command, first run: URL printed after ${first} s"
page="$(served "") (page), $(served sdk/wasm/sipline_wasm_bg.wasm) (wasm)"
echo "    served: $page"
stop_main

echo "==> the test command"
t0=$(date +%s)
set +e
in_root "cd /root/sipline && bash tests/run.sh" >"$root/tests.log" 2>&1
rc=$?
set -e
tests_took=$(($(date +%s) - t0))
tail -5 "$root/tests.log"

start_main "$root/main-2.log"
second=$took
echo "==> main command, second run: URL printed after ${second} s"
echo_result=$(call_echo)
echo "    the page's echo call: $echo_result"
stop_main

cat <<SUMMARY

fresh Debian 12 (debootstrap minbase, chroot as root), clone of $commit:
  bash demo/run.sh, first run:   URL after ${first} s; $page
  bash tests/run.sh:             exit ${rc} after ${tests_took} s
  bash demo/run.sh, second run:  URL after ${second} s
  the page's echo call:          $echo_result
  logs: $root/main-1.log, $root/tests.log, $root/main-2.log
SUMMARY
exit "$rc"
