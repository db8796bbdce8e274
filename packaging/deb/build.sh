#!/usr/bin/env bash
# Builds the Debian package of the relay with dpkg-deb (no other tool):
#   bash packaging/deb/build.sh                  the static release binary
#   BINARY=path bash packaging/deb/build.sh      that binary instead
# Prints the path of target/packaging/sipline-relay_<version>_amd64.deb.
#
# It installs /usr/bin/sipline-relay, the systemd unit (its own user,
# hardened: packaging/sipline-relay.service), /etc/sipline/relay.toml (a
# conffile: relay/relay.example.toml, every key explained; readable by the
# service's group only, as it may hold the admin token and passwords) and
# the README. The postinst makes the system user `sipline`, then enables
# and starts the service where systemd runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
source packaging/lib.sh
here=packaging/deb
bin=${BINARY:-$(bash packaging/static.sh)}
version=$(sipline_version)
arch=$(dpkg --print-architecture)
out=target/packaging
stage=$out/stage
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" \
    "$stage/etc/sipline" "$stage/usr/share/doc/sipline-relay"
install -m 0755 "$bin" "$stage/usr/bin/sipline-relay"
strip --strip-unneeded "$stage/usr/bin/sipline-relay"
install -m 0644 packaging/sipline-relay.service "$stage/lib/systemd/system/"
install -m 0640 relay/relay.example.toml "$stage/etc/sipline/relay.toml"
install -m 0644 README.md "$stage/usr/share/doc/sipline-relay/README.md"
printf 'sipline\nLicense: MIT\nSource: https://github.com/sipline/sipline\n' \
    > "$stage/usr/share/doc/sipline-relay/copyright"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$stage/DEBIAN/$script"
done
echo /etc/sipline/relay.toml > "$stage/DEBIAN/conffiles"

# A static binary needs nothing; a dynamic one (a test's debug build)
# depends on what dpkg-shlibdeps finds it linked against.
depends=
if is_dynamic "$stage/usr/bin/sipline-relay"; then
    scratch=$(mktemp -d)
    mkdir -p "$scratch/debian"
    printf 'Source: sipline\n\nPackage: sipline-relay\nArchitecture: any\n' > "$scratch/debian/control"
    depends=$(cd "$scratch" && dpkg-shlibdeps -O "$OLDPWD/$stage/usr/bin/sipline-relay" 2>/dev/null |
        sed -n 's/^shlibs:Depends=//p')
    rm -rf "$scratch"
fi
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
{
    echo "Package: sipline-relay"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: sipline developers <dev@sipline.invalid>"
    echo "Installed-Size: $size"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Pre-Depends: passwd"
    echo "Section: net"
    echo "Priority: optional"
    echo "Homepage: https://github.com/sipline/sipline"
    echo "Description: SIP over WebSocket and WebRTC media to an existing SIP PBX"
    echo " sipline's relay sits next to a PBX that speaks plain SIP and RTP:"
    echo " browsers reach it over WebSocket (RFC 7118) with WebRTC media"
    echo " (ICE-lite, DTLS-SRTP), and it speaks SIP and RTP (or SDES-SRTP)"
    echo " to the PBX, rewriting SDP in between. Never an open relay: it"
    echo " talks only to the PBXs it is configured with."
} > "$stage/DEBIAN/control"
(cd "$stage" && find usr lib -type f -exec md5sum {} +) > "$stage/DEBIAN/md5sums"
deb=$out/sipline-relay_${version}_$arch.deb
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "$deb"
