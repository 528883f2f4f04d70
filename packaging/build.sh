#!/usr/bin/env bash
# Builds the nines packages into target/packages/:
#   amd64 / x86_64 always:  nines-agent and nines-aggregator, deb and rpm;
#   arm64 / aarch64:        the same, when the Debian cross toolchain is installed;
#   armhf:                  the nines-agent deb, likewise.
# (packaging/cross.sh install installs the cross toolchain; docs/packaging.md says more.)
#
#   packaging/build.sh [--native-only] [--out DIR]
#
# Needs cargo-deb and cargo-generate-rpm (`cargo install --locked cargo-deb cargo-generate-rpm`).
# The agent is built with the `dist-agent` profile (size), the aggregator with `dist`
# (release without symbols); the man pages and completions come from the native binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/cross-env.sh

native_only=false
out=target/packages
while [ $# -gt 0 ]; do
    case "$1" in
        --native-only) native_only=true ;;
        --out) out=$2; shift ;;
        *) echo "usage: $0 [--native-only] [--out DIR]" >&2; exit 64 ;;
    esac
    shift
done
for tool in cargo-deb cargo-generate-rpm; do
    if ! command -v "$tool" >/dev/null; then
        echo "$0: $tool is missing: cargo install --locked cargo-deb cargo-generate-rpm" >&2
        exit 1
    fi
done
mkdir -p "$out"

echo "== native build"
cargo build --locked -p nines-agent --profile dist-agent
cargo build --locked -p nines-aggregator --profile dist

echo "== man pages and completions"
for bin in nines-agent nines-aggregator; do
    case $bin in nines-agent) profile=dist-agent ;; *) profile=dist ;; esac
    rm -rf "target/assets/$bin"
    "target/$profile/$bin" generate-docs "target/assets/$bin"
    # Reproducible: no name or time stamp in the gzip header.
    gzip -9n "target/assets/$bin"/man/*.1
done

echo "== native packages"
cargo deb --locked -p nines-agent --no-build --no-strip -o "$out"
cargo deb --locked -p nines-aggregator --no-build --no-strip -o "$out"
cargo generate-rpm -p agent --profile dist-agent -o "$out"
cargo generate-rpm -p aggregator --profile dist -o "$out"

if ! $native_only; then
    for t in aarch64 armv7; do
        if ! cross_available "$t"; then
            echo "== $t skipped: $(cross_missing "$t") (packaging/cross.sh install)"
            continue
        fi
        triple=$(cross_triple "$t")
        echo "== $t build"
        cross_cargo build --locked -p nines-agent --profile dist-agent --target "$triple" \
            --target-dir target-cross
        # The aggregator is packaged for 64-bit ARM only: a central server with a redb store
        # that maps up to its whole file wants a 64-bit address space.
        if [ "$t" = aarch64 ]; then
            cross_cargo build --locked -p nines-aggregator --profile dist --target "$triple" \
                --target-dir target-cross
        fi
        echo "== $t packages"
        CARGO_TARGET_DIR=target-cross cargo deb --locked -p nines-agent --no-build --no-strip \
            --target "$triple" -o "$out"
        if [ "$t" = aarch64 ]; then
            CARGO_TARGET_DIR=target-cross cargo deb --locked -p nines-aggregator --no-build \
                --no-strip --target "$triple" -o "$out"
            # --auto-req no: rpm's dependency scan runs ldd, which cannot read a foreign
            # binary; these need only glibc, which every rpm system has.
            for pkg in agent aggregator; do
                case $pkg in agent) profile=dist-agent ;; *) profile=dist ;; esac
                cargo generate-rpm -p "$pkg" --profile "$profile" --target "$triple" \
                    --target-dir target-cross --arch aarch64 --auto-req no -o "$out"
            done
        fi
    done
fi

echo "== packages"
ls -l "$out"
