# shellcheck shell=bash
# Installs what sipline's two commands need, and nothing when it is all there.
# Sourced by demo/run.sh (the main command) and tests/run.sh (every test).
#
# Debian 12 packages come from apt; the Rust target from rustup. Each check is
# a file or dpkg lookup, so a warm machine pays well under a second.

# Debian packages the tests use: the SIP server, the far ends (SIPp and
# baresip), and the browser (Chromium, driven by playwright-core from npm).
SIPLINE_APT_PACKAGES=(kamailio kamailio-websocket-modules sip-tester baresip-core chromium)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

ensure_apt_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    step "installing Debian packages: ${missing[*]}"
    as_root apt-get update -q
    # policy-rc.d 101: do not let the packages start their system services
    # (a system Kamailio on 5060); the tests start their own on 127.0.0.1.
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod +x "$policy"
        created=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    [ "$created" -eq 1 ] && as_root rm -f "$policy"
    return 0
}

ensure_rust() {
    command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs), then run this again"
    command -v rustup >/dev/null || die "rustup not found: the wasm32 target needs a rustup-managed toolchain"
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        step "adding the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
    # The wasm-bindgen CLI must be the exact version sdk-wasm pins (its
    # own downloads do not work offline; crates.io does). No --locked: the
    # crates mirror can lag behind the CLI's lock file.
    local want
    want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' sdk-wasm/Cargo.toml)
    [ -n "$want" ] || die "sdk-wasm/Cargo.toml must pin wasm-bindgen exactly"
    if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $want" ]; then
        step "installing wasm-bindgen-cli $want (a few minutes, once)"
        cargo install wasm-bindgen-cli --version "$want" --force
    fi
}

# Kamailio lives in /usr/sbin, which a non-root PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

# Node (Debian 12's nodejs 18, or a newer one already installed) and the
# npm packages, installed from the lock files: the SDK package's build tools
# (typescript, binaryen's wasm-opt) and the browser tests' playwright-core,
# which never downloads a browser: the tests use /usr/bin/chromium.
ensure_node() {
    command -v node >/dev/null && command -v npm >/dev/null || ensure_apt_packages nodejs npm
    local dir
    for dir in npm tests/browser; do
        local stamp="$dir/node_modules/.package-lock.json"
        if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
            step "installing the npm packages of $dir"
            (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
        fi
    done
}

ensure_all() {
    ensure_rust
    ensure_apt_packages "${SIPLINE_APT_PACKAGES[@]}"
    ensure_node
}
