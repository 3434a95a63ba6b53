#!/usr/bin/env bash
# Refresh: `feedmill fetch` of N feeds of 20 items behind nginx, cold (everything new) and
# warm (every feed answers 304), against the Planet-style baseline (Python, 16 threads,
# feedparser, no storage) in the same run, alternating A B A B. Prints feeds/s, the ratio to
# the baseline and feedmill's peak RSS.   Usage: benches/scripts/refresh.sh [N] [ROUNDS]
#
# A/B mode: FEEDMILL_A=OLD FEEDMILL_B=NEW benches/scripts/refresh.sh [N] [ROUNDS] runs the two
# binaries (each on its own store) beside the baseline in every round, A and B alternating
# which goes first, and prints per round their wall and CPU seconds, each one's ratio to the
# baseline and B's time over A's; at the end the medians of B/A.
source "$(dirname "$0")/common.sh"
N=${1:-1000}
ROUNDS=${2:-2}
need_tools
work=$(mktemp -d)
trap 'stop_nginx "$work"; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
python3 "$ROOT/benches/scripts/make_feeds.py" "$work/www" "$N" 20
port=$(free_port)
start_nginx "$work" "$port"

# feedmill_run [BINARY [CONFIG]]: prints wall seconds, peak KiB and CPU seconds (user +
# system). Wall time is taken around the command: time's %e has a resolution of 10 ms.
feedmill_run() {
    local bin=${1:-$FEEDMILL} config=${2:-$work/feedmill.toml} started ended
    started=$(date +%s%N)
    /usr/bin/time -f "%U %S %M" -o "$work/time" "$bin" fetch -c "$config" >"$work/fetch.out" 2>"$work/fetch.err" || { echo "$bin fetch failed:" >&2; tail -3 "$work/fetch.err" >&2; }
    ended=$(date +%s%N)
    python3 -c "import sys; u, s, m = open(sys.argv[1]).read().split()[-3:]; print(f'{($ended - $started) / 1e9:.3f} {m} {float(u) + float(s):.2f}')" "$work/time"
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

if [ -z "$AB" ]; then
    refresh_config "$work" "$port" "$N"
    # The issue's baseline keeps nothing, so for it a warm run is a cold one again; the
    # conditional column is a Planet that keeps validators and sends them (a harder reference).
    printf '%-6s %-5s %10s %10s %10s %12s %8s %10s %10s\n' round kind baseline_s feedmill_s cond_s feeds/s ratio vs_cond peak_MiB
    for round in $(seq 1 "$ROUNDS"); do
        rm -rf "$work/store" "$work/baseline-state.json"
        b_cold=$(baseline_run)
        read -r f_cold rss_cold _ < <(feedmill_run)
        b_warm=$(baseline_run)
        c_warm=$(baseline_run --conditional)
        read -r f_warm rss_warm _ < <(feedmill_run)
        grep -q "304 not modified" "$work/fetch.out" || echo "warning: the warm run saw no 304"
        for kind in cold warm; do
            if [ $kind = cold ]; then b=$b_cold; f=$f_cold; r=$rss_cold; c=-; vs=-; else b=$b_warm; f=$f_warm; r=$rss_warm; c=$c_warm; vs=$(ratio "$c" "$f"); fi
            printf '%-6s %-5s %10s %10s %10s %12s %8s %10s %10s\n' "$round" "$kind" "$b" "$f" "$c" \
                "$(python3 -c "print(f'{$N / max($f, 0.001):.0f}')")" "$(ratio "$b" "$f")" "$vs" "$((r / 1024))"
        done
    done
    echo "N=$N feeds of 20 items; ratio = baseline time / feedmill time (higher is better);"
    echo "vs_cond = the conditional baseline's time / feedmill's warm time"
    exit 0
fi

refresh_config "$work" "$port" "$N" -A
refresh_config "$work" "$port" "$N" -B
declare -A bin=([A]=$FEEDMILL_A [B]=$FEEDMILL_B) wall cpu rss
# ab_run SIDE KIND: one fetch of SIDE's binary on its own store. A run that failed a source,
# stored nothing new for one (cold) or fetched one in full again (warm) did less or more than
# the other side's, so it is named: such a round's ratio is no result.
ab_run() {
    local side=$1 kind=$2 failed stored not_modified
    read -r "wall[$side-$kind]" "rss[$side-$kind]" "cpu[$side-$kind]" < <(feedmill_run "${bin[$side]}" "$work/feedmill-$side.toml")
    failed=$(grep -c FAILED "$work/fetch.out" || true)
    [ "$failed" -eq 0 ] || echo "warning: $side's $kind run failed $failed sources: $(grep -m1 FAILED "$work/fetch.out")"
    if [ "$kind" = cold ]; then
        stored=$(grep -cE '\([1-9][0-9]* new' "$work/fetch.out" || true)
        [ "$stored" -eq "$N" ] || echo "warning: $side's cold run stored new entries for $stored of $N sources"
    else
        not_modified=$(grep -c "304 not modified" "$work/fetch.out" || true)
        [ "$not_modified" -eq "$N" ] || echo "warning: $side's warm run saw 304 from $not_modified of $N sources"
    fi
}
echo "A = $FEEDMILL_A"
echo "B = $FEEDMILL_B"
# Both binaries into the page cache first: otherwise round 1's first run reads its own from disk.
cat "$FEEDMILL_A" "$FEEDMILL_B" > /dev/null
# x_A, x_B = the baseline's time / A's or B's (higher is better); B/A = B's time / A's.
fmt='%-6s %-5s %10s %8s %8s %6s %6s %6s %6s %6s %8s %6s %6s\n'
printf "$fmt" round kind baseline_s A_s B_s x_A x_B B/A A_cpu B_cpu cpu_B/A A_MiB B_MiB
for round in $(seq 1 "$ROUNDS"); do
    # Who goes first alternates, so that neither always meets a warmer page cache.
    if [ $((round % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
    rm -rf "$work/store-A" "$work/store-B" "$work/baseline-state.json"
    b_cold=$(baseline_run)
    for side in $order; do ab_run "$side" cold; done
    b_warm=$(baseline_run)
    for side in $order; do ab_run "$side" warm; done
    for kind in cold warm; do
        b=$b_cold; [ $kind = warm ] && b=$b_warm
        a_s=${wall[A-$kind]} b_s=${wall[B-$kind]}
        r=$(ratio "$b_s" "$a_s") rc=$(ratio "${cpu[B-$kind]}" "${cpu[A-$kind]}")
        echo "$r" >> "$work/wall-$kind"
        for side in A B; do
            echo "${wall[$side-$kind]}" >> "$work/sum-wall-$side-$kind"
            echo "${cpu[$side-$kind]}" >> "$work/sum-cpu-$side-$kind"
        done
        echo "$rc" >> "$work/cpu-$kind"
        ratio "$b" "$a_s" >> "$work/x-A-$kind"
        ratio "$b" "$b_s" >> "$work/x-B-$kind"
        printf "$fmt" "$round" "$kind" "$b" "$a_s" "$b_s" "$(ratio "$b" "$a_s")" "$(ratio "$b" "$b_s")" "$r" \
            "${cpu[A-$kind]}" "${cpu[B-$kind]}" "$rc" "$((${rss[A-$kind]} / 1024))" "$((${rss[B-$kind]} / 1024))"
    done
done
for kind in cold warm; do
    echo "median $kind: wall B/A $(median "$work/wall-$kind"), CPU B/A $(median "$work/cpu-$kind"); x_A $(median "$work/x-A-$kind"), x_B $(median "$work/x-B-$kind");" \
        "sums B/A: wall $(sum_ratio "$work/sum-wall-B-$kind" "$work/sum-wall-A-$kind"), CPU $(sum_ratio "$work/sum-cpu-B-$kind" "$work/sum-cpu-A-$kind")"
done
echo "N=$N feeds of 20 items, $ROUNDS rounds; B/A = B's time / A's time (below 1.00: B is faster);"
echo "x = the baseline's time / feedmill's (higher is better; warm: the stateless baseline); cpu = user + system seconds"
echo "(time counts CPU in 10 ms steps: a warm run's CPU ratio is too coarse to mean much)"
