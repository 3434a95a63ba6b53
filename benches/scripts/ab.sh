#!/usr/bin/env bash
# A/B: two feedmill builds on the same cold and warm `feedmill fetch` of N feeds of 20 items
# behind nginx, alternating A B A B in one run, so that the machine's noise falls on both.
# Prints each run's seconds and, per round, B's time over A's (below 1: B is faster).
#   Usage: benches/scripts/ab.sh A_BINARY B_BINARY [N] [ROUNDS]
# For example A = a release build of the commit before a change, B = target/release/feedmill.
source "$(dirname "$0")/common.sh"
A=${1:?usage: ab.sh A_BINARY B_BINARY [N] [ROUNDS]}
B=${2:?usage: ab.sh A_BINARY B_BINARY [N] [ROUNDS]}
N=${3:-1000}
ROUNDS=${4:-3}
need_tools
work=$(mktemp -d)
trap 'stop_nginx "$work"; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
python3 "$ROOT/benches/scripts/make_feeds.py" "$work/www" "$N" 20
port=$(free_port)
start_nginx "$work" "$port"
refresh_config "$work" "$port" "$N"

run() { # run BINARY: prints wall seconds and CPU seconds (user + system)
    local started ended
    started=$(date +%s%N)
    /usr/bin/time -f "%U %S" -o "$work/time" "$1" fetch -c "$work/feedmill.toml" >"$work/fetch.out" 2>"$work/fetch.err" || { echo "$1 fetch failed:" >&2; tail -3 "$work/fetch.err" >&2; }
    ended=$(date +%s%N)
    python3 -c "import sys; u, s = map(float, open(sys.argv[1]).read().split()[-2:]); print(f'{($ended - $started) / 1e9:.3f} {u + s:.2f}')" "$work/time"
}

printf '%-6s %-5s %10s %10s %8s %8s %8s %8s\n' round kind A_s B_s B/A A_cpu B_cpu cpu_B/A
for round in $(seq 1 "$ROUNDS"); do
    # Who goes first alternates, so that neither always meets a warmer page cache.
    if [ $((round % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
    declare -A cold warm cold_cpu warm_cpu
    for side in $order; do
        bin=$A; [ "$side" = B ] && bin=$B
        rm -rf "$work/store"
        read -r cold[$side] cold_cpu[$side] < <(run "$bin")
        failed=$(grep -c FAILED "$work/fetch.out" || true)
        [ "$failed" -eq 0 ] || echo "warning: $side's cold run failed $failed sources: $(grep -m1 FAILED "$work/fetch.out")"
        stored=$(grep -c "new" "$work/fetch.out" || true)
        [ "$stored" -eq "$N" ] || echo "warning: $side's cold run stored new entries for $stored of $N sources"
        read -r warm[$side] warm_cpu[$side] < <(run "$bin")
        grep -q "304 not modified" "$work/fetch.out" || echo "warning: $side's warm run saw no 304"
    done
    printf '%-6s %-5s %10s %10s %8s %8s %8s %8s\n' "$round" cold "${cold[A]}" "${cold[B]}" "$(ratio "${cold[B]}" "${cold[A]}")" \
        "${cold_cpu[A]}" "${cold_cpu[B]}" "$(ratio "${cold_cpu[B]}" "${cold_cpu[A]}")"
    printf '%-6s %-5s %10s %10s %8s %8s %8s %8s\n' "$round" warm "${warm[A]}" "${warm[B]}" "$(ratio "${warm[B]}" "${warm[A]}")" \
        "${warm_cpu[A]}" "${warm_cpu[B]}" "$(ratio "${warm_cpu[B]}" "${warm_cpu[A]}")"
done
echo "N=$N feeds of 20 items; B/A = B's time / A's time (below 1.00: B is faster); cpu = user + system seconds"
