# shellcheck shell=bash
# Sourced by the packaging scripts: how to cross-compile with Debian's own Rust toolchain
# (rustc-web, cargo-web and libstd-rust-web-dev:<arch>; packaging/cross.sh --install installs
# them). TARGET below is one of: aarch64 armv7.

# Rust target triple of TARGET.
cross_triple() {
    case "$1" in
        aarch64) echo aarch64-unknown-linux-gnu ;;
        armv7) echo armv7-unknown-linux-gnueabihf ;;
        *) echo "unknown target $1 (aarch64 or armv7)" >&2; return 1 ;;
    esac
}

# Debian architecture of TARGET.
cross_debarch() {
    case "$1" in
        aarch64) echo arm64 ;;
        armv7) echo armhf ;;
        *) echo "unknown target $1" >&2; return 1 ;;
    esac
}

# GNU triple (prefix of the cross gcc, binutils and the qemu sysroot) of TARGET.
cross_gnu() {
    case "$1" in
        aarch64) echo aarch64-linux-gnu ;;
        armv7) echo arm-linux-gnueabihf ;;
        *) echo "unknown target $1" >&2; return 1 ;;
    esac
}

# qemu-user emulator of TARGET.
cross_qemu() {
    case "$1" in
        aarch64) echo qemu-aarch64 ;;
        armv7) echo qemu-arm ;;
        *) echo "unknown target $1" >&2; return 1 ;;
    esac
}

# Why TARGET cannot be built here, or nothing if it can. The target's standard library must
# be the same version as the rustc that links against it.
cross_missing() {
    local t=$1 arch rustc std
    arch=$(cross_debarch "$t") || return 0
    rustc=$(dpkg-query -W -f='${Version}' rustc-web 2>/dev/null || true)
    std=$(dpkg-query -W -f='${Version}' "libstd-rust-web-dev:$arch" 2>/dev/null || true)
    if [ -z "$rustc" ] || [ ! -x /usr/bin/rustc ]; then
        echo "rustc-web is not installed"
    elif [ -z "$std" ]; then
        echo "libstd-rust-web-dev:$arch is not installed"
    elif [ "$std" != "$rustc" ]; then
        echo "libstd-rust-web-dev:$arch is $std but rustc-web is $rustc"
    elif ! command -v "$(cross_gnu "$t")-gcc" >/dev/null; then
        echo "$(cross_gnu "$t")-gcc is not installed"
    fi
}

cross_available() {
    [ -z "$(cross_missing "$1")" ]
}

# Debian's cargo and rustc (rustup's rustc, first on PATH, has no standard library for other
# targets), with the cross gcc as linker and C compiler (ring's assembly and C).
cross_cargo() {
    local t
    for t in aarch64 armv7; do
        local triple gnu up
        triple=$(cross_triple "$t")
        gnu=$(cross_gnu "$t")
        up=$(echo "$triple" | tr 'a-z-' 'A-Z_')
        export "CARGO_TARGET_${up}_LINKER=$gnu-gcc"
        export "CC_${triple//-/_}=$gnu-gcc"
        export "AR_${triple//-/_}=$gnu-ar"
    done
    RUSTC=/usr/bin/rustc /usr/bin/cargo "$@"
}
