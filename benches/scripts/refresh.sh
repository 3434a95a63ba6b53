#!/usr/bin/env bash
# Refresh: `feedmill fetch` of N feeds of 20 items behind nginx, cold (everything new) and
# warm (every feed answers 304), against the Planet-style baseline (Python, 16 threads,
# feedparser, no storage) in the same run, alternating A B A B. Prints feeds/s, the ratio to
# the baseline and feedmill's peak RSS.   Usage: benches/scripts/refresh.sh [N] [ROUNDS]
source "$(dirname "$0")/common.sh"
N=${1:-1000}
ROUNDS=${2:-2}
need_tools
work=$(mktemp -d)
trap 'stop_nginx "$work"; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
python3 "$ROOT/benches/scripts/make_feeds.py" "$work/www" "$N" 20
port=$(free_port)
start_nginx "$work" "$port"
refresh_config "$work" "$port" "$N"

feedmill_run() { # prints: seconds peak_kib (time's %e has a resolution of 10 ms: too coarse)
    local started ended
    started=$(date +%s%N)
    /usr/bin/time -f "%M" -o "$work/time" "$FEEDMILL" fetch -c "$work/feedmill.toml" >"$work/fetch.out" 2>"$work/fetch.err" || { echo "feedmill fetch failed:" >&2; tail -3 "$work/fetch.err" >&2; }
    ended=$(date +%s%N)
    echo "$(python3 -c "print(f'{($ended - $started) / 1e9:.3f}')") $(tail -1 "$work/time")"
}
# Timed like feedmill, from the command's start to its end (interpreter and imports included:
# a Planet run is a process too).
baseline_run() {
    local started ended
    started=$(date +%s%N)
    python3 "$ROOT/benches/scripts/planet_baseline.py" "$work/urls.txt" "$work/baseline-state.json" "$@" >/dev/null
    ended=$(date +%s%N)
    python3 -c "print(f'{($ended - $started) / 1e9:.3f}')"
}

# The issue's baseline keeps nothing, so for it a warm run is a cold one again; the
# conditional column is a Planet that keeps validators and sends them (a harder reference).
printf '%-6s %-5s %10s %10s %10s %12s %8s %10s %10s\n' round kind baseline_s feedmill_s cond_s feeds/s ratio vs_cond peak_MiB
for round in $(seq 1 "$ROUNDS"); do
    rm -rf "$work/store" "$work/baseline-state.json"
    b_cold=$(baseline_run)
    read -r f_cold rss_cold < <(feedmill_run)
    b_warm=$(baseline_run)
    c_warm=$(baseline_run --conditional)
    read -r f_warm rss_warm < <(feedmill_run)
    grep -q "304 not modified" "$work/fetch.out" || echo "warning: the warm run saw no 304"
    for kind in cold warm; do
        if [ $kind = cold ]; then b=$b_cold; f=$f_cold; r=$rss_cold; c=-; vs=-; else b=$b_warm; f=$f_warm; r=$rss_warm; c=$c_warm; vs=$(ratio "$c" "$f"); fi
        printf '%-6s %-5s %10s %10s %10s %12s %8s %10s %10s\n' "$round" "$kind" "$b" "$f" "$c" \
            "$(python3 -c "print(f'{$N / max($f, 0.001):.0f}')")" "$(ratio "$b" "$f")" "$vs" "$((r / 1024))"
    done
done
echo "N=$N feeds of 20 items; ratio = baseline time / feedmill time (higher is better);"
echo "vs_cond = the conditional baseline's time / feedmill's warm time"
