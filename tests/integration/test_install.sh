#!/bin/sh
# test_install.sh - `make install PREFIX=<tmp>` and what a third party does
# with the result: build a module outside the tree with `pkg-config
# preforkd`, check a config naming it (and the built-in hello, found in the
# installed apps directory) with the installed `preforkd -t`, then run the
# installed daemon on an ephemeral port and fetch a response from that module.
# Run by `make check` (PREFORKD_SRC, PREFORKD_MAKE); every process it starts,
# it stops. The last line is "N passed, N failed"; exit 1 on any failure.
set -u

src=${PREFORKD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
make_cmd=${PREFORKD_MAKE:-make}
cc=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/preforkd-install.XXXXXX") || exit 1
prefix=$tmp/prefix
pid=
# make install writes SYSCONFDIR/preforkd/preforkd.ini (default /etc): keep
# every install of this script under the prefix. make reads it from here.
SYSCONFDIR=$prefix/etc
export SYSCONFDIR

# The live processes among the children of $1 (its workers), from /proc.
children() {
    for d in /proc/[0-9]*; do
        pp=$(sed 's/.*) //' "$d/stat" 2>/dev/null | cut -d' ' -f2)
        [ "$pp" = "$1" ] && echo "${d#/proc/}"
    done
}

# True while $1 runs (a zombie does not count).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ]
}

# Waits up to $2 tenths of a second for process $1 to end; 0 if it did.
wait_gone() {
    n=0
    while alive "$1"; do
        [ "$n" -ge "$2" ] && return 1
        sleep 0.1
        n=$((n + 1))
    done
    return 0
}

# TERM, then KILL (with its workers) when it outlives the deadline.
stop_daemon() {
    [ -n "$pid" ] || return 0
    kids=$(children "$pid")
    kill -TERM "$pid" 2>/dev/null
    if ! wait_gone "$pid" 150; then
        echo "preforkd $pid ignored TERM for 15 s: KILL" >&2
        # shellcheck disable=SC2086 # a list of pids
        kill -KILL "$pid" $kids 2>/dev/null
        wait_gone "$pid" 50
    fi
    for k in $kids; do
        alive "$k" && kill -KILL "$k" 2>/dev/null
    done
    wait "$pid" 2>/dev/null
    stop_status=$?
    pid=
    return 0
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    stop_daemon
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

. "$(dirname "$0")/../lib/tap.inc"

# ---- make install -----------------------------------------------------------
# A build directory of its own: the checkout's build/ keeps its compiled-in
# paths, and the installed binary gets PF_APPDIR under the temporary prefix.
# shellcheck disable=SC2086
if (cd "$src" && $make_cmd install PREFIX="$prefix" BUILD="$tmp/build") \
        >"$tmp/make.out" 2>&1; then
    ok "make install PREFIX=$prefix"
else
    not_ok "make install PREFIX=$prefix" "$tmp/make.out"
    finish
fi

for f in sbin/preforkd lib/preforkd/apps/hello.so lib/preforkd/apps/echo.so \
         include/preforkd.h lib/pkgconfig/preforkd.pc; do
    if [ -f "$prefix/$f" ]; then ok "installed $f"; else not_ok "installed $f"; fi
done

# ---- the units and the default config ---------------------------------------
# The installed units run the installed binaries on the installed config.
unit=$prefix/lib/systemd/system/preforkd.service
if grep -qxF "ExecStart=$prefix/sbin/preforkd -c $prefix/etc/preforkd/preforkd.ini" \
        "$unit" 2>/dev/null &&
    grep -qxF "ExecReload=$prefix/sbin/preforkctl -c $prefix/etc/preforkd/preforkd.ini reload" \
        "$unit" && [ -f "$prefix/lib/systemd/system/preforkd.socket" ]; then
    ok "installed units name $prefix/sbin and $prefix/etc"
else
    grep -s '^Exec' "$unit" >"$tmp/unit.out"
    not_ok "installed units name $prefix/sbin and $prefix/etc" "$tmp/unit.out"
fi
if command -v systemd-analyze >/dev/null 2>&1; then
    # Documentation=man:... must name pages that are installed: here.
    if MANPATH="$prefix/share/man" systemd-analyze verify "$unit" \
            "$prefix/lib/systemd/system/preforkd.socket" \
            >"$tmp/verify.out" 2>&1 && [ ! -s "$tmp/verify.out" ]; then
        ok "systemd-analyze verify on the installed units"
    else
        not_ok "systemd-analyze verify on the installed units" "$tmp/verify.out"
    fi
fi

# systemctl reload runs `preforkctl reload` on the default config: it must
# name an admin endpoint. With no daemon, preforkctl (its default -c is the
# installed file) must find the endpoint and fail to reach it (69), not
# refuse the file (1, "no admin endpoint").
conf=$prefix/etc/preforkd/preforkd.ini
# -t checks the host as start-up would. Port 8000 is the host's business
# (made ephemeral here); /run/preforkd is systemd's to create (a warning);
# user preforkd is the package's postinst's: without it, as root, exactly
# [server] user and group are errors.
sed 's/^listen = 127\.0\.0\.1:8000$/listen = 127.0.0.1:0/' "$conf" >"$tmp/default.ini"
"$prefix/sbin/preforkd" -t -c "$tmp/default.ini" >"$tmp/t.out" 2>&1
st=$?
if [ "$(id -u)" -ne 0 ] || id preforkd >/dev/null 2>&1; then
    want="exit 0"
    [ "$st" -eq 0 ]
else
    want="exit 78 for the user and group preforkd only"
    [ "$st" -eq 78 ] && [ "$(grep -c "^$tmp/default.ini:" "$tmp/t.out")" -eq 2 ] &&
        grep -qF '[server] user: "preforkd": no such user' "$tmp/t.out" &&
        grep -qF '[server] group: "preforkd": no such group' "$tmp/t.out"
fi
if [ $? -eq 0 ]; then
    ok "preforkd -t on the installed default config ($want)"
else
    not_ok "preforkd -t on the installed default config: exit $st, want $want" "$tmp/t.out"
fi
"$prefix/sbin/preforkctl" -t 1 status >"$tmp/ctl.out" 2>&1
st=$?
if [ "$st" -eq 69 ] && grep -qF "connecting to the admin endpoint unix:" "$tmp/ctl.out"
then
    ok "preforkctl on the installed default config finds the admin endpoint"
else
    not_ok "preforkctl on the installed default config: exit $st, expected 69" \
        "$tmp/ctl.out"
fi

# Installing again keeps a config the operator has changed.
echo "; changed here" >>"$conf"
# shellcheck disable=SC2086
(cd "$src" && $make_cmd install PREFIX="$prefix" BUILD="$tmp/build") \
    >"$tmp/make3.out" 2>&1
if tail -n 1 "$conf" | grep -qxF "; changed here"; then
    ok "make install again keeps the existing preforkd.ini"
else
    not_ok "make install again replaced the existing preforkd.ini" "$tmp/make3.out"
fi

# The same build directory installed again under another prefix must rebuild
# what names a path: the binary's apps directory and the .pc file.
prefix2=$tmp/prefix2
# shellcheck disable=SC2086
if (cd "$src" && $make_cmd install PREFIX="$prefix2" BUILD="$tmp/build") \
        >"$tmp/make2.out" 2>&1; then
    pc2=$(PKG_CONFIG_PATH="$prefix2/lib/pkgconfig" pkg-config --variable=prefix preforkd)
    if [ "$pc2" != "$prefix2" ]; then
        not_ok "reinstall PREFIX=$prefix2: preforkd.pc says prefix=$pc2"
    elif ! grep -qaF "$prefix2/lib/preforkd/apps" "$prefix2/sbin/preforkd"; then
        not_ok "reinstall PREFIX=$prefix2: the binary's apps directory is not under it"
    else
        ok "make install again with another PREFIX rebuilds the paths"
    fi
else
    not_ok "make install PREFIX=$prefix2 (same build directory)" "$tmp/make2.out"
fi

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
appdir=$(pkg-config --variable=appdir preforkd 2>/dev/null)
if [ "$appdir" = "$prefix/lib/preforkd/apps" ]; then
    ok "pkg-config --variable=appdir preforkd"
else
    not_ok "pkg-config --variable=appdir preforkd: got \"$appdir\""
fi

# ---- the manual pages -------------------------------------------------------
# Installed under MANDIR (PREFIX/share/man), naming this installation's
# paths, found by man(1) there and rendered without a single warning.
mandir=$prefix/share/man
for f in man8/preforkd.8 man8/preforkctl.8 man5/preforkd.ini.5; do
    if [ -f "$mandir/$f" ]; then ok "installed share/man/$f"
    else not_ok "installed share/man/$f"; fi
done
# roff writes each "-" of a path as "\-".
roff_apps=$(printf '%s' "$prefix/lib/preforkd/apps/" | sed 's/-/\\-/g')
if grep -qF "$roff_apps" "$mandir/man8/preforkd.8" 2>/dev/null; then
    ok "installed preforkd.8 names $prefix/lib/preforkd/apps/"
else
    grep -s -A1 '^\.SH FILES' "$mandir/man8/preforkd.8" >"$tmp/files.out"
    not_ok "installed preforkd.8 does not name $prefix/lib/preforkd/apps/" "$tmp/files.out"
fi
# The pages name paths under the temporary prefix, longer than any real
# one: 200 columns leave room for them (at 80, a path of more than 66
# characters cannot be broken). tests/integration/test_cli.sh renders man/ at 80.
if command -v man >/dev/null 2>&1 && command -v groff >/dev/null 2>&1; then
    for f in man8/preforkd.8 man8/preforkctl.8 man5/preforkd.ini.5; do
        LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=200 man --warnings -E UTF-8 -l \
            "$mandir/$f" >"$tmp/man.out" 2>"$tmp/man.err"
        st=$?
        groff -man -ww -z -rLL=200n "$mandir/$f" >>"$tmp/man.err" 2>&1
        if [ "$st" -eq 0 ] && [ -s "$tmp/man.out" ] && [ ! -s "$tmp/man.err" ]; then
            ok "man -l share/man/$f: no warning"
        else
            not_ok "man -l share/man/$f: exit $st, or warnings" "$tmp/man.err"
        fi
    done
    found=$(man -M "$mandir" -w 5 preforkd.ini 2>&1)
    if [ "$found" = "$mandir/man5/preforkd.ini.5" ]; then
        ok "man -M $mandir finds preforkd.ini(5)"
    else
        not_ok "man -M $mandir -w 5 preforkd.ini: got \"$found\""
    fi
else
    echo "skip - man or groff is not installed: the installed pages are not rendered"
fi

# ---- a module built outside the tree ----------------------------------------
cat >"$tmp/ext.c" <<'EOF'
/* An app module built outside preforkd's tree: answers
 * "ext: GREETING METHOD PATH\n", GREETING from [app] greeting. */
#include <stdio.h>
#include <string.h>
#include <preforkd.h>

static char greeting[64];

static int ext_load(const pf_app_config *cfg, void **state)
{
    const char *g = pf_config_get(cfg, "greeting");

    if (g == NULL)
        return pf_config_error(cfg, "greeting", "required");
    snprintf(greeting, sizeof greeting, "%s", g);
    pf_log(PF_LOG_INFO, "ext: loaded, greeting \"%s\"", greeting);
    return 0;
}

static int ext_handle(pf_request *r, void *state)
{
    static const pf_header headers[] = {
        {{"Content-Type", 12}, {"text/plain", 10}},
    };
    pf_str m = pf_request_method(r), p = pf_request_path(r);
    char body[256];
    int n = snprintf(body, sizeof body, "ext: %s %.*s %.*s\n", greeting,
                     (int)m.len, m.ptr, (int)p.len, p.ptr);

    return pf_respond(r, 200, headers, 1, body, (size_t)n);
}

PF_APP_DEFINE(.name = "ext", .description = "built out of tree",
              .load = ext_load, .handle = ext_handle);
EOF

cflags=$(pkg-config --cflags preforkd 2>"$tmp/pc.err")
# shellcheck disable=SC2086
if [ -n "$cflags" ] && $cc $cflags -Wall -Werror -shared -o "$tmp/ext.so" \
        "$tmp/ext.c" >"$tmp/cc.out" 2>&1; then
    ok "cc \$(pkg-config --cflags preforkd) -shared ext.c"
else
    cat "$tmp/pc.err" >>"$tmp/cc.out"
    not_ok "cc \$(pkg-config --cflags preforkd) -shared ext.c ($cflags)" \
        "$tmp/cc.out"
fi

# The installed header alone, as strict C99.
printf '#include <preforkd.h>\nint main(void) { return PF_ABI_VERSION - 1; }\n' \
    >"$tmp/hdr.c"
# shellcheck disable=SC2086
if $cc $cflags -std=c99 -Wall -Wextra -Wpedantic -Werror -c \
        -o "$tmp/hdr.o" "$tmp/hdr.c" >"$tmp/hdr.out" 2>&1; then
    ok "installed preforkd.h compiles as C99 -Wpedantic"
else
    not_ok "installed preforkd.h compiles as C99 -Wpedantic" "$tmp/hdr.out"
fi

# ---- preforkd -t ------------------------------------------------------------
bin=$prefix/sbin/preforkd

# check_t DESCRIPTION EXPECTED_STATUS CONFIG_FILE [TEXT EXPECTED IN OUTPUT]
check_t() {
    "$bin" -t -c "$3" >"$tmp/t.out" 2>&1
    st=$?
    if [ "$st" -ne "$2" ]; then
        not_ok "$1: preforkd -t exit $st, expected $2" "$tmp/t.out"
    elif [ -n "${4:-}" ] && ! grep -qF -- "$4" "$tmp/t.out"; then
        not_ok "$1: expected \"$4\" in the output" "$tmp/t.out"
    else
        ok "$1"
    fi
}

cat >"$tmp/ext.ini" <<EOF
[server]
listen = 127.0.0.1:0
workers = 1

[app]
module = $tmp/ext.so
greeting = hi there
EOF
check_t "preforkd -t, module built outside the tree" 0 "$tmp/ext.ini"

cat >"$tmp/typo.ini" <<EOF
[app]
module = $tmp/ext.so
greeting = hi there
greting = typo
EOF
check_t "preforkd -t, unknown [app] key" 78 "$tmp/typo.ini" \
    "$tmp/typo.ini:4: [app] greting: unknown key"

printf '[server]\nlisten = 127.0.0.1:0\n[app]\nmodule = hello\n' >"$tmp/hello.ini"
check_t "preforkd -t, built-in hello from the installed apps dir" 0 \
    "$tmp/hello.ini"

printf '[app]\nmodule = nosuch\n' >"$tmp/nosuch.ini"
"$bin" -t -c "$tmp/nosuch.ini" >"$tmp/t.out" 2>&1
st=$?
if [ "$st" -ne 0 ] && grep -qF "$prefix/lib/preforkd/apps/nosuch.so" "$tmp/t.out"
then
    ok "preforkd -t, unknown built-in: names the paths tried"
else
    not_ok "preforkd -t, unknown built-in: exit $st" "$tmp/t.out"
fi

# ---- the installed daemon serves the out-of-tree module ---------------------
"$bin" -c "$tmp/ext.ini" >"$tmp/daemon.log" 2>&1 &
pid=$!
port=
n=0
while [ "$n" -lt 100 ] && alive "$pid"; do
    port=$(sed -n 's/.*master: listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
        "$tmp/daemon.log" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.1
    n=$((n + 1))
done
if [ -z "$port" ]; then
    not_ok "daemon logs \"master: listening on 127.0.0.1:PORT\"" "$tmp/daemon.log"
else
    ok "daemon listening on 127.0.0.1:$port"
    body=$(curl -sS --max-time 10 "http://127.0.0.1:$port/some/path?q=1" \
        2>"$tmp/curl.err")
    if [ "$body" = "ext: hi there GET /some/path" ]; then
        ok "GET from the out-of-tree module"
    else
        cat "$tmp/curl.err" "$tmp/daemon.log" >"$tmp/why" 2>/dev/null
        not_ok "GET from the out-of-tree module: got \"$body\"" "$tmp/why"
    fi
fi

if [ -n "$pid" ]; then
    kids=$(children "$pid")
    stop_daemon
    if [ "$stop_status" -eq 0 ]; then
        ok "TERM: the daemon exits 0"
    else
        not_ok "TERM: the daemon exited $stop_status" "$tmp/daemon.log"
    fi
    left=
    for k in $kids; do alive "$k" && left="$left $k"; done
    if [ -z "$left" ]; then
        ok "no worker outlives the master"
    else
        not_ok "workers still running after the master:$left"
        # shellcheck disable=SC2086 # a list of pids
        kill -KILL $left 2>/dev/null
    fi
fi

finish
