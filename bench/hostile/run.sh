#!/bin/sh
# Good clients served through hostile input, nines beside its peer, in one run.
#
# nines: tests/tests/hostile.rs against release builds: a good agent sends a batch every
# 100 ms and times each ack (a durable commit) while the ingest port holds 10,000 half-open
# connections from 200 addresses and takes garbage bytes, certificates that must be refused,
# oversized and lying frames, and a runaway label.
# Peer: bench/hostile/peer.py: Prometheus 2.42 behind mutual TLS with the same kind of
# certificates, a good client sending a query every 100 ms over a keep-alive connection
# while the same 10,000 half-open connections and garbage are held against it.
#
# Each side runs RUNS times (default 5); prints every run's median, p99 and slowest, then the
# median of each over the runs. Needs `prometheus` (Debian package) and python3 for the peer.
set -eu
runs=${1:-5}
cd "$(dirname "$0")/../.."
cargo build --release -p nines-aggregator -p nines-agent
ours=$(mktemp)
theirs=$(mktemp)
pki=$(mktemp -d)
trap 'rm -rf "$ours" "$theirs" "$pki"' EXIT
target/release/nines-aggregator ca init --dir "$pki" --san localhost --san 127.0.0.1 >/dev/null
target/release/nines-aggregator ca issue --dir "$pki" --host good-1 >/dev/null
i=0
while [ "$i" -lt "$runs" ]; do
    i=$((i + 1))
    cargo test --release -p nines-tests --test hostile -- --nocapture 2>&1 |
        grep 'good agent:' | tee -a "$ours"
    if command -v prometheus >/dev/null; then
        python3 bench/hostile/peer.py "$pki" | tee -a "$theirs"
    fi
done
# "...: N things, ... median 1.2ms, p99 3.4ms, slowest 5.6ms..." -> milliseconds
summary() {
    awk -v who="$1" '
function ms(v) { if (v ~ /µs$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
{ gsub(",", ""); m[NR] = ms($7); p[NR] = ms($9); s[NR] = ms($11) }
function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
    if (NR == 0) { printf "%s: no runs\n", who; exit }
    printf "%s, %d runs: median %.2f ms, p99 %.2f ms, slowest %.2f ms (medians over runs)\n",
        who, NR, median(m, NR), median(p, NR), median(s, NR)
}' "$2"
}
summary "nines ack" "$ours"
summary "prometheus query" "$theirs"
