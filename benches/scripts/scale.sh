#!/usr/bin/env bash
# Scale: 10,000 sources with 1 entry each (10,000 entries) against 10,000 sources with 100
# entries each (1,000,000 entries), in one run. For each store: the time to fill it
# (`feedmill fetch`), its size on disk, the daemon's startup time (until the combined feed is
# served) first after the fill and then on a restart, the time to render a change of the
# combined feed, and the daemon's RSS.
#   Usage: benches/scripts/scale.sh [SOURCES] [SMALL_ITEMS] [LARGE_ITEMS]
source "$(dirname "$0")/common.sh"
SOURCES=${1:-10000}
SMALL=${2:-1}
LARGE=${3:-100}
need_tools
work=$(mktemp -d)
trap 'kill "${daemon:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

measure() { # items -> prints one result line
    local items=$1 dir="$work/$1"
    python3 "$ROOT/benches/scripts/make_feeds.py" "$dir/www" "$SOURCES" "$items"
    local port
    port=$(free_port)
    {
        echo "[server]"
        echo "listen = \"127.0.0.1:$port\""
        echo "[store]"
        echo "path = \"$dir/store\""
        echo "max_items_per_source = 0"
        echo "[fetch]"
        echo "schedule = \"0 0 1 1 *\""
        echo "concurrency = 64"
        for i in $(seq 0 $((SOURCES - 1))); do
            echo "[[source]]"
            echo "name = \"f$i\""
            echo "url = \"file://$dir/www/f/$i.xml\""
            [ "$i" = 0 ] && echo "schedule = \"* * * * * *\""
        done
        echo "[[feed]]"
        echo "name = \"all\""
    } > "$dir/feedmill.toml"
    local fill_start fill
    fill_start=$(date +%s.%N)
    "$FEEDMILL" fetch -c "$dir/feedmill.toml" > /dev/null 2>&1 || true
    fill=$(python3 -c "import time; print(f'{time.time() - $fill_start:.1f}')")
    local size
    size=$(du -sm "$dir/store" | cut -f1)
    # Startup: until the combined feed answers with entries. The first start after the fill
    # replays sled's log of everything the fill wrote (sled writes its snapshot when it
    # opens); the restart measured below is the daemon's usual case.
    start_daemon() {
        local start
        start=$(date +%s.%N)
        RUST_LOG=feedmill=debug "$FEEDMILL" run -c "$dir/feedmill.toml" 2>"$dir/daemon.log" &
        daemon=$!
        until curl -sf "http://127.0.0.1:$port/feeds/all.atom" 2>/dev/null | grep -q "<entry>"; do sleep 0.01; done
        python3 -c "import time; print(f'{time.time() - $start:.2f}')"
    }
    local startup restart
    start_daemon > "$dir/startup"
    startup=$(cat "$dir/startup")
    # Five changes, one after another: source f0 (fetched every second) gets a new item; the
    # renderer logs how long re-rendering the feeds took. One render is tens of
    # milliseconds, so a single one carries the machine's noise: the median is reported.
    local renders=()
    for change in 1 2 3 4 5; do
        local before
        before=$(grep -c 'rendered feeds' "$dir/daemon.log" || true)
        sed -i "s#<item>#<item><title>Breaking news $change</title><guid>breaking-$change</guid><link>https://x.example/b$change</link></item><item>#" "$dir/www/f/0.xml"
        until curl -sf "http://127.0.0.1:$port/feeds/all.atom" | grep -q "Breaking news $change<"; do sleep 0.05; done
        # The renderer logs its time just after it publishes.
        until [ "$(grep -c 'rendered feeds' "$dir/daemon.log" || true)" -gt "$before" ]; do sleep 0.05; done
        renders+=("$(grep -o 'rendered feeds.*elapsed_ms=[0-9.]*' "$dir/daemon.log" | tail -1 | grep -o '[0-9.]*$')")
    done
    local render rss
    render=$(printf '%s\n' "${renders[@]}" | sort -g | sed -n 3p)
    echo "renders of $((SOURCES * items)) entries (ms): ${renders[*]}" >&2
    rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$daemon/status")
    kill "$daemon"; wait "$daemon" 2>/dev/null || true
    start_daemon > "$dir/startup"
    restart=$(cat "$dir/startup")
    kill "$daemon"; wait "$daemon" 2>/dev/null || true
    printf '%10s %9s %8s %9s %10s %10s %12s %8s\n' "$((SOURCES * items))" "$items" "$fill" "$size" "$startup" "$restart" "$render" "$rss"
    echo "$startup $restart $render" > "$dir/result"
}

printf '%10s %9s %8s %9s %10s %10s %12s %8s\n' entries per_src fill_s store_MiB startup_s restart_s change_ms rss_MiB
measure "$SMALL"
measure "$LARGE"
read -r s_start s_restart s_render < "$work/$SMALL/result"
read -r l_start l_restart l_render < "$work/$LARGE/result"
echo "ratios large/small (target: 2 or less): startup after the fill $(ratio "$l_start" "$s_start"), restart $(ratio "$l_restart" "$s_restart"), change $(ratio "$l_render" "$s_render")"
