#!/usr/bin/env bash
# Issue 23's drains at default settings, in interleaved rounds:
#
#   bash bench/default_rounds.sh [ROUNDS]        (default 3)
#
# Each round times faena's counted drain on Redis, PostgreSQL and SQLite (one worker process,
# concurrency 2), each with the default (--prefetch auto), --prefetch 0 and --prefetch 8, one
# after the other in one system step, and the peers issue 23 names: Celery threads and
# prefork at prefetch multiplier 1 and at Celery's default 4, Huey-Redis, Huey-SQLite and
# Procrastinate. The order rotates and reverses as in bench/drain_rounds.sh; the machine rests
# BENCH_SETTLE seconds (default 5) before each system. Writes
# bench/results/default-rounds-<date>.jsonl; bench/ratios.py --defaults reports the ratios.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/rounds_common.sh"
rounds="${1:-3}"
n="${BENCH_N_BULK:-20000}"
export BENCH_N_BULK="$n" BENCH_N_DRAIN="$n"
out="$here/results/default-rounds-$stamp.jsonl"
export BENCH_LOG_DIR="$here/results/worker-logs-$stamp"
mkdir -p "$BENCH_LOG_DIR"
settle="${BENCH_SETTLE:-5}"
faena() {
    "$py" "$here/bench_faena.py" --broker "$1" --only drain --counted-only --drain "$n" \
        --prefetch 0 --prefetch 8
}
system() {
    case "$1" in
        0) faena redis ;;
        1) faena postgres ;;
        2) faena sqlite ;;
        3) (cd "$here/peers" && BENCH_ONLY=drain "$peer_py" celery_bench.py threads prefork) ;;
        4) (cd "$here/peers" && BENCH_ONLY=drain BENCH_CELERY_PREFETCH=4 \
               "$peer_py" celery_bench.py threads prefork) ;;
        5) (cd "$here/peers" && BENCH_ONLY=drain "$peer_py" huey_bench.py redis sqlite) ;;
        6) (cd "$here/peers" && BENCH_ONLY=drain "$peer_py" procrastinate_bench.py) ;;
    esac
}
systems=7
interleave "$rounds" "$systems" "$out" "$settle"
redis-cli -h 127.0.0.1 -p 6379 -n 15 flushdb >/dev/null || true
echo "wrote $out" >&2
"$py" "$here/ratios.py" --defaults "$out"
