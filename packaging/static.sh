#!/usr/bin/env bash
# Builds the relay as one static executable (glibc, `crt-static`, libopus
# linked in): no shared library needed, so it runs in an empty container
# image (`FROM scratch`) and on any x86-64 Linux.
#   bash packaging/static.sh            release profile (what ships)
#   PROFILE=dev bash packaging/static.sh   faster to build (the tests)
# Prints the executable's path. musl would be the usual road to a static
# binary, but its Rust standard library comes only from rustup's server,
# which this project's build machines cannot reach; glibc's static libc
# serves, since the relay resolves names itself (hickory), not through NSS.
set -euo pipefail
cd "$(dirname "$0")/.."
source packaging/lib.sh
profile=${PROFILE:-release}
target=x86_64-unknown-linux-gnu
# --target keeps the static flag off build scripts and proc macros.
RUSTFLAGS="-C target-feature=+crt-static" LIBOPUS_STATIC=1 \
    cargo build --locked -p sipline-relay --bin sipline-relay --target "$target" --profile "$profile" >&2
dir=$profile
[ "$profile" = dev ] && dir=debug
bin=target/$target/$dir/sipline-relay
if is_dynamic "$bin"; then
    echo "error: $bin is not static: $(ldd "$bin" | tr '\n' ' ')" >&2
    exit 1
fi
echo "$bin"
