# shellcheck shell=bash
# What the packaging scripts share; sourced from the repository's root.

# The workspace's version (Cargo.toml's first `version = "…"`).
sipline_version() {
    sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1
}

# Whether executable $1 is dynamically linked: ldd lists its libraries as
# "name => path" (a static one gets "statically linked" or "not a dynamic
# executable").
is_dynamic() {
    ldd "$1" 2>&1 | grep -q '=>'
}
