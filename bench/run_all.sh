#!/usr/bin/env bash
# faena and its peers side by side, same machine, same servers, one run:
#
#   bash bench/run_all.sh
#
# Writes bench/results/all-<date>.jsonl and prints the Markdown table of docs/benchmarks.md.
# Needs Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) as in bench/run_peers.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="$root/.venv/bin/python"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$here/results/all-$stamp.jsonl"
mkdir -p "$here/results"

"$py" "$here/bench_faena.py" --broker sqlite --broker postgres --broker redis --processes 2 \
    --prefetch 8 | tee "$out"
if [ $# -eq 0 ]; then
    set -- celery celery-prefetch4 dramatiq rq arq huey procrastinate
fi
bash "$here/run_peers.sh" "$@"
cat "$(ls -t "$here"/results/peers-*.jsonl | head -n1)" >>"$out"
"$py" "$here/table.py" "$out"
