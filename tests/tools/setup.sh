# shellcheck shell=bash
# Installs what sipline's two commands need, and nothing when it is all there.
# Sourced by demo/run.sh (the main command: ensure_build) and tests/run.sh
# (every test: ensure_all).
#
# Debian 12 packages come from apt; Rust, when absent, and its wasm32 target
# from rustup. Each check is a file or dpkg lookup, so a warm machine pays
# well under a second.

# Debian packages the tests use: the SIP server (with TLS, and openssl
# for the test CA it shows), the classic media gateway (rtpengine, behind
# Kamailio), the far ends (SIPp and baresip), DNS, a load balancer and a
# packet capture, what the packaging
# test builds and installs with (debootstrap, umoci, a Python venv), and
# the browsers (Chromium, driven by playwright-core from npm, and Firefox
# ESR, driven by puppeteer-core over WebDriver BiDi).
SIPLINE_APT_PACKAGES=(kamailio kamailio-websocket-modules kamailio-presence-modules kamailio-tls-modules openssl rtpengine-daemon sip-tester baresip-core dnsmasq-base haproxy tcpdump debootstrap umoci python3-venv systemd chromium firefox-esr)

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
    # The package lists once per command, however many steps install.
    if [ -z "${SIPLINE_APT_UPDATED:-}" ]; then
        as_root apt-get update -q
        SIPLINE_APT_UPDATED=1
    fi
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

# A machine without Rust gets the official rustup-init (checked against its
# published SHA-256) and the stable toolchain with rustfmt and clippy, in
# ~/.cargo as rustup.rs would put it; a C compiler and linker come from
# Debian (ring builds C, and rustc links with cc).
install_rust() {
    ensure_apt_packages curl ca-certificates gcc libc6-dev
    local arch
    arch="$(uname -m)-unknown-linux-gnu"
    local url="https://static.rust-lang.org/rustup/dist/$arch/rustup-init"
    local dir
    dir=$(mktemp -d)
    step "installing Rust (rustup, stable toolchain) into ${CARGO_HOME:-$HOME/.cargo}"
    curl --proto '=https' --tlsv1.2 -fsS -o "$dir/rustup-init" "$url" || die "could not download $url"
    curl --proto '=https' --tlsv1.2 -fsS -o "$dir/rustup-init.sha256" "$url.sha256" || die "could not download $url.sha256"
    [ "$(cut -d' ' -f1 "$dir/rustup-init.sha256")" = "$(sha256sum "$dir/rustup-init" | cut -d' ' -f1)" ] \
        || die "rustup-init does not match its published SHA-256"
    chmod +x "$dir/rustup-init"
    "$dir/rustup-init" -y -q --profile minimal --default-toolchain stable --component rustfmt,clippy
    rm -rf "$dir"
    printf 'Rust is in %s/bin: open a new shell, or run `. "%s/env"`, to use cargo yourself.\n' \
        "${CARGO_HOME:-$HOME/.cargo}" "${CARGO_HOME:-$HOME/.cargo}"
}

ensure_rust() {
    # rustup's usual home, for a shell that has not read ~/.profile since.
    case ":$PATH:" in *":${CARGO_HOME:-$HOME/.cargo}/bin:"*) ;; *) export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" ;; esac
    command -v cargo >/dev/null || install_rust
    command -v rustup >/dev/null || die "rustup not found: the wasm32 target needs a rustup-managed toolchain (https://rustup.rs)"
    command -v cc >/dev/null || ensure_apt_packages gcc libc6-dev
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        step "adding the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
    # The wasm-bindgen CLI must be the exact version sdk-wasm pins (its
    # own downloads do not work offline; crates.io does). No --locked: the
    # crates mirror can lag behind the CLI's lock file.
    local want
    want=$(sed -n 's/^wasm-bindgen = .*"=\([0-9][0-9.]*\)".*$/\1/p' sdk-wasm/Cargo.toml)
    [ -n "$want" ] || die "sdk-wasm/Cargo.toml must pin wasm-bindgen exactly"
    if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $want" ]; then
        step "installing wasm-bindgen-cli $want (a few minutes, once)"
        cargo install wasm-bindgen-cli --version "$want" --force
    fi
}

# Kamailio lives in /usr/sbin, which a non-root PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

# Node (Debian 12's nodejs 18, or a newer one already installed) and the
# npm packages of each folder given, installed from its lock file: npm/ has
# the SDK package's build tools (typescript, binaryen's wasm-opt, esbuild),
# tests/browser/ the browser drivers (playwright-core, puppeteer-core),
# which never download a browser: the tests use Debian's; tests/bundlers/
# the bundlers the example apps are built with (Vite, webpack, esbuild).
ensure_node() {
    command -v node >/dev/null && command -v npm >/dev/null || ensure_apt_packages nodejs npm
    local dir
    for dir in "$@"; do
        local stamp="$dir/node_modules/.package-lock.json"
        if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
            step "installing the npm packages of $dir"
            (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 \
                npm ci --no-audit --no-fund --loglevel=error)
        fi
    done
}

# What the main command needs: Rust with its wasm32 target and the
# wasm-bindgen CLI, Debian's libopus (the relay decodes Opus recordings
# with it; pkg-config finds it), and Node with the SDK package's build
# tools.
ensure_build() {
    ensure_rust
    ensure_apt_packages pkg-config libopus-dev
    ensure_node npm
}

# What every test needs besides: the SIP server, the far ends, the browsers
# and their drivers, and a C++ compiler for the fuzz targets.
ensure_all() {
    ensure_build
    ensure_apt_packages "${SIPLINE_APT_PACKAGES[@]}"
    # The fuzz targets link libFuzzer, which libfuzzer-sys compiles as C++.
    command -v c++ >/dev/null || ensure_apt_packages g++
    ensure_node tests/browser tests/bundlers
}
