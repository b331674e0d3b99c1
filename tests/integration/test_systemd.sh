#!/bin/sh
# test_systemd.sh - preforkd under a real systemd: systemd 252 boots as PID 1
# of new namespaces (cgroup, pid, mount, net, uts, ipc) on an overlay of the
# host's / whose upper layer is a tmpfs, preforkd is installed there as the
# Debian package (dpkg -i, or `make install PREFIX=/usr` when the package
# cannot be built: see install_payload), and the suite drives the units with
# systemctl through nsenter: start (Type=notify), synchronous reload (good
# and refused), error priorities in the journal, stop, the watchdog, socket
# activation across a restart, a binary upgrade (preforkctl upgrade) and
# `systemd-analyze security`.
#
# Nothing on the host is written but the temporary directory and one cgroup
# (/sys/fs/cgroup[/unified]/preforkd-test-PID). The namespace has its own
# network with only lo up, so the fixed 127.0.0.1:8000 of the shipped units
# is safe. At exit the namespace's PID 1 is killed from outside (the kernel
# then kills every process in it), the client loops this script started end
# (or are killed by pid), and the cgroup and the temporary directory are
# removed.
#
# The package is built once per run (`make deb`, about a minute) from a copy
# of the working tree; PREFORKD_DEB_DIR=DIR installs the .deb files in DIR
# instead (e.g. build/deb after `make deb`).
#
# Run by `make check` (PREFORKD_SRC, PREFORKD_SANITIZE). Skipped, with one
# "skip: ..." line, when not root, without namespaces, overlayfs, cgroup2 or
# /lib/systemd/systemd, unless PREFORKD_REQUIRE_SYSTEMD_PID1=1 (.ci/run):
# then a missing prerequisite fails. Always skipped in sanitizer builds
# (PREFORKD_SANITIZE=1): the package is built without sanitizers. Each case
# prints "ok N - ..." or "not ok N - ..." with its time; the last line is
# "N passed, N failed"; exit 1 on any failure.
# shellcheck disable=SC2317 # functions called through poll and the EXIT trap
set -u

src=${PREFORKD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
require=${PREFORKD_REQUIRE_SYSTEMD_PID1:-0}
unit=preforkd.service
url=http://127.0.0.1:8000/
ini=/etc/preforkd/preforkd.ini

tmp=
cg=
usp=    # unshare (host pid), parent of the namespace's PID 1
sd=     # the namespace's PID 1, systemd (host pid)
clients=

# ---- reporting ----------------------------------------------------------------
n=0
passed=0
failed=0
t_case=0

ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { d=$(($(ms) - $1)); printf '%d.%02d s' $((d / 1000)) $((d % 1000 / 10)); }

begin() {
    n=$((n + 1))
    t_case=$(ms)
}

ok() {
    passed=$((passed + 1))
    echo "ok $n - $1 ($(secs "$t_case"))"
}

# not_ok DESCRIPTION [FILE TO SHOW (its last 40 lines)]
not_ok() {
    failed=$((failed + 1))
    echo "not ok $n - $1 ($(secs "$t_case"))"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        sed 's/^/    | /' "$2" | tail -n 40
    fi
}

finish() {
    echo "$passed passed, $failed failed ($(secs "$t_start") in all)"
    [ "$failed" -eq 0 ]
    exit $?
}

t_start=$(ms)

# skip WHY: a missing prerequisite; a failure under PREFORKD_REQUIRE_SYSTEMD_PID1=1.
skip() {
    if [ "$require" = 1 ]; then
        echo "not ok 0 - prerequisite: $1 (PREFORKD_REQUIRE_SYSTEMD_PID1=1)"
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "skip: $1"
    exit 0
}

# ---- prerequisites ------------------------------------------------------------
if [ "${PREFORKD_SANITIZE:-}" = 1 ]; then
    echo "skip: sanitizer build (PREFORKD_SANITIZE=1): the suite tests the Debian package, built without sanitizers"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || skip "not root: booting systemd in namespaces needs root"
[ -x /lib/systemd/systemd ] || skip "/lib/systemd/systemd is missing (Debian package: systemd)"
for c in unshare nsenter pivot_root mount ip curl timeout awk; do
    command -v "$c" >/dev/null 2>&1 ||
        skip "$c is missing (Debian packages: util-linux, mount, iproute2, curl)"
done
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
    skip "the kernel has no overlayfs"
cgroot=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
[ -n "$cgroot" ] || skip "no cgroup2 hierarchy mounted (systemd needs one)"
unshare --cgroup --pid --fork --mount --net --uts --ipc --propagation private true \
    2>/dev/null || skip "unshare --cgroup --pid --mount --net --uts --ipc is not permitted here"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/preforkd-systemd.XXXXXX") || exit 1

# ---- cleanup ------------------------------------------------------------------
# True while $1 runs (a zombie does not count).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    pstate=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$pstate" ] && [ "$pstate" != Z ]
}

# The pids in cgroup $1 and below.
cg_procs() {
    find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null
}

cleanup() {
    [ -n "$clients" ] && touch "$tmp/stop"
    # Killing the namespace's init kills every process of its pid namespace.
    if [ -n "$sd" ] && alive "$sd"; then
        kill -KILL "$sd" 2>/dev/null
    fi
    [ -n "$usp" ] && wait "$usp" 2>/dev/null
    # The client loops (host processes in the namespace's network) stop at
    # the stop file, their requests failing at once with the server gone;
    # KILL only after 15 s, so that no curl of theirs is left an orphan.
    for p in $clients; do
        i=0
        while alive "$p" && [ "$i" -lt 150 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        alive "$p" && kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ -n "$cg" ] && [ -d "$cg" ]; then
        i=0
        while [ -n "$(cg_procs "$cg")" ] && [ "$i" -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        left=$(cg_procs "$cg")
        [ -n "$left" ] && echo "# cleanup: processes still in $cg: $left" >&2
        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
        [ -d "$cg" ] && echo "# cleanup: could not remove $cg" >&2
    fi
    [ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "# interrupted"; exit 1' HUP INT TERM

# ---- helpers ------------------------------------------------------------------
# poll TENTHS CMD...: runs CMD every 0.1 s until it succeeds; 1 when TENTHS
# tenths of a second have gone by without success.
poll() {
    deadline=$(($(ms) + $1 * 100))
    shift
    until "$@"; do
        [ "$(ms)" -ge "$deadline" ] && return 1
        sleep 0.1
    done
    return 0
}

# in_ns CMD...: CMD in every namespace of the booted systemd, its root and
# working directory; never longer than 120 s.
in_ns() {
    timeout -k 5 120 nsenter -t "$sd" -a -r -w "$@"
}

# in_net CMD...: CMD from the host's file system in the namespace's network.
in_net() {
    nsenter -t "$sd" -n "$@"
}

sctl() { in_ns systemctl --no-pager "$@"; }

# prop NAME: a property of preforkd.service (systemctl show).
prop() { sctl show -p "$1" --value "$unit"; }

# The HTTP status of GET $url in the namespace ("000" when none).
http_code() {
    in_net curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$url" 2>>"$tmp/curl.err"
}
serves() { [ "$(http_code)" = 200 ]; }
is_active() { [ "$(prop ActiveState)" = active ]; }

# Host pids of the preforkd processes in the namespace.
ns_preforkd() {
    nsid=$(readlink "/proc/$sd/ns/pid")
    for d in /proc/[0-9]*; do
        [ "$(readlink "$d/ns/pid" 2>/dev/null)" = "$nsid" ] || continue
        case $(readlink "$d/exe" 2>/dev/null) in
        */preforkd | */preforkd\ \(deleted\)) echo "${d#/proc/}" ;;
        esac
    done
}

# A file in the namespace's root, seen from the host.
nsfile() { echo "/proc/$sd/root$1"; }

# What the unit and its journal say, for a failure's details.
unit_state() {
    {
        echo "== systemctl status $unit"
        sctl status "$unit" 2>&1 | tail -n 15
        echo "== journalctl -u $unit (last 25)"
        in_ns journalctl --no-pager -u "$unit" -n 25 2>&1
    } >"$1" 2>&1
}

# ini_set SECTION KEY VALUE: sets KEY in [SECTION] of the config file in the
# namespace (replaced in place, or added at the section's end); atomic.
ini_set() {
    f=$(nsfile "$ini")
    awk -v s="[$1]" -v k="$2" -v v="$3" '
        function put() { if (!done) print k " = " v; done = 1 }
        /^[ \t]*\[/ { if (in_s) put(); in_s = ($0 == s) }
        in_s && $0 ~ "^[ \t]*" k "[ \t]*=" { put(); next }
        { print }
        END { if (in_s) put() }' "$f" >"$f.new" && mv "$f.new" "$f"
}

# The number of workers serving, from preforkctl status --json.
serving() {
    in_ns preforkctl -c "$ini" status --json 2>/dev/null |
        sed 's/[,{]/\n/g' | sed -n 's/^ *"workers_serving": *\([0-9]*\).*/\1/p' | head -n 1
}

# ---- client loops -------------------------------------------------------------
# client.sh STOPFILE OUT: GETs one after another until STOPFILE exists (at
# most 3000 requests, 60 s); writes its request count to OUT.progress as it
# goes and "REQUESTS FAILURES" to OUT at the end; each failure in OUT.err.
cat >"$tmp/client.sh" <<'EOF'
end=$(($(date +%s) + 60))
i=0
bad=0
while [ ! -e "$1" ] && [ "$i" -lt 3000 ] && [ "$(date +%s)" -lt "$end" ]; do
    i=$((i + 1))
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$3" 2>>"$2.curl")
    if [ "$code" != 200 ]; then
        bad=$((bad + 1))
        echo "request $i: HTTP $code: $(tail -n 1 "$2.curl" 2>/dev/null)" >>"$2.err"
    fi
    echo "$i" >"$2.progress"
done
echo "$i $bad" >"$2"
EOF

# clients_start: two loops in the namespace's network; returns once each
# has done a few requests.
clients_start() {
    rm -f "$tmp/stop" "$tmp"/client[12]*
    clients=
    for c in 1 2; do
        nsenter -t "$sd" -n sh "$tmp/client.sh" "$tmp/stop" "$tmp/client$c" "$url" &
        clients="$clients $!"
    done
    poll 100 clients_past 3
}

# clients_done: the requests the loops have done so far.
clients_done() {
    a=$(cat "$tmp/client1.progress" 2>/dev/null || echo 0)
    b=$(cat "$tmp/client2.progress" 2>/dev/null || echo 0)
    echo $((a + b))
}
clients_past() { [ "$(clients_done)" -ge "$1" ]; }

# clients_stop: stops both loops; sets requests, failures (and the details in
# $tmp/client.err).
clients_stop() {
    touch "$tmp/stop"
    poll 150 test -s "$tmp/client1" -a -s "$tmp/client2"
    for p in $clients; do
        wait "$p" 2>/dev/null
    done
    clients=
    requests=0
    failures=0
    : >"$tmp/client.err"
    for c in 1 2; do
        # A loop that wrote no summary counts as one failure.
        r=0 f=1
        [ -s "$tmp/client$c" ] && read -r r f <"$tmp/client$c"
        requests=$((requests + r))
        failures=$((failures + f))
        cat "$tmp/client$c.err" >>"$tmp/client.err" 2>/dev/null
    done
}

# ---- what is installed in the namespace ---------------------------------------
# install_payload: fills $tmp/payload with what installs preforkd in the
# namespace, and its install.sh, run there (in the overlay root) before
# systemd starts. The one place that decides package or `make install`.
install_payload() {
    mkdir -p "$tmp/payload"
    if [ -n "${PREFORKD_DEB_DIR:-}" ]; then
        use_debs "$PREFORKD_DEB_DIR" >"$tmp/install.out" 2>&1
        return
    fi
    if [ -f "$src/debian/control" ]; then
        if command -v dpkg-buildpackage >/dev/null 2>&1 && command -v dh >/dev/null 2>&1; then
            build_deb && return 0
            return 1
        fi
        [ "$require" = 1 ] && {
            echo "dpkg-buildpackage or debhelper missing (Debian packages: dpkg-dev, debhelper)" \
                >"$tmp/install.out"
            return 1
        }
        echo "# the package path is skipped: dpkg-buildpackage or debhelper missing; testing make install"
    fi
    stage_make_install
}

# build_deb: `make deb` (dpkg-buildpackage -b from a copy of the working
# tree, uncommitted work included) with BUILD in $tmp, without tests and
# debug symbols; the packages land in $tmp/deb/deb.
build_deb() {
    # Not the make that runs `make check`: its MAKEFLAGS (WERROR=1, BUILD=...)
    # are not the package's.
    if ! (cd "$src" && unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES &&
          DEB_BUILD_OPTIONS="nocheck noautodbgsym" \
          make --no-print-directory deb BUILD="$tmp/deb") >"$tmp/install.out" 2>&1; then
        [ -f "$tmp/deb/deb/build.log" ] && tail -n 30 "$tmp/deb/deb/build.log" >>"$tmp/install.out"
        return 1
    fi
    use_debs "$tmp/deb/deb"
}

# use_debs DIR: the packages in DIR (but their debug symbols) go in the
# payload; install.sh runs dpkg -i.
use_debs() {
    for f in "$1"/*.deb; do
        case ${f##*/} in *-dbgsym_*) continue ;; esac
        cp "$f" "$tmp/payload/" || return 1
    done
    debs=$(cd "$tmp/payload" && echo *.deb)
    [ "$debs" != "*.deb" ] || { echo "no .deb in $1"; return 1; }
    how="Debian packages $debs"
    cat >"$tmp/payload/install.sh" <<'EOF'
set -e
# man-db's trigger (rebuilding its index) would take seconds: skipped.
rm -f /var/lib/man-db/auto-update
cd /var/lib/preforkd-test
dpkg -i ./*.deb
EOF
}

# stage_make_install: make install DESTDIR=stage PREFIX=/usr, plus the units
# (/usr/local/sbin -> /usr/sbin) and conf/system.ini when make install did
# not put them there; install.sh copies the stage and adds the user.
stage_make_install() {
    st=$tmp/payload/stage
    if ! (cd "$src" && unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES &&
          make --no-print-directory install DESTDIR="$st" PREFIX=/usr \
            BUILD="$tmp/build") >"$tmp/install.out" 2>&1; then
        return 1
    fi
    # /usr/lib, not /lib: a symbolic link to it on a merged-/usr system.
    mkdir -p "$st/usr/lib/systemd/system" "$st/etc/preforkd"
    for u in preforkd.service preforkd.socket; do
        [ -f "$st/usr/lib/systemd/system/$u" ] ||
            sed 's|/usr/local/sbin/|/usr/sbin/|g' "$src/systemd/$u" >"$st/usr/lib/systemd/system/$u"
    done
    [ -f "$st$ini" ] || cp "$src/conf/system.ini" "$st$ini" || return 1
    how="make install DESTDIR PREFIX=/usr"
    cat >"$tmp/payload/install.sh" <<'EOF'
set -e
cp -a /var/lib/preforkd-test/stage/. /
getent passwd preforkd >/dev/null ||
    adduser --quiet --system --group --no-create-home --home /nonexistent preforkd
EOF
}

# ---- the namespace ------------------------------------------------------------
# boot.sh HOSTTMP, as PID 1 of the new namespaces: overlay root, /proc, /sys,
# cgroup2, /dev, /run, /tmp, lo; the payload installed; masks, a target, a
# volatile journal; pivot_root; exec systemd.
cat >"$tmp/boot.sh" <<'EOF'
set -eu
t=$1
w=$t/ns
mount -t tmpfs -o mode=0755 preforkd-test "$w"
mkdir "$w/upper" "$w/work" "$w/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$w/upper,workdir=$w/work" "$w/root"
r=$w/root
mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
mount --bind "$r/proc/sys" "$r/proc/sys"
mount -o remount,bind,ro "$r/proc/sys"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$r/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid,size=4m tmpfs "$r/dev"
for d in null zero full random urandom tty; do
    : >"$r/dev/$d"
    mount --bind "/dev/$d" "$r/dev/$d"
done
mkdir "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/dev/shm"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$r/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/tmp"
ip link set lo up
hostname preforkd-test

rm -rf "$r/var/lib/preforkd-test"
cp -a "$t/payload" "$r/var/lib/preforkd-test"
# What a container does not have or must not touch.
e=$r/etc/systemd/system
for u in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
        systemd-udev-trigger.service systemd-udev-settle.service \
        getty.target console-getty.service getty-static.service \
        systemd-sysctl.service systemd-modules-load.service kmod-static-nodes.service \
        systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
        systemd-timesyncd.service systemd-pstore.service systemd-journald-audit.socket \
        systemd-firstboot.service systemd-hwdb-update.service systemd-random-seed.service \
        systemd-remount-fs.service systemd-machine-id-commit.service systemd-repart.service \
        systemd-pcrphase.service systemd-pcrphase-sysinit.service \
        dev-hugepages.mount dev-mqueue.mount sys-kernel-config.mount sys-kernel-debug.mount \
        sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
        systemd-ask-password-console.path systemd-ask-password-wall.path \
        apt-daily.timer apt-daily-upgrade.timer timers.target; do
    ln -sf /dev/null "$e/$u"
done
cat >"$e/preforkd-test.target" <<'UNIT'
[Unit]
Description=preforkd test boot (tests/integration/test_systemd.sh)
Requires=sysinit.target
Wants=systemd-journald.service
After=sysinit.target systemd-journald.service
AllowIsolate=yes
UNIT
mkdir -p "$r/etc/systemd/journald.conf.d"
cat >"$r/etc/systemd/journald.conf.d/preforkd-test.conf" <<'CONF'
[Journal]
Storage=volatile
RateLimitIntervalSec=0
ForwardToSyslog=no
ForwardToWall=no
ForwardToConsole=no
CONF

cd "$r"
mkdir .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
sh /var/lib/preforkd-test/install.sh
exec env -i container=preforkd-test /lib/systemd/systemd --system \
    --unit=preforkd-test.target --show-status=no
EOF

# boot: starts the namespace; sets usp and sd; 0 once systemd has booted.
boot() {
    cg=$cgroot/preforkd-test-$$
    mkdir "$cg" || return 1
    mkdir "$tmp/ns"
    # The subshell joins the new cgroup, then becomes unshare: the
    # namespace's cgroup root is that cgroup.
    (echo 0 >"$cg/cgroup.procs" &&
        exec unshare --cgroup --pid --fork --mount --net --uts --ipc --propagation private \
            sh "$tmp/boot.sh" "$tmp") >"$tmp/boot.log" 2>&1 &
    usp=$!
    poll 100 ns_init || return 1
    # systemctl answers once the manager runs; the boot job then finishes.
    poll 600 booted && alive "$usp"
}

ns_init() {
    sd=$(cut -d' ' -f1 2>/dev/null <"/proc/$usp/task/$usp/children")
    [ -n "$sd" ]
}

booted() {
    if ! alive "$usp"; then
        state="the namespace's init exited"
        return 0
    fi
    state=$(sctl is-system-running 2>/dev/null)
    case $state in running | degraded) return 0 ;; esac
    return 1
}

# ---- setup --------------------------------------------------------------------
t0=$(ms)
how=
if ! install_payload; then
    echo "not ok 0 - building what is installed in the namespace"
    sed 's/^/    | /' "$tmp/install.out" | tail -n 40
    echo "0 passed, 1 failed"
    exit 1
fi
echo "# payload: $how ($(secs "$t0"))"
t0=$(ms)
if ! boot; then
    echo "not ok 0 - boot systemd in the namespace (state: ${state:-none})"
    sed 's/^/    | /' "$tmp/boot.log" | tail -n 40
    [ -n "$sd" ] && sctl --failed 2>&1 | sed 's/^/    | /'
    echo "0 passed, 1 failed"
    exit 1
fi
echo "# booted: systemd $(in_ns /lib/systemd/systemd --version | sed -n '1s/systemd \([0-9]*\).*/\1/p') as PID 1 of the namespace (host pid $sd), state $state ($(secs "$t0"))"
if [ "$state" = degraded ]; then
    echo "# failed units: $(sctl --failed --plain --no-legend | awk '{ printf "%s ", $1 }')"
fi

# ---- 1. start ------------------------------------------------------------------
begin
sctl start "$unit" >"$tmp/start.out" 2>&1
rc=$?
state=$(prop ActiveState)
main1=$(prop MainPID)
code=$(http_code)
if [ "$rc" -eq 0 ] && [ "$state" = active ] && [ "$code" = 200 ]; then
    ok "systemctl start $unit: active (Type=notify), MainPID $main1, GET / 200"
else
    unit_state "$tmp/why"
    cat "$tmp/start.out" >>"$tmp/why"
    not_ok "systemctl start $unit: exit $rc, ActiveState $state, GET / $code" "$tmp/why"
fi

# ---- 2. reload -------------------------------------------------------------------
begin
cp "$(nsfile "$ini")" "$tmp/good.ini"
w0=$(serving)
w1=$((${w0:-0} + 1))
ini_set server workers "$w1"
sctl reload "$unit" >"$tmp/reload.out" 2>&1
rc=$?
w=$(serving)
why=
[ "$rc" -eq 0 ] || why="$why; good reload: exit $rc"
[ "$w" = "$w1" ] || why="$why; workers serving after the reload returned: $w, expected $w1"
# A syntax error: preforkctl refuses the file before signalling anything.
cp "$(nsfile "$ini")" "$tmp/ok.ini"
echo "this is not an ini line" >>"$(nsfile "$ini")"
sctl reload "$unit" >>"$tmp/reload.out" 2>&1 && why="$why; reload of a syntax error: exit 0"
# A module that cannot be loaded: the daemon refuses it and keeps serving.
cp "$tmp/ok.ini" "$(nsfile "$ini")"
ini_set app module /nonexistent/nosuch.so
sctl reload "$unit" >>"$tmp/reload.out" 2>&1 && why="$why; reload of a missing module: exit 0"
code=$(http_code)
[ "$code" = 200 ] || why="$why; GET / $code after the refused reloads"
main=$(prop MainPID)
[ "$main" = "$main1" ] || why="$why; MainPID $main1 -> $main"
state=$(prop ActiveState)
[ "$state" = active ] || why="$why; ActiveState $state"
w=$(serving)
[ "$w" = "$w1" ] || why="$why; $w workers serving after the refused reloads, expected $w1"
cp "$tmp/good.ini" "$(nsfile "$ini")"
if [ -z "$why" ]; then
    ok "systemctl reload: workers $w0 -> $w1 in effect when it returns; a syntax error and a missing module fail the job, generation and MainPID $main1 keep serving"
else
    unit_state "$tmp/why"
    cat "$tmp/reload.out" >>"$tmp/why"
    not_ok "systemctl reload: ${why#; }" "$tmp/why"
fi

# ---- 3. error priorities in the journal --------------------------------------------
begin
in_ns journalctl --no-pager -u "$unit" -p err -o short >"$tmp/err.out" 2>&1
# The daemon's own line (not systemd's "Reload failed"), without a time of its own.
line=$(grep -E ' preforkd\[[0-9]+\]: .*reload refused' "$tmp/err.out" | tail -n 1)
info=$(grep -E ' preforkd\[[0-9]+\]: .*ready' "$tmp/err.out" | head -n 1)
msg=${line#*]: }
if [ -z "$line" ]; then
    in_ns journalctl --no-pager -u "$unit" -o short -n 15 >>"$tmp/err.out" 2>&1
    not_ok "journalctl -u preforkd -p err: no \"reload refused\" line from preforkd" "$tmp/err.out"
elif [ -n "$info" ]; then
    not_ok "journalctl -u preforkd -p err: an info line at error priority: $info" "$tmp/err.out"
elif echo "$msg" | grep -qE '^[<[]?[0-9]{4}-[0-9]{2}-[0-9]{2}'; then
    not_ok "journalctl -u preforkd -p err: the line has a time of its own: $msg" "$tmp/err.out"
else
    ok "journalctl -u preforkd -p err: \"$msg\" (and no info line)"
fi

# ---- 4. stop ---------------------------------------------------------------------
begin
sctl stop "$unit" >"$tmp/stop.out" 2>&1
rc=$?
state=$(prop ActiveState)
left=$(ns_preforkd)
if [ "$rc" -eq 0 ] && [ "$state" = inactive ] && [ -z "$left" ]; then
    ok "systemctl stop: inactive, no preforkd process left in the namespace"
else
    unit_state "$tmp/why"
    not_ok "systemctl stop: exit $rc, ActiveState $state, preforkd processes left: $left" "$tmp/why"
fi

# ---- 5. watchdog ------------------------------------------------------------------
begin
# A drop-in makes it quick: the watchdog fires after 3 s, the restart 1 s later.
dropin=$(nsfile /etc/systemd/system/$unit.d)
mkdir -p "$dropin"
printf '[Service]\nWatchdogSec=3s\nRestartSec=1s\n' >"$dropin/test.conf"
sctl daemon-reload
sctl start "$unit" >"$tmp/wd.out" 2>&1
main=$(prop MainPID)
restarts=$(prop NRestarts)
why=
if [ "$(prop ActiveState)" != active ] || [ "$main" -le 0 ] 2>/dev/null; then
    why="start with WatchdogSec=3s failed"
else
    in_ns kill -STOP "$main"
    t_stop=$(ms)
    restarted() {
        m=$(prop MainPID)
        [ "$m" != "$main" ] && [ "$m" != 0 ] && is_active && serves
    }
    if poll 300 restarted; then
        took=$(secs "$t_stop")
        in_ns journalctl --no-pager -u "$unit" -o cat >"$tmp/wd.journal" 2>&1
        grep -q 'Watchdog timeout' "$tmp/wd.journal" ||
            why="restarted, but the journal has no \"Watchdog timeout\""
        [ "$(prop NRestarts)" -gt "$restarts" ] || why="$why; NRestarts stays $restarts"
    else
        why="not restarted within 30 s of SIGSTOP (MainPID $(prop MainPID), $(prop ActiveState)/$(prop SubState))"
    fi
fi
rm -r "$dropin"
sctl daemon-reload
if [ -z "$why" ]; then
    ok "watchdog: SIGSTOPped master $main (WatchdogSec=3s) restarted by systemd as $(prop MainPID) in $took, serving"
else
    unit_state "$tmp/why"
    not_ok "watchdog: $why" "$tmp/why"
fi

# ---- 6. socket activation across a restart ---------------------------------------
begin
why=
sctl stop "$unit" >"$tmp/sock.out" 2>&1
sctl enable --now preforkd.socket >>"$tmp/sock.out" 2>&1 || why="$why; enable --now preforkd.socket failed"
sctl start "$unit" >>"$tmp/sock.out" 2>&1 || why="$why; start with the socket failed"
main=$(prop MainPID)
if [ -z "$why" ] && ! clients_start; then
    clients_stop
    why="$why; the client loops did not get going"
fi
if [ -z "$why" ]; then
    before=$(clients_done)
    t_restart=$(ms)
    sctl restart "$unit" >>"$tmp/sock.out" 2>&1 || why="$why; systemctl restart failed"
    took=$(secs "$t_restart")
    during=$(($(clients_done) - before))
    after=$(($(clients_done) + 40))
    poll 200 clients_past "$after" || why="$why; the clients stalled after the restart"
    clients_stop
    main2=$(prop MainPID)
    [ "$main2" != "$main" ] || why="$why; MainPID $main did not change"
    is_active || why="$why; ActiveState $(prop ActiveState)"
    [ "$failures" -eq 0 ] || why="$why; $failures of $requests requests failed"
    in_ns journalctl --no-pager -u "$unit" "_PID=$main2" -o cat >"$tmp/sock.journal" 2>&1
    grep -q 'listening on 127.0.0.1:8000 (inherited)' "$tmp/sock.journal" ||
        why="$why; master $main2 did not log \"listening on 127.0.0.1:8000 (inherited)\""
fi
if [ -z "$why" ]; then
    ok "socket activation: restart ($main -> $main2) under load in $took, $requests requests ($during during the restart), 0 failed"
else
    unit_state "$tmp/why"
    cat "$tmp/sock.out" "$tmp/client.err" >>"$tmp/why" 2>/dev/null
    not_ok "socket activation: ${why#; }" "$tmp/why"
fi

# ---- 7. binary upgrade -----------------------------------------------------------
begin
why=
# systemd's own state changes go to the journal at debug level.
sctl log-level debug
cursor=$(in_ns journalctl -n 0 --show-cursor 2>/dev/null | sed -n 's/^-- cursor: //p')
main=$(prop MainPID)
if ! clients_start; then
    clients_stop
    why="; the client loops did not get going"
else
    in_ns preforkctl -c "$ini" upgrade >"$tmp/up.out" 2>&1 || why="$why; preforkctl upgrade failed"
    new=$(in_ns cat /run/preforkd/preforkd.pid 2>/dev/null)
    follows() { [ "$(prop MainPID)" = "$new" ]; }
    [ -n "$new" ] && [ "$new" != "$main" ] || why="$why; the pidfile names \"$new\" (old master $main)"
    poll 50 follows || why="$why; MainPID $(prop MainPID), the pidfile names $new"
    # The old master is gone: systemd must keep the service as it is. (It
    # says "Supervising process NEW which is not our child": expected.)
    states=
    end=$(($(ms) + 5000))
    while [ "$(ms)" -lt "$end" ]; do
        s=$(sctl show -p ActiveState,SubState,MainPID "$unit" | sort | tr '\n' ' ')
        case "$states" in *"[${s% }]"*) ;; *) states="$states [${s% }]" ;; esac
        sleep 0.2
    done
    clients_stop
    [ "$states" = " [ActiveState=active MainPID=$new SubState=running]" ] ||
        why="$why; states seen over 5 s:$states"
    [ "$failures" -eq 0 ] || why="$why; $failures of $requests requests failed"
    in_ns journalctl --no-pager -u "$unit" --after-cursor="$cursor" -o cat \
        >"$tmp/up.journal" 2>&1
    bad=$(grep -E -e '-> (stop|deactivating|final)|Stopping |Deactivated|Main process exited' \
        "$tmp/up.journal" | head -n 3)
    [ -z "$bad" ] || why="$why; journal: $bad"
fi
sctl log-level info
if [ -z "$why" ]; then
    ok "preforkctl upgrade: MainPID $main -> $new, active/running for 5 s after, $requests requests, 0 failed"
else
    unit_state "$tmp/why"
    cat "$tmp/up.out" "$tmp/client.err" >>"$tmp/why" 2>/dev/null
    not_ok "preforkctl upgrade: ${why#; }" "$tmp/why"
fi

# ---- 8. systemd-analyze security ----------------------------------------------------
begin
in_ns systemd-analyze security --no-pager "$unit" >"$tmp/sec.out" 2>&1
# Its line ends in an emoji: printable ASCII only.
line=$(grep 'Overall exposure level' "$tmp/sec.out" | LC_ALL=C sed 's/[^ -~]//g; s/^ *//; s/ *$//')
level=$(echo "$line" | sed -n 's/.*: *\([0-9][0-9.]*\) .*/\1/p')
if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 3.0) }'; then
    ok "systemd-analyze security: $line (<= 3.0)"
else
    not_ok "systemd-analyze security: exposure \"$level\" (need <= 3.0): $line" "$tmp/sec.out"
fi

finish
