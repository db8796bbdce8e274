#!/usr/bin/env bash
# The relay as operators install it, built and started (tests/run.sh runs
# this; it needs root, as debootstrap and chroot do):
#   1. the static binary (packaging/static.sh; the dev profile here: the
#      same flags, a faster build);
#   2. the Debian package (packaging/deb/build.sh), installed with dpkg in
#      a clean Debian 12 (debootstrap's minbase, made once and kept in
#      $SIPLINE_CACHE), then started inside it as its systemd unit says
#      (its user, its working directory, its command line): /healthz
#      answers, SIGTERM stops it; the unit is checked by
#      `systemd-analyze verify`, and its exposure score printed;
#   3. the container image (packaging/container/build.sh, umoci),
#      unpacked, and its entrypoint run as its user in its own root:
#      /healthz answers, SIGTERM stops it;
#   4. the Kubernetes manifests (packaging/k8s) validated against
#      Kubernetes' schemas (kubernetes-validate, from PyPI, in a venv).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/tools/setup.sh
source packaging/lib.sh
[ "$(id -u)" -eq 0 ] || die "tests/packaging.sh needs root (debootstrap, chroot, mount)"
# systemd for systemd-analyze (a minimal Debian has none).
ensure_apt_packages debootstrap umoci python3-venv curl systemd

cache=${SIPLINE_CACHE:-$HOME/.cache/sipline}
mirror=${SIPLINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache" target/packaging
work=$(mktemp -d /tmp/sipline-packaging.XXXXXX)
pids=()
mounted=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits for `GET /healthz` on port $1 to say ok; fails with log $2.
healthy() {
    for _ in $(seq 100); do
        [ "$(curl -fsS "http://127.0.0.1:$1/healthz" 2>/dev/null)" = ok ] && return 0
        sleep 0.1
    done
    echo "no /healthz on $1; the relay's log:" >&2
    cat "$2" >&2
    return 1
}

# SIGTERMs pid $1 and waits until it exits by itself, with status 0.
stops() {
    kill -TERM "$1"
    local status=0
    timeout 15 tail --pid="$1" -f /dev/null || { echo "pid $1 did not stop on SIGTERM" >&2; return 1; }
    wait "$1" || status=$?
    [ "$status" -eq 0 ] || { echo "it exited with $status" >&2; return 1; }
}

step "packaging: the static binary"
bin=$(PROFILE=dev bash packaging/static.sh)

step "packaging: the Debian package, installed and started in a clean Debian 12"
deb=$(BINARY=$bin bash packaging/deb/build.sh)
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
base=$cache/debian-bookworm-minbase.tar
if [ ! -f "$base" ]; then
    debootstrap --variant=minbase bookworm "$work/fresh" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    tar -C "$work/fresh" -cf "$base.part" . && mv "$base.part" "$base"
    rm -rf "$work/fresh"
fi
root=$work/debian
mkdir -p "$root"
tar -C "$root" -xf "$base"
mount -t proc proc "$root/proc"
mounted+=("$root/proc")
cp "$deb" "$root/tmp/sipline-relay.deb"
chroot "$root" dpkg -i /tmp/sipline-relay.deb
chroot "$root" getent passwd sipline | grep -q ':/var/lib/sipline:/usr/sbin/nologin$'
[ "$(chroot "$root" stat -c '%U:%G %a' /etc/sipline/relay.toml)" = "root:sipline 640" ]
unit=$root/lib/systemd/system/sipline-relay.service
# The host's systemd checks the unit (a minbase system has none): every
# key known and well-formed (it warns, and the test fails, otherwise), the
# command there to run; then rates its sandboxing.
sed "s#^ExecStart=/usr/bin/sipline-relay#ExecStart=$root/usr/bin/sipline-relay#" "$unit" \
    >"$work/sipline-relay.service"
complaints=$(systemd-analyze verify "$work/sipline-relay.service" 2>&1)
[ -z "$complaints" ] || { echo "systemd-analyze verify: $complaints" >&2; exit 1; }
systemd-analyze security --offline=true --root="$root" sipline-relay.service 2>/dev/null |
    grep -o 'Overall exposure level.*'
# What systemd would do: StateDirectory, WorkingDirectory, User, ExecStart.
user=$(sed -n 's/^User=//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
workdir=$(sed -n 's/^WorkingDirectory=//p' "$unit")
install -d -m 0750 "$root$workdir"
chroot "$root" chown "$user:$user" "$workdir"
http=$(free_port)
sip=$(free_port)
SIPLINE_HTTP_LISTEN=127.0.0.1:$http SIPLINE_SIP_LISTEN=127.0.0.1:$sip \
    chroot --userspec="$user:$user" "$root" sh -c "cd $workdir && exec $exec_start" \
    >"$work/deb-relay.log" 2>&1 &
pids+=($!)
healthy "$http" "$work/deb-relay.log"
curl -fsS "http://127.0.0.1:$http/metrics" | grep -q '^sipline_ws_connections 0$'
[ "$(stat -c %u "/proc/${pids[-1]}")" = "$(chroot "$root" id -u "$user")" ]
stops "${pids[-1]}"
echo "installed, started as $user from $exec_start, stopped on SIGTERM"

step "packaging: the container image, unpacked and its entrypoint run"
image=$(BINARY=$bin bash packaging/container/build.sh)
mkdir -p "$work/oci"
tar -C "$work/oci" -xf "$image"
version=$(sipline_version)
umoci unpack --image "$work/oci:$version" "$work/bundle" >/dev/null
# The runtime spec umoci wrote: the image's entrypoint and user.
read -r uid gid args < <(python3 -c '
import json, shlex, sys
p = json.load(open(sys.argv[1]))["process"]
print(p["user"]["uid"], p["user"]["gid"], shlex.join(p["args"]))' "$work/bundle/config.json")
[ "$uid" = 65534 ] && [ "$gid" = 65534 ]
# What every OCI runtime gives a container: /proc, and the default devices
# (the relay's crypto reads /dev/random).
rootfs=$work/bundle/rootfs
listing=$(cd "$rootfs" && find . -type f | sort | tr '\n' ' ')
mkdir -p "$rootfs/proc" "$rootfs/dev"
mount -t proc proc "$rootfs/proc"
mounted+=("$rootfs/proc")
for dev in null:1:3 zero:1:5 random:1:8 urandom:1:9; do
    IFS=: read -r name major minor <<<"$dev"
    mknod -m 0666 "$rootfs/dev/$name" c "$major" "$minor"
done
http=$(free_port)
sip=$(free_port)
SIPLINE_HTTP_LISTEN=127.0.0.1:$http SIPLINE_SIP_LISTEN=127.0.0.1:$sip \
    chroot --userspec="$uid:$gid" "$rootfs" $args >"$work/image-relay.log" 2>&1 &
pids+=($!)
healthy "$http" "$work/image-relay.log"
stops "${pids[-1]}"
echo "the image's entrypoint ($args) ran as $uid:$gid in a root holding only: $listing"

step "packaging: the Kubernetes manifests against Kubernetes' schemas"
venv=$cache/venv-kubernetes-validate
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi
"$venv/bin/kubernetes-validate" --strict packaging/k8s/sipline-relay.yaml
