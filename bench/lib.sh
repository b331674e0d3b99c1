# shellcheck shell=bash
# bench/lib.sh - the mechanism of bench/run.sh: start and stop servers from
# the templates in bench/conf, run wrk pinned to the client CPUs, read wrk's
# output, the servers' CPU time and the workers' private memory. Sourced by run.sh (bash), on the
# benchmark machine. Functions print what failed on stderr; a server that
# cannot start is fatal (die), and the EXIT trap of run.sh stops everything
# it started, by pid.

die() { echo "bench: $*" >&2; exit 1; }
warn() { echo "bench: warning: $*" >&2; }
note() { echo "bench: $*" >&2; }

declare -A PID    # server name -> pid of its (master) process
declare -A PORT   # server name -> its port on 127.0.0.1
declare -A KIND   # server name -> preforkd, nginx, h2o, gunicorn or uwsgi
declare -A SHOWN  # server name -> the name shown in the table
declare -A ADMIN_PORT # preforkd name -> port of its admin endpoint on TCP
STARTED=()        # every server pid, in start order, for cleanup
WRK_PID=
POLL_PID=         # the /stats poller of poll_stats while it runs
CLK_TCK=$(getconf CLK_TCK) # the unit of the CPU times in /proc/PID/stat

# True while pid $1 runs (a zombie that was not reaped yet does not count).
alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${st#Z}" = "$st" ]
}

# taskset's prefix for the CPU list $1, nothing when it is empty.
pin() {
    [ -z "$1" ] || echo "taskset -c $1"
}

# A free port on 127.0.0.1: one the kernel gives to bind(port 0).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# render TEMPLATE OUT KEY=VALUE...: the template with every @KEY@ replaced.
render() {
    local in=$1 out=$2 kv
    local args=()
    shift 2
    for kv in "$@"; do
        args+=(-e "s|@${kv%%=*}@|${kv#*=}|g")
    done
    sed "${args[@]}" "$in" > "$out"
    if grep -q '@[A-Z_]*@' "$out"; then
        die "$out: a field of $in was not filled in"
    fi
}

# FIELDS: what every template may use, for server $1 with $2 workers.
set_fields() {
    FIELDS=("DIR=$DIR" "NAME=$1" "WORKERS=$2" "APPS=$APPS"
        "NGINX_USER=$NGINX_USER" "H2O_USER=$H2O_USER")
}

# launch NAME CPUS COMMAND...: starts one server in the background.
launch() {
    local name=$1 cpus=$2
    shift 2
    # shellcheck disable=SC2046
    $(pin "$cpus") "$@" > "$DIR/$name.out" 2>&1 < /dev/null &
    PID[$name]=$!
    STARTED+=("$!")
}

# Last lines of server $1's logs, for an error message.
server_logs() {
    { tail -n 5 "$DIR/$1.out" "$DIR/$1-error.log" 2>/dev/null || true; } >&2
}

# wait_ready NAME: polls GET / until it answers 200 with exactly the bytes
# of hello.txt (every server and proxy must send the same body), 20 s at
# most. Dies otherwise.
wait_ready() {
    local name=$1 code deadline=$((SECONDS + 20))
    while [ "$SECONDS" -lt "$deadline" ]; do
        alive "${PID[$name]}" || { server_logs "$name"; die "$name exited at start"; }
        code=$(curl -s -m 2 -o "$DIR/$name.body" -w '%{http_code}' \
            "http://127.0.0.1:${PORT[$name]}/" || true)
        if [ "$code" = 200 ]; then
            cmp -s "$DIR/$name.body" "$DIR/hello.txt" && return 0
            die "$name answers a different body: $(od -c "$DIR/$name.body" | head -n 3)"
        fi
        sleep 0.1
    done
    server_logs "$name"
    die "$name did not answer 200 on port ${PORT[$name]} within 20 s"
}

# logged_port NAME TEXT: the port of the first "TEXT 127.0.0.1:PORT" line
# of preforkd NAME's log, nothing when there is none yet.
logged_port() {
    sed -n "s/.* master: $2 127\.0\.0\.1:\([0-9]*\)\$/\1/p" \
        "$DIR/$1-error.log" 2>/dev/null | head -n 1
}

# render_preforkd NAME TEMPLATE KEY=VALUE...: NAME's config, $DIR/NAME.ini.
render_preforkd() {
    local name=$1 tmpl=$2
    shift 2
    set_fields "$name" "$WORKERS"
    render "$CONF/$tmpl" "$DIR/$name.ini" "${FIELDS[@]}" "$@"
}

# admin_on_tcp NAME: NAME's rendered config gets its [admin] listen on
# 127.0.0.1:0 (a free port, logged) instead of the template's unix socket.
admin_on_tcp() {
    local admin='/^\[admin\]/,/^\[/'
    sed -i "$admin s|^listen *=.*|listen = 127.0.0.1:0|" "$DIR/$1.ini"
    sed -n "$admin p" "$DIR/$1.ini" | grep -qx 'listen = 127.0.0.1:0' ||
        die "$DIR/$1.ini: no [admin] listen to move to TCP"
}

# run_preforkd NAME SHOWN: preforkd on the config that render_preforkd
# wrote, on port 0; the port is read from its log ("listening on
# 127.0.0.1:PORT"), and so is its admin port when on TCP (admin_on_tcp).
run_preforkd() {
    local name=$1 shown=$2 deadline=$((SECONDS + 20)) port=
    launch "$name" "$SERVER_CPUS" "$BIN" -c "$DIR/$name.ini"
    while [ -z "$port" ] && [ "$SECONDS" -lt "$deadline" ]; do
        alive "${PID[$name]}" || { server_logs "$name"; die "$name exited at start"; }
        port=$(logged_port "$name" "listening on")
        [ -n "$port" ] || sleep 0.1
    done
    [ -n "$port" ] || die "$name logged no listening port within 20 s"
    PORT[$name]=$port KIND[$name]=preforkd SHOWN[$name]=$shown
    wait_ready "$name"
    ADMIN_PORT[$name]=$(logged_port "$name" "admin endpoint on")
}

# start_preforkd NAME SHOWN TEMPLATE KEY=VALUE...: render_preforkd, then
# run_preforkd.
start_preforkd() {
    local name=$1 shown=$2 tmpl=$3
    shift 3
    render_preforkd "$name" "$tmpl" "$@"
    run_preforkd "$name" "$shown"
}

# start_nginx NAME SHOWN TEMPLATE CPUS WORKERS KEY=VALUE...
start_nginx() {
    local name=$1 shown=$2 tmpl=$3 cpus=$4 nworkers=$5
    shift 5
    PORT[$name]=$(free_port) KIND[$name]=nginx SHOWN[$name]=$shown
    mkdir -p "$DIR/$name-tmp"
    set_fields "$name" "$nworkers"
    render "$CONF/$tmpl" "$DIR/$name.conf" "${FIELDS[@]}" \
        "PORT=${PORT[$name]}" "$@"
    launch "$name" "$cpus" nginx -p "$DIR" -e "$DIR/$name-error.log" \
        -c "$DIR/$name.conf"
    wait_ready "$name"
}

# start_h2o NAME SHOWN TEMPLATE KEY=VALUE...
start_h2o() {
    local name=$1 shown=$2 tmpl=$3
    shift 3
    PORT[$name]=$(free_port) KIND[$name]=h2o SHOWN[$name]=$shown
    set_fields "$name" "$WORKERS"
    render "$CONF/$tmpl" "$DIR/$name.yaml" "${FIELDS[@]}" \
        "PORT=${PORT[$name]}" "$@"
    launch "$name" "$SERVER_CPUS" h2o -c "$DIR/$name.yaml"
    wait_ready "$name"
}

# Pids of the processes of server $1 that serve requests: preforkd's,
# nginx's, Gunicorn's and uWSGI's workers (children of the master; not
# preforkd's mold, "preforkd-mold", which forks preforkd's workers but
# serves nothing), h2o's one process.
workers_of() {
    local k
    case ${KIND[$1]} in
    h2o) echo "${PID[$1]}" ;;
    *)
        for k in $(ps -o pid= --ppid "${PID[$1]}"); do
            [ "$(cat "/proc/$k/comm" 2>/dev/null)" = preforkd-mold ] || echo "$k"
        done
        ;;
    esac
}

# "PID:START" for each child of $1, START being its start time (field 22
# of /proc/PID/stat), so that a pid is never killed once it names another
# process.
children() {
    local k
    for k in $(ps -o pid= --ppid "$1"); do
        echo "$k:$(proc_start "$k")"
    done
}

proc_start() {
    awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null || true
}

# stop_pid PID: TERM to a child of this shell and up to 15 s to exit; then,
# if it still runs, SIGSTOP (it forks no more) and SIGKILL to it and its
# children. Children that outlive it are killed too. Reaps it.
stop_pid() {
    local pid=$1 kids deadline=$((SECONDS + 15)) k
    kids=$(children "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.1
    done
    if alive "$pid"; then
        warn "pid $pid ignored SIGTERM for 15 s: SIGKILL to it and its children"
        kill -STOP "$pid" 2>/dev/null || true
        kids="$kids $(children "$pid")"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    for k in $kids; do
        if [ -n "${k#*:}" ] && [ "$(proc_start "${k%%:*}")" = "${k#*:}" ] &&
            alive "${k%%:*}"; then
            kill -KILL "${k%%:*}" 2>/dev/null || true
        fi
    done
    return 0
}

# stop_servers NAME...: stops them and forgets them (their pids may name
# other processes from now on).
stop_servers() {
    local name pid keep
    for name in "$@"; do
        stop_pid "${PID[$name]}"
        keep=()
        for pid in "${STARTED[@]}"; do
            [ "$pid" = "${PID[$name]}" ] || keep+=("$pid")
        done
        STARTED=("${keep[@]}")
        unset "PID[$name]"
    done
}

# tree_ticks PID: the CPU time of process PID and of every process under
# it, in clock ticks (1/CLK_TCK s): utime + stime of each (all its
# threads), plus cutime + cstime of each, the time of the children it
# reaped (a recycled worker, a finished helper), which /proc keeps in the
# parent once the child is gone. Nothing when PID does not run. Read from
# /proc/*/stat in one pass (a process that ends meanwhile is skipped).
tree_ticks() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
    {
        pid = $1
        sub(/^.*\) /, "")  # the command may hold spaces and parentheses
        parent[pid] = $2
        t[pid] = $12 + $13 + $14 + $15
        kids[$2] = kids[$2] " " pid
    }
    END {
        if (!(root in t))
            exit
        todo[n = 1] = root
        while (n > 0) {
            p = todo[n--]
            sum += t[p]
            m = split(kids[p], k, " ")
            for (i = 1; i <= m; i++)
                todo[++n] = k[i]
        }
        print sum
    }'
}

# cpus_busy LIST: "COUNT TICKS": how many CPUs LIST names ("0,2-3"), and
# the clock ticks they spent running anything (user, nice, system, and
# steal: time the hypervisor gave to another guest) since boot, from
# /proc/stat.
cpus_busy() {
    awk -v list="$1" '
    BEGIN {
        n = split(list, item, ",")
        for (i = 1; i <= n; i++) {
            m = split(item[i], r, "-")
            for (c = r[1]; c <= r[m]; c++)
                want["cpu" c] = 1
        }
    }
    $1 in want { cpus++; sum += $2 + $3 + $4 + $9 }
    END { print cpus + 0, sum + 0 }' /proc/stat
}

# own_children_ticks: CPU ticks of the processes this shell has reaped
# (cutime + cstime of $$): wrk's, once wait has returned.
own_children_ticks() {
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}

# run_wrk OUT SERVER SECONDS [wrk options]: one wrk run against SERVER's /,
# on the client CPUs, its output in OUT. wait (not a foreground wrk) keeps
# the signal traps of run.sh working during a run. Appended to OUT, from
# readings before and after the run: the CPU time of SERVER's process tree
# ("server CPU: TICKS ticks of 1/CLK_TCK s", tree_ticks), and how busy the
# server's and the client's CPUs were, with wrk's own time, so that
# parse_wrk can tell what other processes took ("server CPUs: N busy
# TICKS", "client CPUs: N busy TICKS wrk TICKS"; only when both are
# pinned, to different CPUs).
run_wrk() {
    local out=$1 name=$2 secs=$3 before after cpus= rb= ra=
    local sb sa cb ca wb wa
    shift 3
    [ -z "$SERVER_CPUS" ] || [ "$SERVER_CPUS" = "$CLIENT_CPUS" ] || cpus=1
    rb=$(recycled "$name")
    before=$(tree_ticks "${PID[$name]}")
    if [ -n "$cpus" ]; then
        wb=$(own_children_ticks)
        sb=$(cpus_busy "$SERVER_CPUS") cb=$(cpus_busy "$CLIENT_CPUS")
    fi
    # shellcheck disable=SC2046
    $(pin "$CLIENT_CPUS") wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency \
        "$@" "http://127.0.0.1:${PORT[$name]}/" > "$out" 2>&1 < /dev/null &
    WRK_PID=$!
    wait "$WRK_PID" || warn "wrk against $name exited with status $? (see $out)"
    WRK_PID=
    if [ -n "$cpus" ]; then
        sa=$(cpus_busy "$SERVER_CPUS") ca=$(cpus_busy "$CLIENT_CPUS")
        wa=$(own_children_ticks)
    fi
    after=$(tree_ticks "${PID[$name]}")
    ra=$(recycled "$name")
    if [ -n "$before" ] && [ -n "$after" ]; then
        echo "server CPU: $((after - before)) ticks of 1/$CLK_TCK s" \
            "(process tree of pid ${PID[$name]})" >> "$out"
    fi
    if [ -n "$rb" ] && [ -n "$ra" ]; then
        echo "recycled: $((ra - rb)) workers by max_requests" >> "$out"
    fi
    if [ -n "$cpus" ]; then
        echo "server CPUs: ${sa%% *} busy $((${sa#* } - ${sb#* }))" >> "$out"
        echo "client CPUs: ${ca%% *} busy $((${ca#* } - ${cb#* })) wrk $((wa - wb))" >> "$out"
    fi
}

# recycled NAME: workers preforkd NAME retired for max_requests so far
# ("retired" of its /stats on the unix admin socket of its template);
# nothing for another server.
recycled() {
    [ -S "$DIR/$1-admin.sock" ] || return 0
    curl -s -m 5 --unix-socket "$DIR/$1-admin.sock" http://localhost/stats |
        sed -n 's/.*"retired": {"max_requests": \([0-9]*\).*/\1/p'
}

# recycle_cost RECYCLING PLAIN: the server CPU one recycle costs, from the
# wrk outputs of the same rounds of a recycling preforkd and of one that
# does not recycle (files "RECYCLING PLAIN" per line on stdin): per round,
# the recycling tree's CPU less what its requests cost at the plain one's
# rate, over the workers recycled; prints the median in ms and each
# round's.
recycle_cost() {
    while read -r rec plain; do
        awk -v hz="$CLK_TCK" '
            FNR == 1 { f++ }
            $2 == "requests" && $3 == "in" { reqs[f] = $1 + 0 }
            /^server CPU: / { ticks[f] = $3 + 0 }
            /^recycled: / { n[f] = $2 + 0 }
            END {
                if (n[1] > 0 && reqs[1] > 0 && reqs[2] > 0) {
                    plain = ticks[2] / reqs[2]   # ticks per request
                    printf "%.3f\n", (ticks[1] - plain * reqs[1]) * 1000 / hz / n[1]
                }
            }' "$rec" "$plain"
    done | sort -n | awk '{ v[++n] = $1; all = all (n > 1 ? ", " : "") sprintf("%.2f", $1) }
        END {
            if (n == 0) { print "-"; exit }
            m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            printf "%.2f ms (rounds: %s)\n", m, all
        }'
}

# stats NAME: one GET of preforkd NAME's /stats on its TCP admin port.
stats() {
    curl -s -m 5 "http://127.0.0.1:${ADMIN_PORT[$1]}/stats"
}

# poll_stats OUT NAME COUNT PER_S: in the background (POLL_PID), COUNT GETs
# of preforkd NAME's /stats on its TCP admin port, one after the other and
# at most PER_S a second, the answers one after the other in OUT. One curl process
# (--rate) on the client CPUs: a fork and exec per poll would cost wrk's
# CPU more. A GET that fails is skipped.
poll_stats() {
    local out=$1 name=$2 count=$3 per_s=$4
    # shellcheck disable=SC2046
    $(pin "$CLIENT_CPUS") curl -s -m 2 --rate "$per_s/s" \
        "http://127.0.0.1:${ADMIN_PORT[$name]}/stats?poll=[1-$count]" \
        > "$out" 2>/dev/null < /dev/null &
    POLL_PID=$!
}

# stop_poll: stops the poller of poll_stats, if one runs.
stop_poll() {
    [ -z "$POLL_PID" ] || stop_pid "$POLL_PID"
    POLL_PID=
}

# parse_wrk FILE: "req/s <TAB> p50 ms <TAB> p99 ms <TAB> non-2xx <TAB>
# socket errors <TAB> ok|fail <TAB> requests <TAB> server CPU us/request
# <TAB> others on the server CPUs % <TAB> others on the client CPUs %"
# from wrk --latency's output and the lines run_wrk adds ("fail": no
# Requests/sec line, i.e. wrk did not run; "-": no figure). The CPU figure
# divides the server's CPU time by the requests wrk completed; "others" is
# the share of those CPUs' time, over the run, that went to processes
# other than the server's (on the client's: than wrk), and to steal.
parse_wrk() {
    awk '
    function ms(v) {
        if (v ~ /us$/) return v / 1000
        if (v ~ /ms$/) return v + 0
        if (v ~ /m$/) return v * 60000
        if (v ~ /s$/) return v * 1000
        return v + 0
    }
    /^Requests\/sec:/ { rps = $2; ok = 1 }
    $2 == "requests" && $3 == "in" { reqs = $1 + 0 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Socket errors:/ { gsub(",", ""); sock = $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { bad = $5 }
    $2 == "requests" && $3 == "in" { secs = $4 + 0 }
    /^server CPU: / { ticks = $3; hz = substr($6, 3) + 0; cpu = 1 }
    /^server CPUs: / { sn = $3; sbusy = $5 }
    /^client CPUs: / { cn = $3; cbusy = $5; wrk = $7 }
    function others(n, busy, own) {
        if (n == 0 || hz == 0 || secs == 0)
            return "-"
        busy = (busy - own) / (n * secs * hz) * 100
        return sprintf("%.0f", busy < 0 ? 0 : busy)
    }
    END {
        us = (cpu && hz > 0 && reqs > 0) ? sprintf("%.2f", ticks * 1e6 / hz / reqs) : "-"
        printf "%.1f\t%.3f\t%.3f\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n", rps, p50, p99, bad,
            sock, ok ? "ok" : "fail", reqs, us, others(sn, sbusy, ticks),
            others(cn, cbusy, wrk)
    }' "$1"
}

# Private memory of pid $1 in KiB: Private_Clean + Private_Dirty of
# /proc/PID/smaps_rollup ("?" when it cannot be read).
private_kib() {
    awk '/^Private_(Clean|Dirty):/ { kib += $2; ok = 1 }
         END { if (ok) print kib; else print "?" }' \
        "/proc/$1/smaps_rollup" 2>/dev/null || echo "?"
}

# mem_sample WHEN NAME...: one line per server to memory.tsv: WHEN, the
# shown name, its kind and the private KiB of each of its workers.
mem_sample() {
    local when=$1 name pid vals
    shift
    for name in "$@"; do
        vals=
        for pid in $(workers_of "$name"); do
            vals="$vals${vals:+ }$(private_kib "$pid")"
        done
        printf '%s\t%s\t%s\t%s\n' "$when" "${SHOWN[$name]}" "${KIND[$name]}" \
            "${vals:-none}" >> "$OUT/memory.tsv"
    done
}
