#!/usr/bin/env bash
# Replicas (issue 17): the PostgreSQL engine against sled, then 1 against 3 replicas on one
# database, in one run.
#
# Part 1, refresh: `feedmill fetch` of N feeds of 20 items behind nginx, cold (an empty
# store) and warm (the second run: every feed answers 304), on sled and on PostgreSQL,
# alternating which goes first each round (A B A B). Prints feeds/s and PostgreSQL's over
# sled's per round (the issue's target: at least 0.50 cold), and their medians.
#
# Part 2, replicas: `feedmill run` on one database, 1 replica and 3 replicas (the order
# alternates each round), M sources on a schedule of every P seconds, filled first by one
# `feedmill fetch`. Over a window of W seconds nginx's access log says how many fetches each
# source got for each of its due times (its schedule's fire times plus its stable jitter):
# fetches per due time fetched (1.00: none fetched twice), the due times fetched of all due
# times in the window, fetches/s, and each replica's share of the fetches (its /metrics).
#
#   Usage: benches/scripts/replicas.sh [N] [ROUNDS] [M] [P] [W]   (10000 2 N 10 60)
#
# The database is FEEDMILL_BENCH_DATABASE_URL when set (postgres://user@host:port/db, the
# password in PGPASSWORD or .pgpass; before each cold run the script DROPS every feedmill_*
# table, sequence and function in it, so name a database of its own). Otherwise the script
# starts a private PostgreSQL 15 (initdb and pg_ctl as the postgres user, a temp directory, a
# free port on 127.0.0.1, trust authentication, fsync and synchronous_commit on as on a real
# server, pg_stat_statements loaded), recreates its database before each cold run and removes
# it all at the end.
#
# Knobs: SKIP_REFRESH=1 or SKIP_REPLICAS=1 runs one part; PROFILE=1 prints each PostgreSQL
# cold run's costliest statements (pg_stat_statements, private server only); PG_SYNC=off runs
# the private server with synchronous_commit off (what waiting for the WAL costs); HOSTS=K
# serves part 2's sources from K loopback addresses 127.0.0.1..K (default 16: `per_host` is
# held per host across replicas, and with one host it caps all replicas together); POOL sets
# [store] pool (default: feedmill's); KEEP=1 keeps the work directory.
source "$(dirname "$0")/common.sh"
N=${1:-10000}
ROUNDS=${2:-2}
M=${3:-$N}
PERIOD=${4:-10}
WINDOW=${5:-60}
HOSTS=${HOSTS:-16}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
need_tools
command -v psql >/dev/null 2>&1 || PATH="$PGBIN:$PATH"
work=$(mktemp -d)
pgdir=
daemons=()
cleanup() {
    for pid in "${daemons[@]}"; do kill "$pid" 2>/dev/null || true; done
    stop_nginx "$work"
    if [ -n "$pgdir" ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
        [ -n "${KEEP:-}" ] || rm -rf "$pgdir"
    fi
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# --- PostgreSQL ------------------------------------------------------------------------

# A private server, unless one was named. ADMIN_URL reaches a database to (re)create
# feedmill's in; DATABASE_URL is the one feedmill uses.
if [ -n "${FEEDMILL_BENCH_DATABASE_URL:-}" ]; then
    DATABASE_URL=$FEEDMILL_BENCH_DATABASE_URL
    PRIVATE=
    echo "database: $DATABASE_URL (given; its feedmill_* objects are dropped before each cold run)"
else
    PRIVATE=1
    pgdir=$(mktemp -d /tmp/feedmill-bench-pg.XXXXXX)
    chown postgres: "$pgdir"
    pgport=$(free_port)
    # initdb and pg_ctl refuse to run as root; the postgres user must be able to read its cwd.
    (cd "$pgdir" && runuser -u postgres -- "$PGBIN/initdb" -D "$pgdir/data" -U postgres -A trust \
        -E UTF8 --locale=C >"$pgdir/initdb.log" 2>&1) || { cat "$pgdir/initdb.log" >&2; exit 1; }
    (cd "$pgdir" && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
        -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c max_connections=200 \
            -c shared_preload_libraries=pg_stat_statements -c synchronous_commit=${PG_SYNC:-on} \
            -c pg_stat_statements.track_planning=${PROFILE:+on}${PROFILE:-off}" \
        start >/dev/null) || { tail -20 "$pgdir/server.log" >&2; exit 1; }
    ADMIN_URL="postgres://postgres@127.0.0.1:$pgport/postgres"
    DATABASE_URL="postgres://postgres@127.0.0.1:$pgport/feedmill"
    echo "database: a private PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$pgport (fsync on, synchronous_commit ${PG_SYNC:-on}, shared_buffers $(psql -X -Atq -d "$ADMIN_URL" -c 'SHOW shared_buffers'))"
fi

# reset_database: an empty database for a cold run.
reset_database() {
    if [ -n "$PRIVATE" ]; then
        psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_URL" -c "SET client_min_messages = warning" \
            -c "DROP DATABASE IF EXISTS feedmill WITH (FORCE)" -c "CREATE DATABASE feedmill"
        psql -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c "CREATE EXTENSION pg_stat_statements"
    else
        # Every object feedmill's schema creates is named feedmill_*.
        psql -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" <<'SQL'
DO $$
DECLARE o record;
BEGIN
    FOR o IN SELECT c.oid::regclass AS name FROM pg_class c
             WHERE c.relname LIKE 'feedmill\_%' AND c.relkind IN ('r', 'p')
               AND c.relnamespace = current_schema()::regnamespace LOOP
        EXECUTE format('DROP TABLE IF EXISTS %s CASCADE', o.name);
    END LOOP;
    FOR o IN SELECT c.oid::regclass AS name FROM pg_class c
             WHERE c.relname LIKE 'feedmill\_%' AND c.relkind = 'S'
               AND c.relnamespace = current_schema()::regnamespace LOOP
        EXECUTE format('DROP SEQUENCE IF EXISTS %s CASCADE', o.name);
    END LOOP;
    FOR o IN SELECT p.oid::regprocedure AS name FROM pg_proc p
             WHERE p.proname LIKE 'feedmill\_%'
               AND p.pronamespace = current_schema()::regnamespace LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', o.name);
    END LOOP;
END $$;
SQL
    fi
}

# server_cpu: the private server's CPU seconds so far (user + system): the postmaster's own
# and its reaped children's (backends that ended), plus its live children's.
server_cpu() {
    [ -n "$PRIVATE" ] || { echo 0; return; }
    python3 - "$(head -1 "$pgdir/data/postmaster.pid")" <<'PY'
import os, sys
pm = sys.argv[1]
tick = os.sysconf("SC_CLK_TCK")
def fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()
total = 0
f = fields(pm)
total += sum(int(x) for x in f[11:15])  # utime stime cutime cstime
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            g = fields(pid)
        except OSError:
            continue
        if g[1] == pm:  # ppid
            total += int(g[11]) + int(g[12])
print(f"{total / tick:.2f}")
PY
}

# top_statements FILE: the costliest statements since the last reset (execution and
# planning time), and the sum over all of them, into FILE.
top_statements() {
    psql -X -q -d "$DATABASE_URL" -P pager=off -c "
        SELECT calls, round(total_exec_time::numeric, 0) AS exec_ms,
               round(total_plan_time::numeric, 0) AS plan_ms,
               round((total_exec_time / calls)::numeric, 3) AS mean_ms, rows,
               left(regexp_replace(query, '\s+', ' ', 'g'), 80) AS query
        FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 14" \
        -c "SELECT sum(calls) AS statements, round(sum(total_exec_time)::numeric, 0) AS exec_ms,
                   round(sum(total_plan_time)::numeric, 0) AS plan_ms FROM pg_stat_statements
            WHERE query NOT LIKE '%pg_stat_%'" > "$1"
}

# start_sampler FILE / stop_sampler: what feedmill's connections are doing, 50 times a
# second (pg_stat_activity: state, wait event, and the statement of those not idle), one
# line per connection per sample; summarized by sampled_states FILE.
start_sampler() {
    psql -X -q -At -F '|' -d "$DATABASE_URL" > "$1" 2>/dev/null <<'SQL' &
SELECT clock_timestamp(), state, coalesce(wait_event_type, '-'), coalesce(wait_event, '-'),
       CASE WHEN state = 'idle' THEN '-' ELSE left(regexp_replace(query, '\s+', ' ', 'g'), 60) END
FROM pg_stat_activity WHERE application_name = 'feedmill' AND pid <> pg_backend_pid()
\watch 0.02
SQL
    sampler=$!
}
stop_sampler() { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }
sampled_states() {
    python3 - "$1" <<'PY'
import collections, sys
samples, seen, busy = set(), collections.Counter(), collections.Counter()
for line in open(sys.argv[1]):
    parts = line.rstrip("\n").split("|", 4)
    if len(parts) < 5:
        continue
    t, state, wtype, wevent, query = parts
    samples.add(t[:22])
    seen[(state, wtype if wtype != "-" else "", wevent if wevent != "-" else "", query)] += 1
n = max(len(samples), 1)
print(f"{n} samples of pg_stat_activity (feedmill's connections); per sample, on average:")
for (state, wtype, wevent, query), count in seen.most_common(12):
    wait = f"waiting {wtype}/{wevent}" if wtype else "running"
    print(f"  {count / n:5.2f}  {state:20} {wait if state != 'idle' else '':28} {query if query != '-' else ''}")
PY
}

# --- part 1: refresh on sled and on PostgreSQL -------------------------------------------

python3 "$ROOT/benches/scripts/make_feeds.py" "$work/www" "$(( N > M ? N : M ))" 20
port=$(free_port)
hosts=""
for i in $(seq 1 "$HOSTS"); do hosts+="127.0.0.$i "; done
NGINX_HOSTS=$hosts NGINX_ACCESS_LOG="$work/access.log" start_nginx "$work" "$port"

# fetch_run CONFIG: prints wall seconds, CPU seconds (user + system) and peak KiB of one
# `feedmill fetch`; checks that it fetched every source as a cold or warm run should.
fetch_run() {
    local config=$1 kind=$2 started ended failed count
    started=$(date +%s%N)
    /usr/bin/time -f "%U %S %M" -o "$work/time" "$FEEDMILL" fetch -c "$config" >"$work/fetch.out" 2>"$work/fetch.err" ||
        { echo "feedmill fetch failed:" >&2; tail -3 "$work/fetch.err" >&2; }
    ended=$(date +%s%N)
    failed=$(grep -c FAILED "$work/fetch.out" || true)
    [ "$failed" -eq 0 ] || echo "warning: $config's $kind run failed $failed sources: $(grep -m1 FAILED "$work/fetch.out")" >&2
    if [ "$kind" = cold ]; then
        count=$(grep -cE '\([1-9][0-9]* new' "$work/fetch.out" || true)
        [ "$count" -eq "$N" ] || echo "warning: $config's cold run stored new entries for $count of $N sources" >&2
    else
        count=$(grep -c "304 not modified" "$work/fetch.out" || true)
        [ "$count" -eq "$N" ] || echo "warning: $config's warm run saw 304 from $count of $N sources" >&2
    fi
    python3 -c "import sys; u, s, m = open(sys.argv[1]).read().split()[-3:]; print(f'{($ended - $started) / 1e9:.3f} {float(u) + float(s):.2f} {m}')" "$work/time"
}

# quiet_disk: every timed run starts on a quiet disk. PostgreSQL writes the pages of a run
# later (a checkpoint), and sled's flush at the end of the next run would wait behind them:
# the database's later writes are not charged to whichever run comes next.
quiet_disk() {
    psql -X -q -d "$DATABASE_URL" -c "CHECKPOINT" 2>/dev/null || true
    sync
}

# pg_config_from SLED_CONFIG OUT: the same config on PostgreSQL.
pg_config_from() {
    sed "s#^\[store\]\$#[store]\nengine = \"postgres\"\nurl = \"$DATABASE_URL\"${POOL:+\npool = $POOL}#" "$1" > "$2"
}

if [ -z "${SKIP_REFRESH:-}" ]; then
    refresh_config "$work" "$port" "$N" -sled
    pg_config_from "$work/feedmill-sled.toml" "$work/feedmill-pg.toml"
    cat "$FEEDMILL" > /dev/null
    echo
    echo "refresh: \`feedmill fetch\` of $N feeds of 20 items, sled and PostgreSQL alternating"
    fmt='%-6s %-5s %-5s %8s %8s %8s %8s %8s %9s\n'
    printf "$fmt" round kind store wall_s feeds/s cpu_s db_cpu_s peak_MiB pg/sled
    for round in $(seq 1 "$ROUNDS"); do
        if [ $((round % 2)) -eq 1 ]; then order="sled pg"; else order="pg sled"; fi
        declare -A fps=()
        for side in $order; do
            if [ "$side" = sled ]; then rm -rf "$work/store-sled"; else reset_database; fi
            [ "$side" = pg ] && [ -n "$PRIVATE" ] && psql -X -q -d "$DATABASE_URL" -c "SELECT pg_stat_statements_reset()" >/dev/null
            for kind in cold warm; do
                quiet_disk
                db_before=$(server_cpu)
                [ "$side" = pg ] && [ -n "${PROFILE:-}" ] && start_sampler "$work/activity-$kind-$round"
                read -r wall cpu peak < <(fetch_run "$work/feedmill-$side.toml" "$kind")
                [ "$side" = pg ] && [ -n "${PROFILE:-}" ] && stop_sampler
                db_cpu=$(python3 -c "print(f'{$(server_cpu) - $db_before:.2f}')")
                fps[$side-$kind]=$(python3 -c "print(f'{$N / max($wall, 0.001):.0f}')")
                echo "${fps[$side-$kind]}" >> "$work/fps-$side-$kind"
                [ "$side" = sled ] && db_cpu=-
                echo "$round $kind $side $wall ${fps[$side-$kind]} $cpu $db_cpu $((peak / 1024))" >> "$work/refresh-rows"
                if [ "$side" = pg ] && [ "$kind" = cold ] && [ -n "${PROFILE:-}" ] && [ -n "$PRIVATE" ]; then
                    top_statements "$work/top-cold-$round"
                    psql -X -q -d "$DATABASE_URL" -c "SELECT pg_stat_statements_reset()" >/dev/null
                fi
            done
        done
        for kind in cold warm; do
            r=$(ratio "${fps[pg-$kind]}" "${fps[sled-$kind]}")
            echo "$r" >> "$work/ratio-$kind"
            grep "^$round $kind " "$work/refresh-rows" | while read -r _ _ side wall f cpu db peak; do
                shown=-; [ "$side" = pg ] && shown=$r
                printf "$fmt" "$round" "$kind" "$side" "$wall" "$f" "$cpu" "$db" "$peak" "$shown"
            done
        done
        if [ -f "$work/top-cold-$round" ]; then
            echo "round $round: PostgreSQL's costliest statements in the cold run (pg_stat_statements):"
            cat "$work/top-cold-$round"
        fi
        for kind in cold warm; do
            [ -f "$work/activity-$kind-$round" ] || continue
            echo "round $round, PostgreSQL $kind: $(sampled_states "$work/activity-$kind-$round")"
        done
    done
    for kind in cold warm; do
        echo "median $kind: feeds/s sled $(median "$work/fps-sled-$kind"), PostgreSQL $(median "$work/fps-pg-$kind");" \
            "pg/sled per round $(paste -sd' ' "$work/ratio-$kind"), median $(median "$work/ratio-$kind")"
    done
    echo "pg/sled = PostgreSQL's feeds/s over sled's in the same round (target cold: 0.50 or more);"
    echo "cpu_s = feedmill's user + system seconds; db_cpu_s = the database server's (private server only)"
fi

# --- part 2: 1 against 3 replicas ------------------------------------------------------

# run_config I PORT: the config of replica I (its own listen port and name) on the database,
# M sources over the HOSTS addresses, every PERIOD seconds.
run_config() {
    local i=$1 listen=$2
    {
        echo "[server]"
        echo "listen = \"127.0.0.1:$listen\""
        echo "[store]"
        echo "engine = \"postgres\""
        echo "url = \"$DATABASE_URL\""
        echo "replica = \"r$i\""
        [ -z "${POOL:-}" ] || echo "pool = $POOL"
        echo "path = \"$work/unused-$i\""
        echo "max_items_per_source = 0"
        echo "[fetch]"
        echo "schedule = \"*/$PERIOD * * * * *\""
        echo "concurrency = 32"
        echo "per_host = 32"
        for s in $(seq 0 $((M - 1))); do
            echo "[[source]]"
            echo "name = \"f$s\""
            echo "url = \"http://127.0.0.$((s % HOSTS + 1)):$port/f/$s.xml\""
        done
        echo "[[feed]]"
        echo "name = \"all\""
    } > "$work/run-$i.toml"
}

# counts_of I: replica I's fetches so far (every outcome) and its claims that it won (or
# took over), found fetched by another replica, and found busy, from its /metrics.
counts_of() {
    curl -sf "http://127.0.0.1:${listens[$1]}/metrics" | awk '
        /^feedmill_fetches_total\{/ { f += $2 }
        /^feedmill_lease_claims_total\{outcome="(won|taken_over)"/ { w += $2 }
        /^feedmill_lease_claims_total\{outcome="fetched_elsewhere"/ { e += $2 }
        /^feedmill_lease_claims_total\{outcome="busy"/ { b += $2 }
        END { print f + 0, w + 0, e + 0, b + 0 }'
}

# replicas_run R: R replicas on a filled database; the window's figures on one line:
# fetches, due times fetched, due times in all, fetches/s, each replica's share.
replicas_run() {
    local r=$1 i start end
    reset_database
    "$FEEDMILL" fetch -c "$work/run-1.toml" > "$work/fill.out" 2>&1 || { echo "the fill failed:" >&2; tail -3 "$work/fill.out" >&2; }
    daemons=()
    for i in $(seq 1 "$r"); do
        "$FEEDMILL" run -c "$work/run-$i.toml" 2> "$work/daemon-$r-$i.log" &
        daemons+=($!)
    done
    for i in $(seq 1 "$r"); do
        until curl -sf "http://127.0.0.1:${listens[$i]}/healthz" >/dev/null 2>&1; do sleep 0.1; done
    done
    # The window opens on a fire time, a whole period after every replica answers.
    start=$(python3 -c "import math, time; print((math.floor(time.time() / $PERIOD) + 2) * $PERIOD)")
    end=$((start + WINDOW))
    python3 -c "import time; time.sleep(max(0, $start - time.time()))"
    local -a before=() shares=() claims=(0 0 0)
    for i in $(seq 1 "$r"); do before[$i]=$(counts_of "$i"); done
    python3 -c "import time; time.sleep(max(0, $end - time.time()))"
    local f0 w0 e0 b0 f1 w1 e1 b1
    for i in $(seq 1 "$r"); do
        read -r f0 w0 e0 b0 <<< "${before[$i]}"
        read -r f1 w1 e1 b1 < <(counts_of "$i")
        shares+=("$((f1 - f0))")
        claims=("$((claims[0] + w1 - w0))" "$((claims[1] + e1 - e0))" "$((claims[2] + b1 - b0))")
    done
    for pid in "${daemons[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${daemons[@]}"; do wait "$pid" 2>/dev/null || true; done
    daemons=()
    echo "$(python3 "$work/due.py" "$work/access.log" "$start" "$end" "$PERIOD" "$M" "${shares[@]}") ${claims[0]}/${claims[1]}/${claims[2]}"
}

# due.py LOG START END PERIOD M SHARES...: for each source and each of its due times in
# [START, END) (the schedule's fire times, moved by the jitter feedmill gives the source: a
# tenth of the period at most two minutes, from SHA-256 of its name), how many requests nginx
# logged between that due time and the next.
cat > "$work/due.py" <<'PY'
import collections, hashlib, sys
log, start, end, period, m = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
shares = [int(s) for s in sys.argv[6:]]
spread_ms = min(period * 1000 // 10, 120_000)
def jitter(name):
    return (int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") % spread_ms) / 1000 if spread_ms else 0
jit = [jitter(f"f{s}") for s in range(m)]
slots = collections.Counter()
for line in open(log):
    t, uri, _status = line.split()
    if not uri.startswith("/f/"):
        continue
    s = int(uri[3:].split(".")[0])
    if s >= m:
        continue
    slot = int((float(t) - jit[s]) // period)
    if start <= slot * period and (slot + 1) * period <= end:
        slots[(s, slot)] += 1
due = m * int((end - start) // period)
fetches = sum(slots.values())
fetched = len(slots)
twice = sum(1 for n in slots.values() if n > 1)
total = sum(shares)
split = "/".join(f"{100 * s / total:.0f}" for s in shares) if total else "-"
print(f"{fetches} {fetched} {due} {twice} {fetches / fetched if fetched else 0:.3f} {fetched / due:.3f} {fetches / (end - start):.0f} {split}")
PY

if [ -z "${SKIP_REPLICAS:-}" ]; then
    declare -A listens=()
    for i in 1 2 3; do
        listens[$i]=$(free_port)
        run_config "$i" "${listens[$i]}"
    done
    echo
    echo "replicas: $M sources on $HOSTS hosts every $PERIOD s, a window of $WINDOW s, 1 and 3 replicas alternating"
    fmt='%-6s %-8s %8s %8s %8s %6s %8s %8s %10s %10s %20s\n'
    printf "$fmt" round replicas fetches fetched due twice per_due covered fetches/s share_% claims_w/e/b
    for round in $(seq 1 "$ROUNDS"); do
        if [ $((round % 2)) -eq 1 ]; then order="1 3"; else order="3 1"; fi
        for r in $order; do
            read -r fetches fetched due twice per_due covered rate split claimed < <(replicas_run "$r")
            printf "$fmt" "$round" "$r" "$fetches" "$fetched" "$due" "$twice" "$per_due" "$covered" "$rate" "$split" "$claimed"
            echo "$per_due" >> "$work/per-due-$r"
            echo "$covered" >> "$work/covered-$r"
            echo "$rate" >> "$work/rate-$r"
        done
    done
    for r in 1 3; do
        echo "median with $r: fetches per due time fetched $(median "$work/per-due-$r"), due times fetched $(median "$work/covered-$r"), fetches/s $(median "$work/rate-$r")"
    done
    echo "per_due = fetches over the (source, due time) pairs fetched (1.00: no due time fetched twice); twice = pairs fetched"
    echo "more than once; covered = pairs fetched over the pairs due in the window; share_% = each replica's fetches (its /metrics);"
    echo "claims_w/e/b = claims won (or taken over) / found fetched by another replica / found busy, all replicas"
fi
