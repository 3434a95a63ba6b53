# Shared by the benchmark scripts: tools, a release build, nginx on a loopback port.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FEEDMILL="$ROOT/target/release/feedmill"

# A/B mode of refresh.sh and serve.sh: FEEDMILL_A and FEEDMILL_B name two feedmill binaries
# (say a release build of the commit before a change, and one of the change), which then run
# alternately in the same run instead of this checkout's build. Sets AB=1 in that mode.
AB=
if [ -n "${FEEDMILL_A:-}${FEEDMILL_B:-}" ]; then
    for bin in "${FEEDMILL_A:-}" "${FEEDMILL_B:-}"; do
        [ -x "$bin" ] || { echo "A/B mode needs FEEDMILL_A and FEEDMILL_B, both executable (got '$bin')" >&2; exit 2; }
    done
    AB=1
fi

need_tools() {
    local apt=()
    command -v nginx >/dev/null 2>&1 || apt+=(nginx-light)
    command -v wrk >/dev/null 2>&1 || apt+=(wrk)
    [ -x /usr/bin/time ] || apt+=(time)
    if [ "${#apt[@]}" -gt 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt[@]}" >/dev/null
    fi
    python3 -c 'import feedparser' 2>/dev/null ||
        python3 -m pip install --quiet --root-user-action=ignore feedparser==6.0.14
    # A/B mode runs the two binaries it was given: building this checkout would only cost time.
    [ -n "$AB" ] || (cd "$ROOT" && cargo build --release --locked --quiet)
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_nginx DIR PORT: serves DIR on 127.0.0.1:PORT (ETag and Last-Modified on, as nginx does
# for static files), in the background; stop with stop_nginx DIR. NGINX_HOSTS lists the
# loopback addresses to listen on instead (sources on several hosts); NGINX_ACCESS_LOG names
# a file that gets one line per request: its time (seconds since the epoch), URI and status.
start_nginx() {
    local dir=$1 port=$2 listen="" host
    for host in ${NGINX_HOSTS:-127.0.0.1}; do listen+="listen $host:$port; "; done
    mkdir -p "$dir/nginx"
    # nginx's workers run as another user; mktemp -d made the directory private.
    chmod -R a+rX "$dir"
    cat > "$dir/nginx/nginx.conf" <<CONF
worker_processes ${NGINX_WORKERS:-auto};
error_log $dir/nginx/error.log warn;
pid $dir/nginx/nginx.pid;
events { worker_connections 4096; }
http {
    log_format timed '\$msec \$uri \$status';
    access_log ${NGINX_ACCESS_LOG:-off}${NGINX_ACCESS_LOG:+ timed};
    sendfile on;
    etag on;
    keepalive_requests 100000;
    types { application/rss+xml xml; application/atom+xml atom; }
    server {
        $listen
        root $dir/www;
    }
}
CONF
    nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf"
}

stop_nginx() {
    local dir=$1
    [ -f "$dir/nginx/nginx.pid" ] && kill "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null || true
}

# median FILE: the median of the numbers in FILE, one a line ("-" if there are none).
median() { python3 -c "import statistics, sys; v = [float(l) for l in open(sys.argv[1]) if l.strip() not in ('', 'inf')]; print(f'{statistics.median(v):.2f}' if v else '-')" "$1"; }

# sum_ratio FILE_B FILE_A: the sum of FILE_B's numbers over the sum of FILE_A's (a figure that
# one slow run moves less than it moves its own round's ratio).
sum_ratio() { python3 -c "import sys; b, a = (sum(float(l) for l in open(f) if l.strip()) for f in sys.argv[1:]); print(f'{b / a:.2f}' if a else 'inf')" "$1" "$2"; }

ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.2f}' if b else 'inf')" "$1" "$2"; }

# refresh_config WORK PORT N [SIDE]: writes WORK/feedmill$SIDE.toml (store WORK/store$SIDE)
# for `feedmill fetch` of the N feeds that make_feeds.py wrote and nginx serves on PORT, and
# their URLs to WORK/urls.txt. SIDE gives each binary of an A/B run its own store.
refresh_config() {
    local work=$1 port=$2 n=$3 side=${4:-}
    : > "$work/urls.txt"
    {
        echo "[store]"
        echo "path = \"$work/store$side\""
        echo "max_items_per_source = 0"
        echo "[fetch]"
        echo "concurrency = 32"
        echo "per_host = 32"
        for i in $(seq 0 $((n - 1))); do
            echo "[[source]]"
            echo "name = \"f$i\""
            echo "url = \"http://127.0.0.1:$port/f/$i.xml\""
            echo "http://127.0.0.1:$port/f/$i.xml" >> "$work/urls.txt"
        done
        echo "[[feed]]"
        echo "name = \"all\""
    } > "$work/feedmill$side.toml"
}
