#!/usr/bin/env bash
# The enqueue targets of issue #3, measured in interleaved rounds:
#
#   bash bench/enqueue_rounds.sh [ROUNDS]      (default 3)
#
# Each round times, one after the other, faena's enqueues (one by one and bulk) on Redis and
# PostgreSQL, then Huey-Redis's and Procrastinate's, with the same harness as
# bench/run_all.sh. As with bench/drain_rounds.sh, rounds put faena and a peer seconds apart
# on a machine whose speed drifts over minutes; bench/ratios.py --enqueue reports each
# round's ratios and their median. Writes bench/results/enqueue-rounds-<date>.jsonl.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/rounds_common.sh"
rounds="${1:-3}"
out="$here/results/enqueue-rounds-$stamp.jsonl"
for r in $(seq "$rounds"); do
    echo "== round $r of $rounds" >&2
    "$py" "$here/bench_faena.py" --broker redis --broker postgres --only enqueue \
        | tag "$r" | tee -a "$out"
    (cd "$here/peers" && BENCH_ONLY=enqueue "$peer_py" huey_bench.py redis) | tag "$r" | tee -a "$out"
    (cd "$here/peers" && BENCH_ONLY=enqueue "$peer_py" procrastinate_bench.py) \
        | tag "$r" | tee -a "$out"
done
echo "wrote $out" >&2
"$py" "$here/ratios.py" --enqueue "$out"
