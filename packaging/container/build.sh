#!/usr/bin/env bash
# Builds the relay's container image as packaging/container/Containerfile
# describes it (FROM scratch, the static binary, the example config, user
# 65534, the same entrypoint), with umoci: no container engine runs on the
# project's build machines. Writes target/packaging/sipline-relay-oci.tar,
# an OCI image archive (`podman load -i`, `skopeo copy oci-archive:...`),
# and prints its path.
#   bash packaging/container/build.sh              the static release binary
#   BINARY=path bash packaging/container/build.sh  that (static) binary
set -euo pipefail
cd "$(dirname "$0")/../.."
source packaging/lib.sh
bin=${BINARY:-$(bash packaging/static.sh)}
if is_dynamic "$bin"; then
    echo "error: $bin is dynamically linked: FROM scratch needs the static build" >&2
    exit 1
fi
version=$(sipline_version)
out=target/packaging
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout=$work/oci
umoci init --layout "$layout"
umoci new --image "$layout:$version"
umoci unpack --image "$layout:$version" "$work/bundle" >/dev/null
install -m 0755 "$bin" "$work/bundle/rootfs/sipline-relay"
strip --strip-unneeded "$work/bundle/rootfs/sipline-relay"
install -D -m 0644 relay/relay.example.toml "$work/bundle/rootfs/etc/sipline/relay.toml"
umoci repack --image "$layout:$version" "$work/bundle"
umoci config --image "$layout:$version" \
    --config.user 65534:65534 \
    --config.entrypoint=/sipline-relay --config.entrypoint=--config \
    --config.entrypoint=/etc/sipline/relay.toml \
    --config.exposedports 8080/tcp --config.exposedports 5070/udp \
    --author "sipline developers" >/dev/null
umoci gc --layout "$layout"
mkdir -p "$out"
tar -C "$layout" -cf "$out/sipline-relay-oci.tar" .
echo "$out/sipline-relay-oci.tar"
