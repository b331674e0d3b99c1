#!/bin/bash
# bench/run.sh - `make bench`: preforkd side by side with nginx and h2o on
# 127.0.0.1, and its wsgi module beside Gunicorn and uWSGI (bench/wsgi;
# method and reading: docs/performance.md). Runs on the benchmark machine
# as the user of make: installs wrk, nginx, h2o and the Python servers
# from Debian when missing (without starting their services), starts every
# server from a private config in a temporary directory, pins servers and
# wrk to separate CPUs, runs each scenario's servers in alternation and
# prints the tables, also written to $BENCH_OUT/results.txt.
# Exit status: 0 when every step ran (errors that wrk saw are in the table),
# 1 when a tool or a server could not run. Any exit stops every process it
# started, by pid.
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
CONF=$SRC/bench/conf
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
# shellcheck source=bench/wsgi/bench.sh
. "$SRC/bench/wsgi/bench.sh"

# BENCH_QUICK=1: one short round of everything, to see that it all runs.
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    q_runs=1 q_duration=2 q_warmup=1 q_wsgi_duration=2
else
    q_runs=3 q_duration=10 q_warmup=2 q_wsgi_duration=4
fi
RUNS=${BENCH_RUNS:-$q_runs}
DURATION=${BENCH_DURATION:-$q_duration}
WARMUP=${BENCH_WARMUP:-$q_warmup}
WSGI_DURATION=${BENCH_WSGI_DURATION:-$q_wsgi_duration}
WSGI_WARMUP=${BENCH_WSGI_WARMUP:-1}
WSGI_APPS=${BENCH_WSGI_APPS:-hello flask django}
WSGI_THREADS=${BENCH_WSGI_THREADS:-} # empty: the wsgi module's default
WORKERS=${BENCH_WORKERS:-1}
UPSTREAM_WORKERS=${BENCH_UPSTREAM_WORKERS:-1}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-1}
MAX_REQUESTS=${BENCH_MAX_REQUESTS:-1000}
POLL_PER_S=20 # /stats polls a second in the fork step: every 50 ms
SCENARIOS=${BENCH_SCENARIOS:-keepalive close proxy recycle fork wsgi}
BIN=${PREFORKD_BIN:-$SRC/build/preforkd}
APPS=${PREFORKD_APPS:-$SRC/build/apps}
OUT=${BENCH_OUT:-$(dirname "$BIN")/bench}
RUNS_TSV=$OUT/runs.tsv # where scenario writes (the WSGI step: its own)
DIR=
POLICY_ADDED=
SUDO=

want() {
    case " $SCENARIOS " in *" $1 "*) return 0 ;; esac
    return 1
}

check_knobs() {
    local v
    for v in RUNS DURATION WARMUP WORKERS UPSTREAM_WORKERS CONNECTIONS THREADS \
        MAX_REQUESTS WSGI_DURATION WSGI_WARMUP; do
        case ${!v} in
        '' | *[!0-9]* | 0) die "BENCH_$v (${!v}) must be a number > 0" ;;
        esac
    done
    if [ "$WORKERS" -gt 64 ] || [ "$UPSTREAM_WORKERS" -gt 64 ]; then
        die "BENCH_WORKERS, BENCH_UPSTREAM_WORKERS: at most 64"
    fi
    for v in $SCENARIOS; do
        case $v in
        keepalive | close | proxy | recycle | fork | wsgi) ;;
        *) die "BENCH_SCENARIOS: unknown \"$v\" (keepalive close proxy recycle fork wsgi)" ;;
        esac
    done
    for v in $WSGI_APPS; do
        case $v in
        hello | flask | django) ;;
        *) die "BENCH_WSGI_APPS: unknown \"$v\" (hello flask django)" ;;
        esac
    done
    case $WSGI_THREADS in
    '' | [0-9] | [0-9][0-9] | [0-9][0-9][0-9]) ;;
    *) die "BENCH_WSGI_THREADS ($WSGI_THREADS) must be a number, or empty for the default" ;;
    esac
    [ -x "$BIN" ] || die "$BIN: not built (make all)"
    for v in hello proxy; do
        [ -f "$APPS/$v.so" ] || die "$APPS/$v.so: not built (make all)"
    done
}

# Installs what is missing through scripts/install-deps.sh, with the
# benchmark's own packages as extra names (they are not the project's
# dependencies). A policy-rc.d that denies every start, while apt runs,
# keeps the packages' nginx and h2o services from starting (and from
# taking port 80).
ensure_tools() {
    local t missing='' guard=/usr/sbin/policy-rc.d rc=0 f pkgs
    pkgs="wrk nginx h2o python3 util-linux"
    for t in wrk nginx h2o python3 taskset curl; do
        command -v "$t" > /dev/null || missing="$missing $t"
    done
    if want wsgi && wsgi_tools_missing; then
        missing="$missing the WSGI servers"
        pkgs="$pkgs $WSGI_PACKAGES"
    fi
    [ -n "$missing" ] || return 0
    note "missing:$missing; installing from Debian"
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    if [ ! -e "$guard" ]; then
        $SUDO sh -c "printf '#!/bin/sh\nexit 101\n' > $guard && chmod 755 $guard"
        POLICY_ADDED=$guard
    fi
    # shellcheck disable=SC2086
    sh "$SRC/scripts/install-deps.sh" $pkgs || rc=$?
    if [ -n "$POLICY_ADDED" ]; then
        $SUDO rm -f "$POLICY_ADDED"
        POLICY_ADDED=
    fi
    [ "$rc" -eq 0 ] || die "installing the benchmark's tools failed"
    if want wsgi && wsgi_tools_missing; then
        die "the WSGI servers are still missing after installing $WSGI_PACKAGES"
    fi
    for f in /run/nginx.pid /run/h2o.pid; do
        if [ -s "$f" ] && alive "$(cat "$f")"; then
            warn "a system service runs ($f: pid $(cat "$f")); stop it for a quiet run"
        fi
    done
}

# Expands a CPU list ("0-2,5") into one CPU per line.
expand_cpus() {
    echo "$1" | tr ',' '\n' | awk -F- '{ for (c = $1; c <= ($2 == "" ? $1 : $2); c++) print c }'
}

# SERVER_CPUS: the first WORKERS allowed CPUs (fewer when short, keeping one
# for wrk), CLIENT_CPUS the next, UPSTREAM_CPUS the next again or, with two
# CPUs, the client's. BENCH_*_CPUS override. One CPU: no pinning.
choose_cpus() {
    local cpus n s
    mapfile -t cpus < <(expand_cpus "$(taskset -cp $$ | sed 's/.*: //')")
    n=${#cpus[@]}
    if [ "$n" -lt 2 ]; then
        warn "one CPU only: no pinning, server and wrk share it"
        SERVER_CPUS=${BENCH_SERVER_CPUS:-} CLIENT_CPUS=${BENCH_CLIENT_CPUS:-}
        UPSTREAM_CPUS=${BENCH_UPSTREAM_CPUS:-}
        return
    fi
    s=$WORKERS
    [ "$s" -lt "$n" ] || s=$((n - 1))
    SERVER_CPUS=$(printf '%s\n' "${cpus[@]:0:s}" | paste -sd,)
    CLIENT_CPUS=${cpus[s]}
    UPSTREAM_CPUS=${cpus[s + 1]:-$CLIENT_CPUS}
    SERVER_CPUS=${BENCH_SERVER_CPUS:-$SERVER_CPUS}
    CLIENT_CPUS=${BENCH_CLIENT_CPUS:-$CLIENT_CPUS}
    UPSTREAM_CPUS=${BENCH_UPSTREAM_CPUS:-$UPSTREAM_CPUS}
}

cleanup() {
    local pid
    [ -z "$WRK_PID" ] || stop_pid "$WRK_PID"
    stop_poll
    for pid in "${STARTED[@]}"; do
        stop_pid "$pid"
    done
    [ -z "$POLICY_ADDED" ] || $SUDO rm -f "$POLICY_ADDED" || true
    if [ -n "$DIR" ]; then
        mkdir -p "$OUT/logs"
        cp "$DIR"/*-error.log "$DIR"/*.out "$OUT/logs/" 2>/dev/null || true
        rm -rf "$DIR"
    fi
}

# scenario ID LABEL "SERVER..." [wrk options]: a warm-up run per server,
# then RUNS rounds, each running every server once, in the order given.
scenario() {
    local id=$1 label=$2 servers=$3 s r f
    shift 3
    note "$label: warm-up (${WARMUP}s per server)"
    for s in $servers; do
        run_wrk "$DIR/warmup.txt" "$s" "$WARMUP" "$@"
    done
    for r in $(seq 1 "$RUNS"); do
        for s in $servers; do
            f=$OUT/wrk/$id-$s-$r.txt
            run_wrk "$f" "$s" "$DURATION" "$@"
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$label" "${SHOWN[$s]}" "$r" \
                "$(parse_wrk "$f")" "$f" >> "$RUNS_TSV"
            note "$label, round $r/$RUNS, ${SHOWN[$s]}: $(parse_wrk "$f" |
                awk -F'\t' '{ printf "%.0f req/s, p99 %.2f ms, %s us/req, errors %d, others %s%% | %s%%",
                    $1, $3, $8, $4 + $5, $9, $10 }')"
        done
    done
}

# Scenarios 1 and 2 on the same three servers; memory before and after.
bench_hello() {
    start_preforkd preforkd preforkd preforkd-hello.ini.in MAX_REQUESTS=0 ACCESS_LOG=off
    start_nginx nginx nginx nginx-hello.conf.in "$SERVER_CPUS" "$WORKERS"
    start_h2o h2o h2o h2o-hello.conf.in
    mem_sample idle preforkd nginx h2o
    if want keepalive; then
        scenario keepalive "1 hello, keep-alive" "preforkd nginx h2o"
    fi
    if want close; then
        scenario close "2 hello, Connection: close" "preforkd nginx h2o" \
            -H "Connection: close"
    fi
    mem_sample "after load" preforkd nginx h2o
    stop_servers preforkd nginx h2o
}

# Scenario 3: three proxies to one nginx upstream on UPSTREAM_CPUS.
bench_proxy() {
    start_nginx upstream upstream nginx-hello.conf.in "$UPSTREAM_CPUS" \
        "$UPSTREAM_WORKERS"
    local up="UPSTREAM_PORT=${PORT[upstream]}"
    start_preforkd pf-proxy preforkd preforkd-proxy.ini.in "$up"
    start_nginx nginx-proxy nginx nginx-proxy.conf.in "$SERVER_CPUS" "$WORKERS" "$up"
    start_h2o h2o-proxy h2o h2o-proxy.conf.in "$up"
    scenario proxy "3 proxy, pooled upstream" "pf-proxy nginx-proxy h2o-proxy"
    stop_servers pf-proxy nginx-proxy h2o-proxy upstream
}

# Scenario 4: hello with max_requests vs without, alternating.
bench_recycle() {
    local before after
    start_preforkd pf-recycle "preforkd max_requests=$MAX_REQUESTS" \
        preforkd-hello.ini.in MAX_REQUESTS="$MAX_REQUESTS" ACCESS_LOG=off
    start_preforkd pf-plain preforkd preforkd-hello.ini.in MAX_REQUESTS=0 ACCESS_LOG=off
    before=$(recycled pf-recycle)
    scenario recycle "4 hello, recycling" "pf-recycle pf-plain"
    after=$(recycled pf-recycle)
    RECYCLES="?"
    [ -z "$before" ] || [ -z "$after" ] || RECYCLES=$((after - before))
    RECYCLE_COST=$(for r in $(seq 1 "$RUNS"); do
        echo "$OUT/wrk/recycle-pf-recycle-$r.txt $OUT/wrk/recycle-pf-plain-$r.txt"
    done | recycle_cost)
    stop_servers pf-recycle pf-plain
}

# Fork to first accept: a preforkd recycling every MAX_REQUESTS requests
# under a Connection: close load (every request is a new connection, so a
# new worker competes for the next accept as soon as it serves), its /stats
# polled POLL_PER_S times a second on the client CPUs. The workers of the
# poll before the load (the one that answered the readiness check) do not
# count; a poll after it catches the last ones.
bench_fork() {
    local n=$((DURATION * POLL_PER_S))
    render_preforkd pf-fork preforkd-hello.ini.in MAX_REQUESTS="$MAX_REQUESTS" \
        ACCESS_LOG=off
    admin_on_tcp pf-fork
    run_preforkd pf-fork preforkd
    stats pf-fork > "$DIR/fork-before.json" ||
        die "pf-fork: no /stats on 127.0.0.1:${ADMIN_PORT[pf-fork]}"
    note "fork to first accept: ${DURATION}s of Connection: close load, /stats every $((1000 / POLL_PER_S)) ms"
    poll_stats "$DIR/fork-polls.json" pf-fork "$n" "$POLL_PER_S"
    run_wrk "$OUT/wrk/fork.txt" pf-fork "$DURATION" -H "Connection: close"
    stop_poll
    stats pf-fork > "$DIR/fork-after.json" || true
    stop_servers pf-fork
    awk -v rps="$(parse_wrk "$OUT/wrk/fork.txt" | cut -f1)" \
        -v every=$((1000 / POLL_PER_S)) -f "$SRC/bench/fork.awk" \
        "$DIR/fork-before.json" "$DIR/fork-polls.json" "$DIR/fork-after.json" \
        > "$OUT/fork.txt"
}

header() {
    echo "preforkd benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(uname -srm); $(nproc) CPUs: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "$("$BIN" -v 2>&1 | head -n 1) ($(git -C "$SRC" describe --always --dirty 2>/dev/null || echo '?'))," \
        "$(nginx -v 2>&1), $(h2o -v | head -n 1), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    echo "workers: $WORKERS each; wrk -t$THREADS -c$CONNECTIONS, ${DURATION}s runs after a ${WARMUP}s warm-up," \
        "median of $RUNS rounds (servers alternate within a round)"
    echo "CPUs: servers ${SERVER_CPUS:-any}, wrk ${CLIENT_CPUS:-any}, proxy upstream ${UPSTREAM_CPUS:-any}"
    echo
}

memory_lines() {
    [ -s "$OUT/memory.tsv" ] || return 0
    echo "private memory per worker (Private_Clean + Private_Dirty, KiB; h2o: its one process):"
    awk -F'\t' '{ v[$2, $1] = $4; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
        END { for (i = 1; i <= n; i++)
                  printf "  %-10s idle %-18s after load %s\n", order[i],
                      v[order[i], "idle"], v[order[i], "after load"] }' "$OUT/memory.tsv"
}

# Warnings and errors that the servers logged (a crashed worker, a
# refused request...): what wrk cannot see. Per log, the distinct messages
# (numbers shown as N) with their counts. h2o's and uWSGI's logs have no
# levels; Gunicorn's are in capitals.
log_problems() {
    local f n levels='\[(warn|warning|error|crit|critical|alert|emerg)\]'
    for f in "$DIR"/*-error.log; do
        [ -e "$f" ] || continue
        n=$(grep -ciE "$levels" "$f" || true)
        [ "$n" -gt 0 ] || continue
        echo "$(basename "$f"): $n warnings or errors:"
        grep -iE "$levels" "$f" | sed -E "s/^.*($levels)/\1/I; s/[0-9]+/N/g" |
            sort | uniq -c | sort -rn | head -n 5
    done
}

report() {
    {
        header
        if [ -s "$OUT/runs.tsv" ]; then
            awk -f "$SRC/bench/disturbed.awk" -f "$SRC/bench/report.awk" "$OUT/runs.tsv"
        fi
        [ -z "${RECYCLES:-}" ] || echo "  workers recycled by max_requests in the runs of scenario 4: $RECYCLES"
        [ -z "${RECYCLE_COST:-}" ] || echo "  server CPU per recycle (scenario 4, against the same server without recycling): $RECYCLE_COST"
        echo
        memory_lines
        [ ! -s "$OUT/fork.txt" ] || { echo; cat "$OUT/fork.txt"; }
        wsgi_report
        echo
        log_problems
        echo "raw wrk output: $OUT/wrk/, server logs: $OUT/logs/"
    } > "$OUT/results.txt"
    cat "$OUT/results.txt"
}

main() {
    check_knobs
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    ensure_tools
    choose_cpus
    NGINX_USER="# user: unchanged (not root)" H2O_USER="# user: unchanged (not root)"
    if [ "$(id -u)" -eq 0 ]; then
        NGINX_USER="user root root;" H2O_USER="user: root"
    fi
    rm -rf "$OUT/wrk" "$OUT/logs" "$OUT/runs.tsv" "$OUT/memory.tsv" "$OUT/fork.txt" \
        "$OUT"/wsgi-*.tsv
    mkdir -p "$OUT/wrk"
    : > "$OUT/runs.tsv"
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/preforkd-bench.XXXXXX")
    printf 'Hello, World!\n' > "$DIR/hello.txt"
    if want keepalive || want close; then bench_hello; fi
    if want proxy; then bench_proxy; fi
    if want recycle; then bench_recycle; fi
    if want fork; then bench_fork; fi
    if want wsgi; then bench_wsgi; fi
    report
}

main "$@"
