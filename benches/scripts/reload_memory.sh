#!/usr/bin/env bash
# Reload memory: a daemon on one file:// source is reloaded (SIGHUP) to N new sources of 100
# items each; prints its peak RSS (VmHWM) and what it holds after the import. The unit's
# MemoryHigh is 256M.   Usage: benches/scripts/reload_memory.sh [N] [BINARY] [EXTRA_FETCH_TOML]
source "$(dirname "$0")/common.sh"
N=${1:-10000}
BIN=${2:-$FEEDMILL}
EXTRA=${3:-}
[ -n "${2:-}" ] || (cd "$ROOT" && cargo build --release --locked --quiet)
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
python3 "$ROOT/benches/scripts/make_feeds.py" "$work/www" "$N" 100
port=$(free_port)
config_head() {
    echo "[server]"; echo "listen = \"127.0.0.1:$port\""
    echo "[store]"; echo "path = \"$work/store\""
    echo "[fetch]"; echo "schedule = \"0 0 1 1 *\""
    [ -z "$EXTRA" ] || echo "$EXTRA"
}
config_sources() {
    for i in $(seq 0 $(($1 - 1))); do
        echo "[[source]]"; echo "name = \"f$i\""; echo "url = \"file://$work/www/f/$i.xml\""
    done
    echo "[[feed]]"; echo "name = \"all\""
}
{ config_head; config_sources 1; } > "$work/feedmill.toml"
"$BIN" run -c "$work/feedmill.toml" > "$work/log" 2>&1 &
pid=$!
fetches() { curl -sf "http://127.0.0.1:$port/metrics" | awk '/^feedmill_fetches_total/ { s += $2 } END { print int(s) }'; }
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
{ config_head; config_sources "$N"; } > "$work/feedmill.toml.new"
mv "$work/feedmill.toml.new" "$work/feedmill.toml"
started=$(date +%s)
kill -HUP "$pid"
until [ "$(fetches)" -ge "$N" ]; do
    [ $(($(date +%s) - started)) -lt 600 ] || { echo "timed out after 600 s" >&2; break; }
    sleep 1
done
took=$(($(date +%s) - started))
sleep 4
peak=$(awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$pid/status")
after=$(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$pid/status")
echo "N=$N: peak ${peak} MiB, after ${after} MiB, $(fetches) fetches in ${took} s ${EXTRA}"
