#!/usr/bin/env bash
# ARM builds with Debian's own Rust toolchain (rustup cannot fetch other targets' standard
# library here; Debian ships it as libstd-rust-web-dev:<arch>), and smoke tests under qemu-user.
#
#   packaging/cross.sh install            dpkg --add-architecture, apt-get install (as root)
#   packaging/cross.sh build [TARGET...]  nines-agent (and for aarch64 nines-aggregator) into
#                                         target-cross/<triple>/<profile>/
#   packaging/cross.sh smoke [TARGET...]  under qemu: `nines-agent collect-once` prints a
#                                         batch, and the ARM agent streams over mTLS to a native
#                                         nines-aggregator (needs curl)
#
# TARGET: aarch64, armv7; default: those whose toolchain is installed. armv7 needs
# libstd-rust-web-dev:armhf of exactly the version of rustc-web; when the armhf index cannot be
# had at that version, armv7 is skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/cross-env.sh

verb=${1:-}
shift || true

targets() {
    if [ $# -gt 0 ]; then
        printf '%s\n' "$@"
        return
    fi
    local t
    for t in aarch64 armv7; do
        if cross_available "$t"; then
            echo "$t"
        else
            echo "$t skipped: $(cross_missing "$t")" >&2
        fi
    done
}

install() {
    export DEBIAN_FRONTEND=noninteractive
    dpkg --add-architecture arm64
    dpkg --add-architecture armhf
    if ! apt-get update; then
        # An armhf index that fails to download (a mirror mid-sync) makes apt ignore the whole
        # suite's new indexes, arm64 included: go on without armhf.
        echo "cross.sh: apt-get update failed with armhf; removing armhf and trying again" >&2
        dpkg --remove-architecture armhf
        apt-get update
    fi
    apt-get install -y rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu \
        qemu-user curl
    local want have
    want=$(dpkg-query -W -f='${Version}' rustc-web)
    have=$(apt-cache policy libstd-rust-web-dev:armhf 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ "$have" = "$want" ]; then
        apt-get install -y libstd-rust-web-dev:armhf gcc-arm-linux-gnueabihf
    else
        echo "cross.sh: armv7 skipped: libstd-rust-web-dev:armhf is ${have:-not available}, rustc-web is $want" >&2
        # An armhf architecture with nothing installed from it would only slow down (or, with
        # a broken index, fail) every later apt-get update.
        local foreign installed
        foreign=$(dpkg --print-foreign-architectures)
        installed=$(dpkg-query -W -f='${db:Status-Abbrev}${binary:Package}\n' '*:armhf' 2>/dev/null || true)
        if grep -qx armhf <<<"$foreign" && ! grep -q '^ii' <<<"$installed"; then
            dpkg --remove-architecture armhf
        fi
    fi
}

build() {
    local t triple
    for t in $(targets "$@"); do
        if ! cross_available "$t"; then
            echo "cross.sh: $t: $(cross_missing "$t")" >&2
            exit 1
        fi
        triple=$(cross_triple "$t")
        cross_cargo build --locked -p nines-agent --profile dist-agent --target "$triple" \
            --target-dir target-cross
        if [ "$t" = aarch64 ]; then
            cross_cargo build --locked -p nines-aggregator --profile dist --target "$triple" \
                --target-dir target-cross
        fi
        ls -l "target-cross/$triple"/dist*/nines-*[!.d]
    done
}

# Stops what this script started, by process id.
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    [ -n "${tmp:-}" ] && rm -rf "$tmp"
}

smoke() {
    local t triple qemu agent agg
    trap cleanup EXIT
    tmp=$(mktemp -d)
    agg=target/dist/nines-aggregator
    [ -x "$agg" ] || cargo build --locked -p nines-aggregator --profile dist
    for t in $(targets "$@"); do
        triple=$(cross_triple "$t")
        qemu=$(cross_qemu "$t")
        agent="target-cross/$triple/dist-agent/nines-agent"
        [ -x "$agent" ] || build "$t"
        echo "== $t: file"
        file "$agent" 2>/dev/null || true
        # -L /: the host's multiarch libraries and loader. With -L /usr/<gnu triple>, a program
        # that starts a thread hangs in pthread_create (mismatched loader and libc).
        echo "== $t: collect-once"
        local batch
        batch=$("$qemu" -L / "$agent" collect-once)
        grep -E '^cpu_usage_ratio\{cpu="total"\} ' <<<"$batch"
        grep -E '^memory_available_bytes ' <<<"$batch"
        echo "$(wc -l <<<"$batch") samples"

        echo "== $t: streams to a native aggregator over mTLS"
        local dir=$tmp/$t host="smoke-$t" ingest api token entry
        mkdir -p "$dir"
        "$agg" ca init --dir "$dir/pki" --san localhost --san 127.0.0.1 >/dev/null
        "$agg" ca issue --dir "$dir/pki" --host "$host" >/dev/null
        entry=$("$agg" token new --name smoke --role read)
        token=$(sed -n 's/^token: //p' <<<"$entry")
        ingest=127.0.0.1:$((20000 + RANDOM % 20000))
        api=127.0.0.1:$((40000 + RANDOM % 20000))
        cat >"$dir/aggregator.toml" <<TOML
[ingest]
listen = "$ingest"
ca = "$dir/pki/ca.pem"
cert = "$dir/pki/server.pem"
key = "$dir/pki/server.key"

[api]
listen = "$api"

$(sed -n '/^\[\[api.tokens\]\]/,$p' <<<"$entry")

[store]
path = "$dir/nines.redb"
TOML
        cat >"$dir/agent.toml" <<TOML
interval = "1s"
state_dir = "$dir/agent-state"

[aggregator]
addresses = ["$ingest"]
server_name = "localhost"
ca = "$dir/pki/ca.pem"
cert = "$dir/pki/agents/$host.pem"
key = "$dir/pki/agents/$host.key"
TOML
        "$agg" serve --config "$dir/aggregator.toml" 2>"$dir/aggregator.log" &
        pids+=($!)
        local ok=false doc=""
        for _ in $(seq 100); do
            curl -fsS "http://$api/healthz" >/dev/null 2>&1 && break
            sleep 0.1
        done
        "$qemu" -L / "$agent" run --config "$dir/agent.toml" 2>"$dir/agent.log" &
        pids+=($!)
        for _ in $(seq 60); do
            sleep 1
            if doc=$(curl -fsS -H "Authorization: Bearer $token" "http://$api/api/v1/hosts/$host" 2>/dev/null) \
                && grep -q '"last_seen_ms"' <<<"$doc"; then
                ok=true
                break
            fi
        done
        if ! $ok; then
            echo "$t: the aggregator has no data from the ARM agent after 60 s" >&2
            tail -n 20 "$dir/agent.log" "$dir/aggregator.log" >&2
            exit 1
        fi
        echo "$doc"
        # The architecture the agent reported in its Hello (Rust's name for it).
        local arch=$t
        [ "$t" = armv7 ] && arch=arm
        grep -Eq "\"arch\": *\"$arch\"" <<<"$doc" || {
            echo "$t: the host's arch is not $arch" >&2
            exit 1
        }
        echo "== $t: ok"
        cleanup_one
    done
}

# Stops this target's aggregator and agent before the next target.
cleanup_one() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
}

case "$verb" in
    install) install ;;
    build) build "$@" ;;
    smoke) smoke "$@" ;;
    *)
        echo "usage: $0 install | build [TARGET...] | smoke [TARGET...]   (TARGET: aarch64 armv7)" >&2
        exit 64
        ;;
esac
