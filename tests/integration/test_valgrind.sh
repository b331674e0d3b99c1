#!/bin/sh
# test_valgrind.sh - whole worker lifetimes under valgrind memcheck: the
# master and every worker it forks run under memcheck, one log per pid.
# Two daemons. The upstream serves the test app `slow` (loaded in each
# worker). The front serves `hello` (preloaded, access log and admin
# endpoint on), forks and retires a worker (TTIN, TTOU) while an admin
# client is half-way through its request, is reloaded by SIGHUP into
# `proxy` to the upstream (clients also give up mid-request there), then
# into `echo`. Both serve keep-alive and Connection: close requests,
# recycle workers by max_requests several times and stop on SIGTERM.
# Every log must be complete and report no memory error, no block
# definitely or indirectly lost through preforkd's code (a frame in src/)
# and no socket left open at exit. A module built here that leaks, reads
# uninitialised memory and keeps a socket proves that the check fails.
#
# Run by `make check` (PREFORKD_BIN, PREFORKD_APPS, PREFORKD_TEST_APPS,
# PREFORKD_SRC, PREFORKD_MAKE) and `make valgrind`. Skipped in the ASan
# build (ASan and valgrind do not mix) and when valgrind is missing, unless
# PREFORKD_REQUIRE_VALGRIND=1. Needs curl and cc. Ports are ephemeral, on
# 127.0.0.1; every process it starts, it stops. The last line is "N passed,
# N failed"; exit 1 on any failure. PREFORKD_TEST_KEEP=1 keeps the logs.
set -u

src=${PREFORKD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${PREFORKD_BIN:-$src/build/preforkd}
apps=${PREFORKD_APPS:-$src/build/apps}
test_apps=${PREFORKD_TEST_APPS:-$src/build/tests/apps}
groups=""
tmp=

# shellcheck disable=SC2317 # run by the trap
cleanup() {
    for g in $groups; do
        kill -KILL -- "-$g" 2>/dev/null
    done
    if [ -n "$tmp" ] && [ -z "${PREFORKD_TEST_KEEP:-}" ]; then
        rm -rf "$tmp"
    elif [ -n "$tmp" ]; then
        echo "kept $tmp"
    fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

. "$(dirname "$0")/../lib/tap.inc"

case "${PREFORKD_MAKE:-}" in
*SANITIZE=1*)
    echo "skipped: ASan build (valgrind runs on the normal build: make valgrind)"
    exit 0 ;;
esac
if ! command -v valgrind >/dev/null 2>&1; then
    if [ "${PREFORKD_REQUIRE_VALGRIND:-0}" = 1 ]; then
        not_ok "valgrind is not installed (Debian package: valgrind)"
        finish
    fi
    echo "skipped: valgrind not installed (Debian package: valgrind)"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/preforkd-vg.XXXXXX") || exit 1
t0=$(date +%s)

# ---- helpers -----------------------------------------------------------------

# wait_until SECONDS CMD...: polls CMD every 0.1 s; 0 once it succeeds.
wait_until() {
    n=$(($1 * 10))
    shift
    until "$@"; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || return 1
        sleep 0.1
    done
}

# count FILE ERE: the number of lines of FILE matching ERE.
count() {
    c_=$(grep -cE "$2" "$1" 2>/dev/null)
    echo "${c_:-0}"
}
# shellcheck disable=SC2317 # run by wait_until
at_least() { [ "$(count "$1" "$2")" -ge "$3" ]; }
# gone PID: PID (a child of this shell) has exited (a zombie counts).
# shellcheck disable=SC2317 # run by wait_until
gone() {
    st=
    [ -r "/proc/$1/stat" ] && read -r _ _ st _ <"/proc/$1/stat" 2>/dev/null
    [ -z "$st" ] || [ "$st" = Z ]
}

# accepted_on PID PORT: PID holds an accepted TCP connection on its local
# port PORT: an ESTABLISHED socket of /proc/net/tcp (127.0.0.1 only) whose
# inode is one of PID's fds. (One not accepted yet has no inode.) Counting
# PID's fds instead was fooled by any fd the master opens or closes
# meanwhile, and failed once in CI.
# shellcheck disable=SC2317 # run by wait_until
accepted_on() {
    for inode in $(awk -v p=":$(printf '%04X' "$2")" \
            '$4 == "01" && substr($2, length($2) - 4) == p { print $10 }' /proc/net/tcp); do
        [ "$inode" != 0 ] &&
            find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -lname "socket:\[$inode\]" \
                2>/dev/null | grep -q . && return 0
    done
    return 1
}
# live_is NAME N: the daemon's log shows exactly N workers alive (spawned
# and not yet retired).
# shellcheck disable=SC2317 # run by wait_until
live_is() {
    [ $(($(count "$tmp/$1.log" "master: worker [0-9]+ spawned") -
         $(count "$tmp/$1.log" "\) retired: "))) -eq "$2" ]
}

# vg_start NAME: starts $tmp/NAME.ini under memcheck in its own session
# (so its whole process group can be killed), logs in $tmp/NAME.log and
# $tmp/vg/NAME.PID; waits until ready and sets $pid and $port.
vg_start() {
    name=$1
    set -- --tool=memcheck --leak-check=full \
        --show-leak-kinds=definite,indirect,possible \
        --errors-for-leak-kinds=definite,indirect --track-fds=yes \
        --trace-children=yes --child-silent-after-fork=no --error-exitcode=99 \
        --fullpath-after="$src/" --num-callers=30 --log-file="$tmp/vg/$name.%p"
    setsid valgrind "$@" "$bin" -c "$tmp/$name.ini" >"$tmp/$name.log" 2>&1 &
    pid=$!
    groups="$groups $pid"
    if ! wait_until 60 at_least "$tmp/$name.log" "master: ready" 1; then
        not_ok "$name: not ready under valgrind within 60 s" "$tmp/$name.log"
        finish
    fi
    port=$(sed -n 's/.*master: listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
        "$tmp/$name.log" | tail -n 1)
}

# vg_stop NAME PID: SIGTERM; the master must exit 0 within 60 s and leave
# no process of its group behind (it waits for its workers).
vg_stop() {
    kill -TERM "$2"
    if ! wait_until 60 gone "$2"; then
        not_ok "$1: still running 60 s after SIGTERM" "$tmp/$1.log"
        return
    fi
    wait "$2"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        ok "$1: SIGTERM, exit 0"
    else
        not_ok "$1: exit status $rc after SIGTERM" "$tmp/$1.log"
    fi
    if kill -0 -- "-$2" 2>/dev/null; then
        not_ok "$1: processes left in its group after the master exited"
        kill -KILL -- "-$2"
    fi
    groups=$(echo "$groups" | sed "s/ $2\b//")
}

# requests ID PORT PATH N WANT [CURL ARGS...]: N requests to PATH1 ..
# PATHN in one curl (keep-alive, unless the args say Connection: close);
# every one must be a 200 whose body holds WANT. Files $tmp/ID.*; a
# failure leaves ID.err.
requests() {
    id=$1 port_=$2 path_=$3 n_=$4 want_=$5
    shift 5
    curl -q -sS -m 60 -w '%{stderr}%{http_code}\n' "$@" \
        "http://127.0.0.1:$port_${path_}[1-$n_]" >"$tmp/$id.body" 2>"$tmp/$id.codes"
    got=$(grep -c '^200$' "$tmp/$id.codes")
    bodies=$(grep -oF "$want_" "$tmp/$id.body" | wc -l)
    [ "$got" -eq "$n_" ] && [ "$bodies" -eq "$n_" ] && return 0
    { cat "$tmp/$id.codes"
      echo "$id: $got of $n_ answered 200, $bodies bodies with \"$want_\"; body: $(head -c 300 "$tmp/$id.body")"
    } >"$tmp/$id.err"
    return 1
}

# load NAME PORT PATH N WANT [CURL ARGS...]: two keep-alive and two
# Connection: close clients at once, N requests each.
load() {
    lname=$1
    shift
    rm -f "$tmp"/c?.err
    requests c1 "$@" & p1=$!
    requests c2 "$@" & p2=$!
    requests c3 "$@" -H "Connection: close" & p3=$!
    requests c4 "$@" -H "Connection: close" & p4=$!
    wait "$p1" "$p2" "$p3" "$p4"
    cat "$tmp"/c?.err >"$tmp/curl.err" 2>/dev/null
    if [ ! -s "$tmp/curl.err" ]; then
        ok "$lname: 2 x $3 keep-alive + 2 x $3 Connection: close requests to $2, all 200"
    else
        not_ok "$lname: requests failed" "$tmp/curl.err"
    fi
}

# vg_check LOG WORKER: prints each problem of one memcheck log; 0 when
# clean. A record is the lines between two empty "==PID== " lines.
# Problems: an incomplete log (no ERROR SUMMARY: the process was killed),
# an error record (one with a stack that is neither a leak nor an fd
# record), a definitely or indirectly lost block with a frame in src/, and
# a socket open at exit that the process opened itself: in the master any,
# in a worker (WORKER=1) one opened after the fork (worker_main on its
# stack); what a worker inherits from the master (listeners, the message
# channel) is the master's. Lost blocks with no frame in preforkd's code
# are printed on stderr as notes only.
vg_check() {
    awk -v worker="$2" '
    function flush() {
        if (first ~ /are (definitely|indirectly) lost in loss record/) {
            if (rec ~ /\(src\//)
                problem("leak through preforkd code")
            else
                printf "note: %s: leak outside preforkd code:\n%s", FILENAME, rec >"/dev/stderr"
        } else if (first ~ /^Open .*socket [0-9]+:/) {
            if (rec !~ /inherited from parent/ && (!worker || rec ~ /worker_main/))
                problem("socket open at exit")
        } else if (first !~ /^(Open |HEAP SUMMARY|LEAK SUMMARY|Warning: )/ &&
                   first !~ /are (possibly lost|still reachable)/ &&
                   rec ~ /\n +(at|by) 0x/) {
            problem("memory error")
        }
        rec = ""; first = ""
    }
    function problem(what) {
        bad++
        printf "%s: %s:\n%s", FILENAME, what, rec
    }
    { sub(/^==[0-9]+== ?/, "") }
    /^FILE DESCRIPTORS: / { next }
    /^ERROR SUMMARY: / { summary = 1 }
    $0 == "" { flush(); next }
    { if (first == "") first = $0; rec = rec "    " $0 "\n" }
    END {
        flush()
        if (!summary) { bad++; printf "%s: incomplete (no ERROR SUMMARY)\n", FILENAME }
        exit (bad > 0)
    }' "$1"
}

# is_worker LOG: the process was forked by a master whose log is there too.
is_worker() {
    ppid_=$(sed -n 's/^==[0-9]*== Parent PID: \([0-9]*\)$/\1/p' "$1")
    [ -n "$ppid_" ] && [ -e "${1%.*}.$ppid_" ]
}

# check_logs NAME: every log of one daemon into $tmp/problems (and
# $tmp/notes); $nlogs is their number.
check_logs() {
    nlogs=0
    : >"$tmp/problems"
    : >"$tmp/notes"
    for f in "$tmp"/vg/"$1".*; do
        [ -e "$f" ] || continue
        nlogs=$((nlogs + 1))
        is_worker "$f" && w=1 || w=0
        vg_check "$f" "$w" >>"$tmp/problems" 2>>"$tmp/notes"
        bad=$?
        [ "$bad" -eq 0 ] || echo "$f: problems above" >>"$tmp/problems"
    done
}

# A daemon log where a worker did not exit 0 (99: memcheck found errors).
check_exits() {
    spawned=$(count "$tmp/$1.log" "master: worker [0-9]+ spawned")
    clean=$(count "$tmp/$1.log" "retired: .*\(exited with status 0\)")
    if [ "$spawned" -gt 0 ] && [ "$clean" -eq "$spawned" ]; then
        ok "$1: all $spawned workers exited with status 0"
    else
        grep -E "retired:|\[(warn|error)\]" "$tmp/$1.log" >"$tmp/exits"
        not_ok "$1: $clean of $spawned workers exited with status 0" "$tmp/exits"
    fi
}

mkdir "$tmp/vg"

# ---- the upstream: the test app slow, loaded in each worker ------------------
cat >"$tmp/up.ini" <<EOF
[server]
listen = 127.0.0.1:0
workers = 1
preload = false
timeout = 60s
graceful_timeout = 30s
keepalive_timeout = 2s
[recycle]
max_requests = 25
max_requests_jitter = 0
[app]
module = $test_apps/slow.so
[log]
; A recycle's replacement is "spawned" at debug: live_is counts them.
level = debug
EOF
vg_start up
up_pid=$pid up_port=$port
ok "up: slow ready under valgrind (pid $up_pid, port $up_port)"
load up "$up_port" "/d?ms=0&i=" 20 "slow" -d "x=direct"

# ---- the front: hello, then proxy, then echo (SIGHUP each time) -------------
front_ini() {
    cat >"$tmp/front.ini" <<EOF
[server]
listen = 127.0.0.1:0
workers = 2
timeout = 60s
graceful_timeout = 30s
[recycle]
max_requests = 30
max_requests_jitter = 0
[app]
module = $apps/$1.so
$2
[upstream b]
servers = 127.0.0.1:$up_port
max_idle = 4
[log]
access_log = $tmp/access.log
level = debug
[admin]
listen = 127.0.0.1:0
EOF
}

# reload NAME: SIGHUP, then waits until the next generation serves.
reload() {
    gen=$(($(count "$tmp/$1.log" "reload done: generation") + 2))
    kill -HUP "$2"
    if wait_until 60 at_least "$tmp/$1.log" "reload done: generation $gen " 1; then
        ok "$1: SIGHUP reload into generation $gen"
    else
        not_ok "$1: no reload within 60 s" "$tmp/$1.log"
    fi
}

front_ini hello ""
vg_start front
front_pid=$pid front_port=$port
admin_port=$(sed -n 's/.*admin endpoint on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/front.log")
ok "front: hello ready under valgrind (pid $front_pid, port $front_port)"
load front "$front_port" "/h?i=" 60 "Hello, World!"
: >"$tmp/admin.codes"
for p in stats metrics healthz; do
    curl -q -sS -m 30 -o /dev/null -w '%{http_code}\n' \
        "http://127.0.0.1:$admin_port/$p" >>"$tmp/admin.codes" 2>&1
done
if [ "$(grep -c '^200$' "$tmp/admin.codes")" -eq 3 ]; then
    ok "front: admin /stats, /metrics, /healthz: 200"
else
    not_ok "front: admin endpoint" "$tmp/admin.codes"
fi

# A worker forked while the master serves an admin client: the copy of
# that client's state the worker inherits must not leak. The client sends
# half a request and waits; SIGTTIN forks a worker, SIGTTOU retires one.
# Started once no worker is leaving (max_requests = 30 recycles under the
# load above), so that the counts of live workers below are the scaling's.
wait_until 60 live_is front 2 || true
mkfifo "$tmp/hold"
curl -q -s -m 60 "telnet://127.0.0.1:$admin_port" <"$tmp/hold" >/dev/null 2>&1 &
hold=$!
exec 3>"$tmp/hold"
printf 'GET /sta' >&3
if wait_until 30 accepted_on "$front_pid" "$admin_port"; then
    kill -TTIN "$front_pid"
    wait_until 60 live_is front 3 && serving=yes || serving=no
    kill -TTOU "$front_pid"
    if [ "$serving" = yes ] && wait_until 60 live_is front 2; then
        ok "front: SIGTTIN with an admin client half-way, then SIGTTOU"
    else
        not_ok "front: SIGTTIN/SIGTTOU did not end with 2 workers" "$tmp/front.log"
    fi
else
    not_ok "front: the admin endpoint did not accept the held client"
fi
exec 3>&-
kill "$hold" 2>/dev/null
wait "$hold" 2>/dev/null

front_ini proxy "upstream = b"
reload front "$front_pid"
load front "$front_port" "/p?ms=0&i=" 60 "slow" -d "x=proxied"
load front "$front_port" "/p?ms=0&i=" 30 "slow"

# Clients that give up while the upstream request is in flight: the proxy
# must end it and close that upstream connection, and the upstream sees its
# client go away. Both abort paths must free and close everything. First a
# fresh upstream generation, alone, so that no abort lands on a retiring
# upstream worker (see the report: a retiring worker skips the abort).
reload up "$up_pid"
wait_until 60 live_is up 1 || not_ok "up: old workers still there" "$tmp/up.log"
gone_before=$(count "$tmp/up.log" "slow: client went away")
for i in 1 2 3 4 5 6 7 8 9 10; do
    curl -q -s -m 0.5 -o /dev/null "http://127.0.0.1:$front_port/a?ms=3000&i=$i"
done
if wait_until 30 at_least "$tmp/up.log" "slow: client went away" $((gone_before + 10)); then
    ok "front: 10 clients gone mid-request, the upstream saw each go"
else
    not_ok "front: the upstream saw $(($(count "$tmp/up.log" "slow: client went away") - gone_before)) of 10 clients go" "$tmp/up.log"
fi

front_ini echo ""
reload front "$front_pid"
load front "$front_port" "/e?i=" 40 "x=echoed" -d "x=echoed"

# Each daemon recycled its workers by max_requests at least twice, and those
# lifetimes ended (the retired lines come after the exit).
re='retired: max_requests \(exited'
if wait_until 60 at_least "$tmp/front.log" "$re" 4 &&
        wait_until 60 at_least "$tmp/up.log" "$re" 2; then
    ok "workers recycled by max_requests: front $(count "$tmp/front.log" "$re"), up $(count "$tmp/up.log" "$re")"
else
    not_ok "too few recycles: front $(count "$tmp/front.log" "$re"), up $(count "$tmp/up.log" "$re")"
fi
vg_stop front "$front_pid"
vg_stop up "$up_pid"
for d in front up; do
    check_exits "$d"
    check_logs "$d"
    if [ ! -s "$tmp/problems" ] && [ "$nlogs" -ge 3 ]; then
        ok "$d: $nlogs memcheck logs (master and workers), no error, leak or open socket"
    elif [ ! -s "$tmp/problems" ]; then
        not_ok "$d: only $nlogs memcheck logs"
    else
        not_ok "$d: memcheck reports problems in $nlogs logs" "$tmp/problems"
    fi
    cat "$tmp/notes"
done

# ---- the check itself: a module that leaks, reads garbage, keeps a socket ----
cat >"$tmp/vgbad.c" <<'EOF'
#include <stdlib.h>
#include <sys/socket.h>
#include <preforkd.h>

static int bad_worker_init(void *state)
{
    return socket(AF_INET, SOCK_STREAM, 0) < 0 ? -1 : 0; /* never closed */
}

static int bad_handle(pf_request *r, void *state)
{
    char *p = malloc(32);
    int status = 200;

    if (p != NULL && p[7] == 'x') /* never written */
        status = 201;
    return pf_respond(r, status, NULL, 0, "bad\n", 4); /* p is lost */
}

PF_APP_DEFINE(.name = "vgbad", .worker_init = bad_worker_init,
              .handle = bad_handle);
EOF
if ${CC:-cc} -O0 -g -shared -fPIC -I"$src/src" -o "$tmp/vgbad.so" "$tmp/vgbad.c" \
        2>"$tmp/cc.err"; then
    printf '[server]\nlisten = 127.0.0.1:0\nworkers = 1\n[app]\nmodule = %s\n' \
        "$tmp/vgbad.so" >"$tmp/bad.ini"
    vg_start bad
    bad_pid=$pid
    requests bad "$port" / 3 "bad"
    vg_stop bad "$bad_pid"
    check_logs bad
    if grep -q "exited with status 99" "$tmp/bad.log" &&
            grep -q "leak through preforkd code" "$tmp/problems" &&
            grep -q "memory error" "$tmp/problems" &&
            grep -q "socket open at exit" "$tmp/problems" &&
            grep -q "vgbad.c:" "$tmp/problems"; then
        ok "the check catches a module's leak, uninitialised read and open socket"
    else
        not_ok "the check missed the leaking module's problems" "$tmp/problems"
    fi
else
    not_ok "cannot build the leaking module" "$tmp/cc.err"
fi

echo "valgrind run: $(($(date +%s) - t0)) s"
finish
