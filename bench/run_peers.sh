#!/usr/bin/env bash
# Benchmark the peer job queues (Celery, Dramatiq, RQ, arq, Huey,
# Procrastinate) on this machine; one JSON line per figure.
#
#   bash bench/run_peers.sh [peer ...]
#
# Peers: celery dramatiq rq arq huey procrastinate (the default), and celery-prefetch4 (Celery
# at its default prefetch multiplier, 4; the celery run uses 1).
#
# Needs Redis on 127.0.0.1:6379 (uses DB 15, flushed) and PostgreSQL on
# 127.0.0.1:5432 (trust auth, user postgres; uses database faena_bench,
# created if missing, its public schema is dropped).
# Output: bench/results/peers-<date>.jsonl (+ .log with stderr and load).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peers"
py="$venv/bin/python"
peers=("$@")
if [ ${#peers[@]} -eq 0 ]; then
    peers=(celery dramatiq rq arq huey procrastinate)
fi

if [ ! -x "$py" ]; then
    python3 -m venv "$venv"
fi
"$py" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements-peers.txt"

redis-cli -h 127.0.0.1 -p 6379 -n 15 ping >/dev/null
psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1" >/dev/null
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc \
        "select 1 from pg_database where datname='faena_bench'" | grep -q 1; then
    createdb -h 127.0.0.1 -U postgres faena_bench
fi

mkdir -p "$here/results"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$here/results/peers-$stamp.jsonl"
log="$here/results/peers-$stamp.log"
export BENCH_LOG_DIR="$here/results/worker-logs-$stamp"
mkdir -p "$BENCH_LOG_DIR"
: >"$out"

{
    echo "# $(date -u) host=$(hostname) cpus=$(nproc) $(uname -sr)"
    echo "# python $("$py" -c 'import sys; print(sys.version.split()[0])')" \
         "redis-server $(redis-cli -h 127.0.0.1 info server | tr -d '\r' | sed -n 's/^redis_version://p')" \
         "postgres $(psql -h 127.0.0.1 -U postgres -tAc 'show server_version')"
} | tee -a "$log" >&2

# CPU busy % over one second (all cores), from /proc/stat
cpu_busy() {
    local a b
    read -r -a a < <(head -1 /proc/stat)
    sleep 1
    read -r -a b < <(head -1 /proc/stat)
    local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
    echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

# The figures are only meaningful on an otherwise idle machine: before each
# peer wait (at most BENCH_QUIET_WAIT s, default 90) for CPU use < 25 %,
# and log what it was.
wait_quiet() {
    local deadline=$(( SECONDS + ${BENCH_QUIET_WAIT:-90} )) busy
    while :; do
        busy=$(cpu_busy)
        if [ "$busy" -lt 25 ] || [ $SECONDS -ge $deadline ]; then
            echo "$busy"
            return
        fi
    done
}

failed=()
start=$SECONDS
for peer in "${peers[@]}"; do
    script="$here/peers/${peer}_bench.py"
    prefetch=1
    if [ "$peer" = celery-prefetch4 ]; then
        script="$here/peers/celery_bench.py" prefetch=4
    fi
    busy=$(wait_quiet)
    echo "== $peer  (cpu busy before: ${busy}%, loadavg $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$log" >&2
    t0=$SECONDS
    # each peer in its own interpreter, bounded in time; a failure is
    # recorded and the next peer still runs
    if ! BENCH_CELERY_PREFETCH=$prefetch timeout --kill-after=10 420 "$py" "$script" \
            >>"$out" 2> >(tee -a "$log" >&2); then
        failed+=("$peer")
        echo "!! $peer FAILED (see $log)" | tee -a "$log" >&2
    fi
    echo "== $peer done in $((SECONDS - t0))s (loadavg after: $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$log" >&2
done
redis-cli -h 127.0.0.1 -p 6379 -n 15 flushdb >/dev/null || true

echo "wrote $out in $((SECONDS - start))s" | tee -a "$log" >&2
"$py" - "$out" <<'PY' >&2
import json, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows.setdefault(d["system"], {})[d["metric"]] = d["value"]
cols = ["enqueue_one", "enqueue_bulk", "drain", "latency_p50", "latency_p95", "latency_p99"]
print("%-24s" % "system" + "".join("%14s" % c for c in cols))
for s, m in rows.items():
    print("%-24s" % s + "".join("%14s" % ("n/a" if m.get(c) is None else m[c]) for c in cols))
PY
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed peers: ${failed[*]}" | tee -a "$log" >&2
    exit 1
fi
