#!/usr/bin/env bash
# Measures the stripped size of nines-agent under the profile choices that matter for size
# (LTO, codegen units, panic, strip, opt-level), for x86-64 and, when the Debian cross
# toolchain is installed (packaging/cross.sh install), aarch64 and armv7.
#
#   packaging/sizes.sh [TARGET...]     TARGET: native aarch64 armv7 (default: those available)
#
# Every variant is a full build of the agent (a few minutes each on two cores); results are
# printed as a Markdown table, sizes in bytes and MiB. Variants set profile keys through
# CARGO_PROFILE_* so that Cargo.toml is not edited; `dist` and `dist-agent` are the profiles
# the packages use.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/cross-env.sh

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(native)
    cross_available aarch64 && targets+=(aarch64)
    cross_available armv7 && targets+=(armv7)
fi

# name | profile | extra environment
variants=(
    "release (opt 3, thin LTO, 1 CGU, abort, strip debuginfo)|release|"
    "release + strip symbols|release|CARGO_PROFILE_RELEASE_STRIP=symbols"
    "release + strip symbols + fat LTO|release|CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_LTO=fat"
    "release + strip symbols + panic unwind|release|CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_PANIC=unwind"
    "release + strip symbols + 16 CGU|release|CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16"
    "agent (opt z, fat LTO, strip debuginfo)|agent|"
    "dist-agent (opt z, fat LTO, strip symbols)|dist-agent|"
    "dist-agent with opt s|dist-agent|CARGO_PROFILE_DIST_AGENT_OPT_LEVEL=s"
)

printf '| target | variant | bytes | MiB |\n|---|---|---:|---:|\n'
for t in "${targets[@]}"; do
    for v in "${variants[@]}"; do
        IFS='|' read -r name profile extra <<<"$v"
        # The full set on aarch64 (the size goal is set there); the shipped profiles elsewhere.
        case "$t:$profile:$extra" in
            aarch64:*|*:release:|*:dist-agent:) ;;
            *) continue ;;
        esac
        if [ "$t" = native ]; then
            bin=target/$profile/nines-agent
            (for kv in $extra; do export "${kv?}"; done
             cargo build -q --locked -p nines-agent --profile "$profile" >&2)
        else
            triple=$(cross_triple "$t")
            bin=target-cross/$triple/$profile/nines-agent
            (for kv in $extra; do export "${kv?}"; done
             cross_cargo build -q --locked -p nines-agent --profile "$profile" \
                 --target "$triple" --target-dir target-cross >&2)
        fi
        size=$(stat -c %s "$bin")
        printf '| %s | %s | %d | %.2f |\n' "$t" "$name" "$size" "$(echo "$size / 1048576" | bc -l)"
    done
done
