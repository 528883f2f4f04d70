#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and reports executions and findings.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]      (default 60)
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if it is
# missing. The corpus grows in fuzz/corpus/<target> (seeded from fuzz/seeds/<target>), crashing
# inputs land in fuzz/artifacts/<target>/, full logs in fuzz/logs/. Exits 1 if any target
# crashed, timed out or ran out of memory. Environment: TARGETS (space-separated subset),
# RSS_LIMIT_MB (default 2048), TIMEOUT_S per input (default 10).
set -euo pipefail

secs="${1:-60}"
case "$secs" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 64
    ;;
esac
rss="${RSS_LIMIT_MB:-2048}"
per_input="${TIMEOUT_S:-10}"
targets="${TARGETS:-frame_decoder agent_config aggregator_config spool_reader api_params ingest_batch}"

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: a nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 69
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

# The spool target writes a spool directory per input; on tmpfs its fsyncs cost nothing.
scratch_parent="${TMPDIR:-/tmp}"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    scratch_parent=/dev/shm
fi
scratch="$(mktemp -d "$scratch_parent/nines-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

echo "fuzz: building $targets"
for t in $targets; do
    cargo +nightly fuzz build "$t"
done

mkdir -p logs
failed=0
results=()
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    dict=()
    if [ -f "dicts/$t.dict" ]; then
        dict=("-dict=dicts/$t.dict")
    fi
    log="logs/$t.log"
    stamp="$scratch/$t.start"
    touch "$stamp"
    echo "fuzz: $t for ${secs}s"
    start="$(date +%s)"
    # -max_total_time bounds the run; `timeout` bounds it again should libFuzzer hang.
    set +e
    TMPDIR="$scratch" timeout --kill-after=30 "$((secs + per_input + 120))" \
        cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb="$rss" -timeout="$per_input" \
        -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
    rc=$?
    set -e
    elapsed="$(($(date +%s) - start))"
    execs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)"
    if [ -z "$execs" ]; then
        execs="$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -1)"
    fi
    found="$(find "artifacts/$t" -type f -newer "$stamp" | head -1)"
    if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
        finding="none"
    else
        failed=1
        kind="$(grep -o -m1 -E 'deadly signal|panicked|ERROR: libFuzzer: [a-z-]+|ERROR: AddressSanitizer: [a-z-]+' "$log" || true)"
        finding="CRASH (exit $rc${kind:+, $kind}) $found"
    fi
    results+=("$(printf '%-18s %6ss %14s  %s' "$t" "$elapsed" "${execs:-?}" "$finding")")
done

echo
printf '%-18s %7s %14s  %s\n' target time executions findings
for r in "${results[@]}"; do
    echo "$r"
done
exit "$failed"
