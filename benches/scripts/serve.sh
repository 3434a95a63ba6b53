#!/usr/bin/env bash
# Serve: wrk on /feeds/all.atom (50 entries) against nginx serving the very same bytes as a
# static file, alternating A B A B; with and without If-None-Match. Prints requests/s and
# the ratio feedmill/nginx.   Usage: benches/scripts/serve.sh [SECONDS] [ROUNDS]
#
# A/B mode: FEEDMILL_A=OLD FEEDMILL_B=NEW benches/scripts/serve.sh [SECONDS] [ROUNDS] runs both
# binaries' daemons (each on its own port and store; nginx serves A's bytes) and, in every
# round, wrk on nginx, A and B, A and B alternating which goes first. Prints per round the
# requests/s, each one's ratio to nginx, B's requests/s over A's and each daemon's CPU time
# per request; at the end the medians of B/A.
source "$(dirname "$0")/common.sh"
SECONDS_EACH=${1:-10}
ROUNDS=${2:-2}
need_tools
work=$(mktemp -d)
declare -A bin fm_port daemon fm_etag
trap 'for p in "${daemon[@]}"; do kill "$p" 2>/dev/null || true; done; stop_nginx "$work"; rm -rf "$work"' EXIT
python3 "$ROOT/benches/scripts/make_feeds.py" "$work/feeds" 5 20

# start_daemon SIDE: runs ${bin[SIDE]}'s daemon on its own port and store (SIDE F is the
# only daemon outside A/B mode) and waits until all.json has its 50 entries.
start_daemon() {
    local side=$1 port ready=
    port=$(free_port)
    fm_port[$side]=$port
    {
        echo "[server]"
        echo "listen = \"127.0.0.1:$port\""
        echo "[store]"
        echo "path = \"$work/store-$side\""
        for i in 0 1 2 3 4; do
            echo "[[source]]"
            echo "name = \"f$i\""
            echo "url = \"file://$work/feeds/f/$i.xml\""
        done
        echo "[[feed]]"
        echo "name = \"all\""
        echo "limit = 50"
    } > "$work/feedmill-$side.toml"
    "${bin[$side]}" run -c "$work/feedmill-$side.toml" 2>"$work/daemon-$side.log" &
    daemon[$side]=$!
    for _ in $(seq 100); do
        body=$(curl -s "http://127.0.0.1:$port/feeds/all.json" || true)
        [ "$(printf '%s' "$body" | grep -c '"id"')" -ge 50 ] && { ready=1; break; }
        sleep 0.1
    done
    [ -n "$ready" ] || { echo "warning: daemon $side did not serve 50 entries within 10 s:"; tail -3 "$work/daemon-$side.log"; }
    fm_etag[$side]=$(curl -sI "http://127.0.0.1:$port/feeds/all.atom" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
}
if [ -n "$AB" ]; then
    bin=([A]=$FEEDMILL_A [B]=$FEEDMILL_B)
    first=A
else
    bin=([F]=$FEEDMILL)
    first=F
fi
for side in "${!bin[@]}"; do start_daemon "$side"; done
mkdir -p "$work/www/feeds"
curl -s "http://127.0.0.1:${fm_port[$first]}/feeds/all.atom" -o "$work/www/feeds/all.atom"
ng_port=$(free_port)
start_nginx "$work" "$ng_port"
ng_etag=$(curl -sI "http://127.0.0.1:$ng_port/feeds/all.atom" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')

rate() { # url [header]
    local args=(-t2 -c32 -d"${SECONDS_EACH}s" --latency)
    [ -n "${2:-}" ] && args+=(-H "$2")
    wrk "${args[@]}" "$1" | awk '/Requests\/sec/ {print $2}'
}

if [ -z "$AB" ]; then
    echo "document: $(wc -c < "$work/www/feeds/all.atom") bytes; feedmill ETag ${fm_etag[F]}, nginx ETag $ng_etag"
    fm=${fm_port[F]}
    printf '%-6s %-14s %12s %12s %8s\n' round case nginx_rps feedmill_rps ratio
    for round in $(seq 1 "$ROUNDS"); do
        n_full=$(rate "http://127.0.0.1:$ng_port/feeds/all.atom")
        f_full=$(rate "http://127.0.0.1:$fm/feeds/all.atom")
        n_304=$(rate "http://127.0.0.1:$ng_port/feeds/all.atom" "If-None-Match: $ng_etag")
        f_304=$(rate "http://127.0.0.1:$fm/feeds/all.atom" "If-None-Match: ${fm_etag[F]}")
        printf '%-6s %-14s %12s %12s %8s\n' "$round" "full body" "$n_full" "$f_full" "$(ratio "$f_full" "$n_full")"
        printf '%-6s %-14s %12s %12s %8s\n' "$round" "304" "$n_304" "$f_304" "$(ratio "$f_304" "$n_304")"
    done
    echo "ratio = feedmill requests/s / nginx requests/s (target: 0.8 or more)"
    exit 0
fi

echo "A = $FEEDMILL_A"
echo "B = $FEEDMILL_B"
curl -s "http://127.0.0.1:${fm_port[B]}/feeds/all.atom" -o "$work/b.atom"
echo "document: A $(wc -c < "$work/www/feeds/all.atom") bytes, B $(wc -c < "$work/b.atom") bytes; ETags A ${fm_etag[A]}, B ${fm_etag[B]}, nginx $ng_etag"
# cpu_ticks PID: the daemon's user + system time so far, in clock ticks (all its threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# side_rate SIDE CASE: wrk on SIDE's daemon; sets rps[SIDE] and us[SIDE] (the daemon's CPU
# microseconds per request: wrk shares the two cores, so requests/s alone hides what B saves).
declare -A rps us
side_rate() {
    local side=$1 case=$2 header= before after
    [ "$case" = 304 ] && header="If-None-Match: ${fm_etag[$side]}"
    before=$(cpu_ticks "${daemon[$side]}")
    rps[$side]=$(rate "http://127.0.0.1:${fm_port[$side]}/feeds/all.atom" "$header")
    after=$(cpu_ticks "${daemon[$side]}")
    us[$side]=$(python3 -c "import os; print(f'{($after - $before) / os.sysconf(\"SC_CLK_TCK\") * 1e6 / max($SECONDS_EACH * ${rps[$side]}, 1):.1f}')")
}
# x_A, x_B = A's or B's requests/s / nginx's; rps_B/A above 1.00: B is faster; us = CPU µs per request.
fmt='%-6s %-10s %10s %10s %10s %6s %6s %8s %6s %6s %7s\n'
printf "$fmt" round case nginx_rps A_rps B_rps x_A x_B rps_B/A A_us B_us us_B/A
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
    for case in full 304; do
        header=; [ "$case" = 304 ] && header="If-None-Match: $ng_etag"
        n=$(rate "http://127.0.0.1:$ng_port/feeds/all.atom" "$header")
        for side in $order; do side_rate "$side" "$case"; done
        r=$(ratio "${rps[B]}" "${rps[A]}") ru=$(ratio "${us[B]}" "${us[A]}")
        echo "$r" >> "$work/rps-$case"
        echo "${rps[A]}" >> "$work/sum-A-$case"
        echo "${rps[B]}" >> "$work/sum-B-$case"
        echo "$ru" >> "$work/us-$case"
        ratio "${rps[A]}" "$n" >> "$work/x-A-$case"
        ratio "${rps[B]}" "$n" >> "$work/x-B-$case"
        printf "$fmt" "$round" "$case" "$n" "${rps[A]}" "${rps[B]}" "$(ratio "${rps[A]}" "$n")" "$(ratio "${rps[B]}" "$n")" \
            "$r" "${us[A]}" "${us[B]}" "$ru"
    done
done
for case in full 304; do
    echo "median $case: requests/s B/A $(median "$work/rps-$case"), CPU per request B/A $(median "$work/us-$case"); x_A $(median "$work/x-A-$case"), x_B $(median "$work/x-B-$case");" \
        "sums B/A: requests/s $(sum_ratio "$work/sum-B-$case" "$work/sum-A-$case")"
done
echo "$SECONDS_EACH s per wrk run, $ROUNDS rounds; rps_B/A = B's requests/s / A's (above 1.00: B is faster);"
echo "x = feedmill requests/s / nginx's (target: 0.8 or more); us = the daemon's CPU µs per request (below 1.00 in us_B/A: B is cheaper)"
