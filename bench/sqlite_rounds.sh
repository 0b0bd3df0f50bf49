#!/usr/bin/env bash
# Issue 23's SQLite rows in interleaved rounds:
#
#   bash bench/sqlite_rounds.sh [ROUNDS]                 (default 3)
#   B_SRC=/tmp/main/src bash bench/sqlite_rounds.sh 3    (and faena from another source tree)
#
# Each round times, one system after the other: faena's enqueues on SQLite (one by one and bulk,
# durable: the default sync=enqueue, and sync=normal), Huey-SQLite's enqueue one by one (WAL,
# synchronous=FULL: an fsync of the WAL at every commit, as faena's enqueue), then faena's
# counted drain at default settings (one worker process, concurrency 2, --prefetch auto) and
# Huey-SQLite's drain (one consumer, 2 threads). With B_SRC, faena from that tree (a copy of
# main's src/) runs beside this checkout's, its systems named faena-sqlite-b..., so a change
# and its peer ratio are measured in the same minutes. The order rotates and reverses as in
# bench/drain_rounds.sh; the machine rests BENCH_SETTLE seconds (default 5) before each
# system, and the 1-minute load average is written before each. Huey's database is this run's
# own file. Writes bench/results/sqlite-rounds-<date>.jsonl; bench/ratios.py --sqlite FILE
# reports the ratios.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/rounds_common.sh"
rounds="${1:-3}"
n="${BENCH_N_BULK:-20000}"
export BENCH_N_BULK="$n" BENCH_N_DRAIN="$n"
huey_dir="$(mktemp -d)"
export BENCH_HUEY_SQLITE="$huey_dir/huey.sqlite3"
out="$here/results/sqlite-rounds-$stamp.jsonl"
export BENCH_LOG_DIR="$here/results/worker-logs-$stamp"
mkdir -p "$BENCH_LOG_DIR"
settle="${BENCH_SETTLE:-5}"
b_src="${B_SRC:-}"
rename_b() { "$py" -c 'import json, sys
for line in sys.stdin:
    if line.startswith("{"):
        d = json.loads(line); d["system"] = d["system"].replace("faena-sqlite", "faena-sqlite-b", 1)
        d["src"] = sys.argv[1]; print(json.dumps(d), flush=True)' "$b_src"; }
faena_b() { if [ -n "$b_src" ]; then PYTHONPATH="$b_src" "$py" "$here/bench_faena.py" "$@" | rename_b; fi; }
system() {
    case "$1" in
        0) "$py" "$here/bench_faena.py" --broker sqlite --only enqueue ;;
        1) faena_b --broker sqlite --only enqueue ;;
        2) (cd "$here/peers" && BENCH_ONLY=enqueue "$peer_py" huey_bench.py sqlite) ;;
        3) "$py" "$here/bench_faena.py" --broker sqlite --only drain --counted-only --drain "$n" ;;
        4) faena_b --broker sqlite --only drain --counted-only --drain "$n" ;;
        5) (cd "$here/peers" && BENCH_ONLY=drain "$peer_py" huey_bench.py sqlite) ;;
    esac
}
systems=6
interleave "$rounds" "$systems" "$out" "$settle"
rm -rf "$huey_dir"
echo "wrote $out" >&2
"$py" "$here/ratios.py" --sqlite "$out"
