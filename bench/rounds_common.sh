# Shared by bench/drain_rounds.sh and bench/enqueue_rounds.sh (sourced, not run): the paths,
# the peers' venv, the servers' check and the database Procrastinate uses, and `tag R`, which
# adds "round": R to every JSON line it passes through.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="$root/.venv/bin/python"
peer_py="$here/.venv-peers/bin/python"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$here/results"
if [ ! -x "$peer_py" ]; then
    python3 -m venv "$here/.venv-peers"
fi
"$peer_py" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-peers.txt"
redis-cli -h 127.0.0.1 -p 6379 -n 15 ping >/dev/null
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc \
        "select 1 from pg_database where datname='faena_bench'" | grep -q 1; then
    createdb -h 127.0.0.1 -U postgres faena_bench
fi
tag() { "$py" -c 'import json, sys
r = sys.argv[1]
for line in sys.stdin:
    if line.startswith("{"):
        d = json.loads(line); d["round"] = int(r); print(json.dumps(d), flush=True)' "$1"; }
# The interleaved rounds of bench/default_rounds.sh and bench/sqlite_rounds.sh: ROUNDS rounds of
# SYSTEMS steps, each `system K` (the caller's function), the order rotating every round and
# reversed every second one; SETTLE seconds of rest and the load average (a "machine" line)
# before each step; every JSON line tagged with its round and appended to OUT.
interleave() {
    local rounds="$1" systems="$2" out="$3" settle="$4" r k
    for r in $(seq "$rounds"); do
        echo "== round $r of $rounds; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
        for k in $(seq 0 $((systems - 1))); do
            if ((r % 2 == 0)); then k=$((systems - 1 - k)); fi
            sleep "$settle"
            echo "{\"system\": \"machine\", \"metric\": \"loadavg\", \"value\": $(cut -d' ' -f1 /proc/loadavg), \"unit\": \"1-min\"}" | tag "$r" >> "$out"
            system $(((r - 1 + k) % systems)) | tag "$r" | tee -a "$out"
        done
    done
}
