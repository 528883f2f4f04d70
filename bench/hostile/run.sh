#!/bin/sh
# Ack latency of a good agent while the ingest port takes hostile input
# (tests/tests/hostile.rs: 10,000 half-open connections from 200 addresses, garbage bytes,
# oversized and lying frames, a runaway label, and certificates that must be refused).
# Runs the test RUNS times (default 5) against release builds and prints each run's ack
# median, p99 and slowest, then the median of each over the runs.
set -eu
runs=${1:-5}
cd "$(dirname "$0")/../.."
cargo build --release -p nines-aggregator -p nines-agent
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=0
while [ "$i" -lt "$runs" ]; do
    i=$((i + 1))
    cargo test --release -p nines-tests --test hostile -- --nocapture 2>&1 |
        grep 'good agent:' | tee -a "$out"
done
# "good agent: N batches, ack median 1.2ms, p99 3.4ms, slowest 5.6ms" -> milliseconds
awk '
function ms(v) { if (v ~ /µs$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
{ gsub(",", ""); m[NR] = ms($7); p[NR] = ms($9); s[NR] = ms($11) }
function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
    printf "runs %d: ack median %.2f ms, p99 %.2f ms, slowest %.2f ms (medians over runs)\n",
        NR, median(m, NR), median(p, NR), median(s, NR)
}' "$out"
