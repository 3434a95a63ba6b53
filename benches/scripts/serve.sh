#!/usr/bin/env bash
# Serve: wrk on /feeds/all.atom (50 entries) against nginx serving the very same bytes as a
# static file, alternating A B A B; with and without If-None-Match. Prints requests/s and
# the ratio feedmill/nginx.   Usage: benches/scripts/serve.sh [SECONDS] [ROUNDS]
source "$(dirname "$0")/common.sh"
SECONDS_EACH=${1:-10}
ROUNDS=${2:-2}
need_tools
work=$(mktemp -d)
trap 'kill "$daemon" 2>/dev/null || true; stop_nginx "$work"; rm -rf "$work"' EXIT
python3 "$ROOT/benches/scripts/make_feeds.py" "$work/feeds" 5 20
fm_port=$(free_port)
{
    echo "[server]"
    echo "listen = \"127.0.0.1:$fm_port\""
    echo "[store]"
    echo "path = \"$work/store\""
    for i in 0 1 2 3 4; do
        echo "[[source]]"
        echo "name = \"f$i\""
        echo "url = \"file://$work/feeds/f/$i.xml\""
    done
    echo "[[feed]]"
    echo "name = \"all\""
    echo "limit = 50"
} > "$work/feedmill.toml"
"$FEEDMILL" run -c "$work/feedmill.toml" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 100); do
    body=$(curl -s "http://127.0.0.1:$fm_port/feeds/all.json" || true)
    [ "$(printf '%s' "$body" | grep -c '"id"')" -ge 50 ] && break
    sleep 0.1
done
mkdir -p "$work/www/feeds"
curl -s "http://127.0.0.1:$fm_port/feeds/all.atom" -o "$work/www/feeds/all.atom"
ng_port=$(free_port)
start_nginx "$work" "$ng_port"
fm_etag=$(curl -sI "http://127.0.0.1:$fm_port/feeds/all.atom" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
ng_etag=$(curl -sI "http://127.0.0.1:$ng_port/feeds/all.atom" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
echo "document: $(wc -c < "$work/www/feeds/all.atom") bytes; feedmill ETag $fm_etag, nginx ETag $ng_etag"

rate() { # url [header]
    local args=(-t2 -c32 -d"${SECONDS_EACH}s" --latency)
    [ -n "${2:-}" ] && args+=(-H "$2")
    wrk "${args[@]}" "$1" | awk '/Requests\/sec/ {print $2}'
}
printf '%-6s %-14s %12s %12s %8s\n' round case nginx_rps feedmill_rps ratio
for round in $(seq 1 "$ROUNDS"); do
    n_full=$(rate "http://127.0.0.1:$ng_port/feeds/all.atom")
    f_full=$(rate "http://127.0.0.1:$fm_port/feeds/all.atom")
    n_304=$(rate "http://127.0.0.1:$ng_port/feeds/all.atom" "If-None-Match: $ng_etag")
    f_304=$(rate "http://127.0.0.1:$fm_port/feeds/all.atom" "If-None-Match: $fm_etag")
    printf '%-6s %-14s %12s %12s %8s\n' "$round" "full body" "$n_full" "$f_full" "$(ratio "$f_full" "$n_full")"
    printf '%-6s %-14s %12s %12s %8s\n' "$round" "304" "$n_304" "$f_304" "$(ratio "$f_304" "$n_304")"
done
echo "ratio = feedmill requests/s / nginx requests/s (target: 0.8 or more)"
