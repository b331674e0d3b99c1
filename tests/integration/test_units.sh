#!/bin/sh
# test_units.sh - the systemd units in systemd/: `systemd-analyze verify`
# passes with no message at all, the settings other parts rely on are there,
# and the capability bounding set of preforkd.service is enough for the
# daemon (run under setpriv with that set, user = nobody: bind, drop
# privileges in workers, signal them, reload, stop).
#
# verify checks that every Exec*= binary exists and is executable; on a
# build or CI machine nothing is installed under /usr/local, so the units are
# verified from a copy whose /usr/local/sbin/ paths point at the binaries
# just built (same names: preforkd, preforkctl). Everything else is verified
# as shipped. It needs no running systemd (CI containers have none).
#
# Run by `make check` (PREFORKD_BIN, PREFORKD_CTL, PREFORKD_APPS,
# PREFORKD_SRC); skipped when systemd-analyze is missing, unless
# PREFORKD_REQUIRE_SYSTEMD=1 (.ci/run). Every process it starts, it stops.
# The last line is "N passed, N failed"; exit 1 on any failure.
set -u

src=${PREFORKD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${PREFORKD_BIN:-$src/build/preforkd}
ctl=${PREFORKD_CTL:-$src/build/preforkctl}
apps=${PREFORKD_APPS:-$src/build/apps}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/preforkd-units.XXXXXX") || exit 1
pid=

cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        "$ctl" -c "$tmp/p.ini" -t 10 stop >/dev/null 2>&1 || kill -KILL -- "-$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

. "$(dirname "$0")/../lib/tap.inc"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "${PREFORKD_REQUIRE_SYSTEMD:-0}" = 1 ]; then
        not_ok "systemd-analyze is not installed (Debian package: systemd)"
        finish
    fi
    echo "skipped: systemd-analyze not installed (Debian package: systemd)"
    exit 0
fi

# ---- systemd-analyze verify ---------------------------------------------------
bindir=$(dirname "$bin")
mkdir "$tmp/units"
for u in preforkd.service preforkd.socket; do
    sed "s|/usr/local/sbin/|$bindir/|g" "$src/systemd/$u" >"$tmp/units/$u"
done
if [ ! -x "$bindir/preforkctl" ]; then
    not_ok "$bindir/preforkctl is not built"
fi
# Unknown keys and bad values are warnings (exit 0): any output fails. The
# man pages of Documentation= are not installed here (test_install.sh
# verifies the installed units with them).
if systemd-analyze verify --man=no "$tmp/units/preforkd.service" "$tmp/units/preforkd.socket" \
        >"$tmp/verify.out" 2>&1 && [ ! -s "$tmp/verify.out" ]; then
    ok "systemd-analyze verify preforkd.service preforkd.socket"
else
    not_ok "systemd-analyze verify preforkd.service preforkd.socket" "$tmp/verify.out"
fi
# The check can fail: a misspelt key must be reported.
sed 's/^WatchdogSec=/WatchdgSec=/' "$tmp/units/preforkd.service" >"$tmp/units/typo.service"
systemd-analyze verify "$tmp/units/typo.service" >"$tmp/typo.out" 2>&1
if grep -q "WatchdgSec" "$tmp/typo.out"; then
    ok "systemd-analyze verify reports a misspelt key"
else
    not_ok "systemd-analyze verify did not report a misspelt key" "$tmp/typo.out"
fi

# ---- what the units promise -----------------------------------------------------
svc=$src/systemd/preforkd.service
for line in "Type=notify" "NotifyAccess=all" "KillMode=mixed" "Restart=on-failure" \
        "ExecStart=/usr/local/sbin/preforkd -c /etc/preforkd/preforkd.ini" \
        "ExecReload=/usr/local/sbin/preforkctl -c /etc/preforkd/preforkd.ini reload" \
        "RuntimeDirectory=preforkd" "NoNewPrivileges=yes" "ProtectSystem=strict"; do
    if grep -qx "$line" "$svc"; then ok "service: $line"; else not_ok "service: no line $line"; fi
done
# TimeoutStopSec must cover the default graceful_timeout (30 s) + a margin.
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$svc")
if [ -n "$stop" ] && [ "$stop" -gt 30 ]; then
    ok "service: TimeoutStopSec=${stop}s > graceful_timeout 30s"
else
    not_ok "service: TimeoutStopSec \"$stop\" does not exceed graceful_timeout 30s"
fi
if grep -q '^FileDescriptorName=' "$src/systemd/preforkd.socket" &&
        grep -q '^ListenStream=' "$src/systemd/preforkd.socket"; then
    ok "socket: ListenStream and FileDescriptorName"
else
    not_ok "socket: ListenStream or FileDescriptorName missing"
fi

# ---- the bounding set is enough ---------------------------------------------------
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null 2>&1; then
    echo "skipped: capability check (needs root and setpriv)"
    finish
fi
# "CAP_KILL CAP_SETUID" -> "-all,+kill,+setuid"
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$svc" | tr 'A-Z' 'a-z' |
       sed 's/cap_/+/g; s/ /,/g')
cat >"$tmp/p.ini" <<EOF2
[server]
listen = 127.0.0.1:0
workers = 2
user = nobody
pidfile = $tmp/p.pid
graceful_timeout = 5s
[app]
module = $apps/hello.so
[admin]
listen = unix:$tmp/admin.sock
EOF2
# Its own process group (setsid), so that cleanup can end all of it.
setsid setpriv --bounding-set="-all,$caps" --no-new-privs "$bin" -c "$tmp/p.ini" \
    >"$tmp/err.log" 2>&1 &
pid=$!
n=0
until grep -q "master: ready" "$tmp/err.log" 2>/dev/null; do
    n=$((n + 1))
    if [ "$n" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        not_ok "preforkd under CapabilityBoundingSet ($caps) did not get ready" "$tmp/err.log"
        finish
    fi
    sleep 0.1
done
ok "preforkd ready under setpriv --bounding-set=-all,$caps --no-new-privs"
for step in "scale -1" "scale +2" reload stop; do
    # shellcheck disable=SC2086 # two words on purpose
    if "$ctl" -c "$tmp/p.ini" -t 20 $step >"$tmp/ctl.out" 2>&1; then
        ok "preforkctl $step (workers as nobody, master capabilities bounded)"
    else
        cat "$tmp/err.log" >>"$tmp/ctl.out"
        not_ok "preforkctl $step" "$tmp/ctl.out"
    fi
done
if grep -q "Operation not permitted" "$tmp/err.log"; then
    not_ok "a permission error in the log" "$tmp/err.log"
else
    ok "no permission error in the log"
fi
wait "$pid" 2>/dev/null
pid=
finish
