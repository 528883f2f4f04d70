#!/bin/sh
# How soon agents are back after the aggregator restarts.
#
# tests/tests/fault_aggregator_away.rs against release builds: a real agent samples every
# second over mutual TLS, the aggregator is stopped GAP seconds (default 60) and started again
# on the same store and port; the figure is the time from the aggregator being ready (its
# /healthz answers) to a sample taken after that being stored, i.e. the agent reconnected and
# sent its backlog. The test also checks that no second is lost or stored twice and that the
# outage fires no host_down alert.
#
#   bench/restart-return/run.sh [GAP_SECS] [RUNS]      (defaults 60 and 3)
#
# Prints every run's figures, then the median and the slowest over the runs.
set -eu
gap=${1:-60}
runs=${2:-3}
cd "$(dirname "$0")/../.."
cargo build --release -p nines-aggregator -p nines-agent
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=0
while [ "$i" -lt "$runs" ]; do
    i=$((i + 1))
    NINES_FAULT_GAP_SECS="$gap" cargo test --release -p nines-tests --test fault_aggregator_away \
        -- --nocapture 2>&1 | grep 'agent back' | tee -a "$out"
done
# "aggregator away 60.0 s; agent back 1.2 s after it was ready, ..." -> seconds
awk -v runs="$runs" '
{ for (i = 1; i < NF; i++) if ($i == "back") { v[++n] = $(i + 1) + 0 } }
END {
    if (n < runs) { printf "restart return: %d of %d runs finished\n", n, runs; exit 1 }
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    printf "restart return after a %s s stop, %d runs: median %.2f s, slowest %.2f s\n", gap, n, med, v[n]
}' gap="$gap" "$out"
