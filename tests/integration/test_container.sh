#!/bin/sh
# test_container.sh - preforkd as PID 1 of a container's PID namespace
# (`unshare --pid --fork --mount-proc`, as a container runtime starts its
# entrypoint): it serves, it reaps orphans that are not its workers (a
# process left behind by `kubectl exec` or by an app's subprocess becomes
# PID 1's child), and TERM (`docker stop`, a pod's termination) still stops
# it gracefully, a request in flight answered.
# Needs root (unshare); skips with one line otherwise, unless
# PREFORKD_REQUIRE_NAMESPACES=1 (CI), when that is a failure. Every process
# it starts, it stops. The last line is "N passed, N failed".
set -u

bin=${PREFORKD_BIN:?PREFORKD_BIN: the daemon to test}
tapps=${PREFORKD_TEST_APPS:?PREFORKD_TEST_APPS: the test apps}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/preforkd-container.XXXXXX") || exit 1
ns=     # unshare's pid (outside)
master= # preforkd's pid as seen from outside; 1 inside

. "$(dirname "$0")/../lib/tap.inc"

skip() {
    if [ "${PREFORKD_REQUIRE_NAMESPACES:-0}" = 1 ]; then
        not_ok "required (PREFORKD_REQUIRE_NAMESPACES=1): $1"
        finish
    fi
    echo "skip: $1"
    echo "0 passed, 0 failed"
    rm -rf "$tmp"
    exit 0
}

# The field $2 of /proc/$1/stat after the command name (1 = state, 2 = ppid).
stat_field() {
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f"$2"
}

# "PID PPID STATE" for every process, in one pass.
procs() {
    cat /proc/[0-9]*/stat 2>/dev/null |
        sed -n 's/^\([0-9]*\) .*) \(.\) \([0-9]*\) .*/\1 \3 \2/p'
}

# The pids whose parent is $1.
children() {
    procs | awk -v p="$1" '$2 == p { print $1 }'
}

alive() {
    st=$(stat_field "$1" 1)
    [ -n "$st" ] && [ "$st" != Z ]
}

# Polls the shell condition $1 every 0.05 s for up to $2 seconds.
poll() {
    n=0
    while ! eval "$1"; do
        [ "$n" -ge $(($2 * 20)) ] && return 1
        sleep 0.05
        n=$((n + 1))
    done
}

# Every process in the namespace, seen from outside: the master and its
# descendants.
tree() {
    procs | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            for (p in parent)
                for (q = p; q != "" && q != 0; q = parent[q])
                    if (q == root) { print p; break }
        }'
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    if [ -n "$master" ] && alive "$master"; then
        kill -KILL "$master" 2>/dev/null # PID 1 gone: the kernel ends the rest
    fi
    [ -n "$ns" ] && wait "$ns" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

[ "$(id -u)" = 0 ] || skip "not root: unshare --pid needs CAP_SYS_ADMIN"
command -v unshare >/dev/null && command -v nsenter >/dev/null ||
    skip "unshare or nsenter missing (Debian package util-linux)"
unshare --pid --fork --mount-proc true 2>"$tmp/unshare.err" ||
    skip "unshare --pid --fork --mount-proc is not permitted here: $(cat "$tmp/unshare.err")"

cat >"$tmp/preforkd.ini" <<EOF
[server]
listen = 127.0.0.1:0
workers = 2
graceful_timeout = 10s
[app]
module = $tapps/slow.so
EOF

# ---- PID 1 serves -----------------------------------------------------------
unshare --pid --fork --mount-proc "$bin" -c "$tmp/preforkd.ini" >"$tmp/daemon.log" 2>&1 &
ns=$!
poll 'master=$(children "$ns"); [ -n "$master" ]' 5
port=
poll 'port=$(sed -n "s/.*master: listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p" "$tmp/daemon.log" | head -n 1); [ -n "$port" ] && grep -q "master: ready" "$tmp/daemon.log"' 10
nspid=$(sed -n 's/^NSpid:[[:space:]]*//p' "/proc/${master:-0}/status" 2>/dev/null)
if [ -z "$master" ] || [ -z "$port" ]; then
    not_ok "preforkd started as PID 1 of a new PID namespace" "$tmp/daemon.log"
    finish
elif [ "${nspid##*[[:space:]]}" != 1 ]; then
    not_ok "preforkd is PID 1 in its namespace (NSpid: $nspid)"
else
    ok "preforkd is PID 1 of its namespace (NSpid: $nspid)"
fi
body=$(curl -sS --max-time 10 "http://127.0.0.1:$port/?ms=1" 2>"$tmp/curl.err")
if [ "$body" = slow ]; then
    ok "PID 1 serves (127.0.0.1:$port)"
else
    not_ok "GET as PID 1: got \"$body\"" "$tmp/curl.err"
fi

# ---- orphans are reaped -----------------------------------------------------
# A shell entered into the namespace leaves a child behind and exits: the
# child is re-parented to PID 1, which must wait for it when it ends.
nsenter -t "$master" -p -m sh -c 'sleep 1.2345 & exit 0'
orphan=
find_orphan() {
    for p in $(children "$master"); do
        if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q '^sleep 1\.2345'; then
            orphan=$p
            return 0
        fi
    done
    return 1
}
if poll find_orphan 5; then
    ok "an orphan in the namespace is re-parented to preforkd (pid $orphan outside)"
    # It exits after 1.2 s; PID 1 must then reap it (a zombie stays in
    # /proc with state Z until its parent waits).
    if poll '! [ -e /proc/$orphan ]' 10; then
        ok "the orphan is reaped when it exits (no zombie)"
    else
        not_ok "orphan $orphan still in /proc, state $(stat_field "$orphan" 1)" "$tmp/daemon.log"
    fi
else
    not_ok "no orphan re-parented to preforkd"
fi

# ---- TERM: graceful stop with a request in flight ----------------------------
procs=$(tree "$master")
curl -sS --max-time 20 "http://127.0.0.1:$port/inflight?ms=1500" >"$tmp/slow.out" 2>&1 &
cpid=$!
if poll 'grep -q "slow: /inflight" "$tmp/daemon.log"' 10; then
    kill -TERM "$master"
    wait "$cpid"
    if [ "$(cat "$tmp/slow.out")" = slow ]; then
        ok "TERM to PID 1: the request in flight is answered"
    else
        not_ok "TERM to PID 1: the request in flight got \"$(cat "$tmp/slow.out")\"" "$tmp/daemon.log"
    fi
else
    kill "$cpid" 2>/dev/null
    wait "$cpid"
    not_ok "the slow request never reached a worker" "$tmp/daemon.log"
    kill -TERM "$master"
fi
wait "$ns"
st=$?
ns=
if [ "$st" -eq 0 ] && grep -q "received SIGTERM: graceful shutdown" "$tmp/daemon.log"; then
    ok "TERM to PID 1: graceful shutdown, exit 0"
else
    not_ok "TERM to PID 1: exit $st" "$tmp/daemon.log"
fi
left=
for p in $procs; do alive "$p" && left="$left $p"; done
if [ -z "$left" ]; then
    ok "nothing of the namespace outlives it"
else
    not_ok "still running:$left"
fi
master=

finish
