#!/usr/bin/env bash
# The drain targets of issue #3, measured in interleaved rounds:
#
#   bash bench/drain_rounds.sh [ROUNDS]        (default 3)
#
# Each round times, one after the other: faena's counted drain on Redis and on PostgreSQL (one
# worker process, concurrency 2), each without and with --prefetch 8 (as Celery's default
# prefetch: 4 per slot); then the drains of the peers the targets name (Celery threads and
# prefork, each at prefetch multiplier 1 and at Celery's default 4, Huey-Redis,
# Procrastinate), with the same job body and harness as bench/run_all.sh. This machine's speed drifts by tens of percent over minutes; a single
# pass can put faena and a peer minutes apart. Rounds put them seconds apart, and
# bench/ratios.py reports each round's ratios and their median. Each round starts one step
# further down the list, and every second round runs it backwards, so no system always runs
# first or always comes right after the same one; the machine rests BENCH_SETTLE seconds
# (default 5) before each system. Writes
# bench/results/rounds-<date>.jsonl (each line has its "round").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/rounds_common.sh"
rounds="${1:-3}"
n="${BENCH_N_BULK:-20000}"  # jobs per drain (the peers' harness reads BENCH_N_BULK too)
export BENCH_N_BULK="$n" BENCH_N_DRAIN="$n"
out="$here/results/rounds-$stamp.jsonl"
export BENCH_LOG_DIR="$here/results/worker-logs-$stamp"
mkdir -p "$BENCH_LOG_DIR"
settle="${BENCH_SETTLE:-5}"
system() {  # system I: run the I-th system's drains (0-based)
    case "$1" in
        0) "$py" "$here/bench_faena.py" --broker redis --only drain --counted-only --drain "$n" \
               --prefetch 8 ;;
        1) "$py" "$here/bench_faena.py" --broker postgres --only drain --counted-only \
               --drain "$n" --prefetch 8 ;;
        2) (cd "$here/peers" && BENCH_ONLY=drain "$peer_py" celery_bench.py threads prefork) ;;
        3) (cd "$here/peers" && BENCH_ONLY=drain BENCH_CELERY_PREFETCH=4 \
               "$peer_py" celery_bench.py threads prefork) ;;
        4) (cd "$here/peers" && BENCH_ONLY=drain "$peer_py" huey_bench.py redis) ;;
        5) (cd "$here/peers" && BENCH_ONLY=drain "$peer_py" procrastinate_bench.py) ;;
    esac
}
systems=6
for r in $(seq "$rounds"); do
    echo "== round $r of $rounds" >&2
    for k in $(seq 0 $((systems - 1))); do
        if ((r % 2 == 0)); then k=$((systems - 1 - k)); fi
        sleep "$settle"
        system $(((r - 1 + k) % systems)) | tag "$r" | tee -a "$out"
    done
done
redis-cli -h 127.0.0.1 -p 6379 -n 15 flushdb >/dev/null || true
echo "wrote $out" >&2
"$py" "$here/ratios.py" "$out"
