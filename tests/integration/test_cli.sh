#!/bin/sh
# test_cli.sh - the command lines of preforkd and preforkctl (src/main.c,
# src/ctl/main.c): --help and -h print the usage on stdout and exit 0,
# --version and -v print "NAME VERSION" (the Makefile's VERSION) and exit 0,
# a usage error prints the usage on stderr only and exits 1 (preforkd) or
# 2 (preforkctl). Then the manual pages in man/ against those usages: every
# option and command the binaries list is documented, and each page renders
# without a warning (skipped, with a line that says so, without man/groff).
# Run by `make check` (PREFORKD_BIN, PREFORKD_CTL, PREFORKD_SRC). Starts no
# daemon. The last line is "N passed, N failed"; exit 1 on any failure.
set -u

src=${PREFORKD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${PREFORKD_BIN:-$src/build/preforkd}
ctl=${PREFORKD_CTL:-$src/build/preforkctl}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/preforkd-cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

. "$(dirname "$0")/../lib/tap.inc"

version=$(sed -n 's/^VERSION *:= *//p' "$src/Makefile")
[ -n "$version" ] || { not_ok "no VERSION := line in $src/Makefile"; finish; }

# run NAME ARGS...: runs the binary, stdout to $tmp/out, stderr to
# $tmp/err, the exit status in $st.
run() {
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    st=$?
}

# check_stream FILE SPEC: SPEC is "empty", "usage NAME" (a line starts
# with "usage: NAME ", after getopt's complaint if there is one), "line TEXT" (exactly one line, TEXT) or
# "first TEXT" (the first line is TEXT).
check_stream() {
    kind=${2%% *} arg=${2#* }
    case $kind in
    empty) [ ! -s "$1" ] ;;
    usage) head -n 2 "$1" | grep -q "^usage: $arg " ;;
    line) [ "$(wc -l <"$1")" -eq 1 ] && [ "$(cat "$1")" = "$arg" ] ;;
    first) [ "$(head -n 1 "$1")" = "$arg" ] ;;
    *) return 1 ;;
    esac
}

# expect DESCRIPTION STATUS STDOUT_SPEC STDERR_SPEC, after run.
expect() {
    if [ "$st" -ne "$2" ]; then
        cat "$tmp/out" "$tmp/err" >"$tmp/why"
        not_ok "$1: exit $st, expected $2" "$tmp/why"
    elif ! check_stream "$tmp/out" "$3"; then
        not_ok "$1: stdout is not \"$3\"" "$tmp/out"
    elif ! check_stream "$tmp/err" "$4"; then
        not_ok "$1: stderr is not \"$4\"" "$tmp/err"
    else
        ok "$1"
    fi
}

# ---- preforkd ---------------------------------------------------------------
for o in --help -h; do
    run "$bin" "$o"
    expect "preforkd $o" 0 "usage preforkd" empty
done
for o in --version -v; do
    run "$bin" "$o"
    expect "preforkd $o" 0 "line preforkd $version" empty
done
run "$bin" --no-such-option
expect "preforkd --no-such-option" 1 empty "usage preforkd"
run "$bin" -c
expect "preforkd -c (no file)" 1 empty "usage preforkd"
run "$bin" -c /dev/null extra
expect "preforkd with an extra argument" 1 empty "usage preforkd"
run "$bin" -w 2
expect "preforkd -w without --wsgi" 1 empty \
    "first preforkd: these options go with --wsgi (with -c, the file says it all)"
if grep -q "^usage: preforkd " "$tmp/err"; then ok "preforkd -w without --wsgi: usage follows"
else not_ok "preforkd -w without --wsgi: no usage on stderr" "$tmp/err"; fi
# -T is -t that prints the file on stdout: nothing there when the file is
# invalid, the errors on stderr, 78 (the round trip: tests/integration/test_check.c).
run "$bin" -T -c "$tmp/no-such.ini"
expect "preforkd -T on a missing file" 78 empty \
    "first $tmp/no-such.ini: cannot open: No such file or directory"
if tail -n 1 "$tmp/err" | grep -qxF "preforkd: $tmp/no-such.ini: configuration invalid"
then ok "preforkd -T on a missing file: \"configuration invalid\" last"
else not_ok "preforkd -T on a missing file: no closing line" "$tmp/err"; fi
run "$bin" -T -w 2
expect "preforkd -T -w without --wsgi" 1 empty \
    "first preforkd: these options go with --wsgi (with -c, the file says it all)"
"$bin" --help >"$tmp/usage.preforkd" 2>&1
for o in --help --version -t -T; do
    if grep -q -- "$o" "$tmp/usage.preforkd"; then ok "preforkd --help lists $o"
    else not_ok "preforkd --help does not list $o" "$tmp/usage.preforkd"; fi
done

# ---- preforkctl -------------------------------------------------------------
for o in --help -h; do
    run "$ctl" "$o"
    expect "preforkctl $o" 0 "usage preforkctl" empty
done
for o in --version -v; do
    run "$ctl" "$o"
    expect "preforkctl $o" 0 "line preforkctl $version" empty
done
# Options end at the command: -h after it is the command's business, not
# a request for help (it must not print the usage and exit 0).
run "$ctl" -a 127.0.0.1:1 -p /nonexistent status -h
if [ "$st" -ne 0 ]; then ok "preforkctl status -h is not --help (exit $st)"; else
    not_ok "preforkctl status -h exits 0" "$tmp/out"; fi
run "$ctl" --no-such-option
expect "preforkctl --no-such-option" 2 empty "usage preforkctl"
run "$ctl"
expect "preforkctl without a command" 2 empty "usage preforkctl"
run "$ctl" -t 0 status
expect "preforkctl -t 0" 2 empty "line preforkctl: -t 0: expected a number of seconds > 0"
run "$ctl" -a 127.0.0.1:1 -p /nonexistent no-such-command
if [ "$st" -eq 2 ] && grep -qF 'unknown command "no-such-command"' "$tmp/err" &&
    grep -q "^usage: preforkctl " "$tmp/err" && [ ! -s "$tmp/out" ]; then
    ok "preforkctl no-such-command: exit 2, usage on stderr"
else
    cat "$tmp/out" "$tmp/err" >"$tmp/why"
    not_ok "preforkctl no-such-command: exit $st" "$tmp/why"
fi
"$ctl" --help >"$tmp/usage.preforkctl" 2>&1

# ---- the manual pages against the usages ------------------------------------
# Every long option of preforkd's usage, and every short one, is in
# preforkd.8 (as roff writes it: \- for each -).
man8=$src/man/preforkd.8 ctl8=$src/man/preforkctl.8 ini5=$src/man/preforkd.ini.5
missing=
for o in $(grep -o -- '--[a-z][a-z-]*' "$tmp/usage.preforkd" | sort -u) \
         $(grep -o -- '^ *-[a-zA-Z]\b' "$tmp/usage.preforkd" | tr -d ' ' | sort -u) \
         -b -w; do
    roff=$(printf '%s' "$o" | sed 's/-/\\-/g')
    grep -qF -- "$roff" "$man8" || missing="$missing $o"
done
if [ -z "$missing" ]; then ok "preforkd.8 documents every option of preforkd --help"
else not_ok "preforkd.8 lacks:$missing"; fi

missing=
for c in status reload scale stop upgrade snapshot recycle "trace start" \
         "trace dump" "trace stop" '\\-\\-json' '\\-\\-frames' '\\-\\-top' \
         '\\-c' '\\-a' '\\-p' '\\-t' '\\-h' '\\-\\-help' '\\-v' '\\-\\-version'; do
    grep -q -- "^\.B[IR]* .*$c" "$ctl8" || missing="$missing $c"
done
for c in status reload scale stop upgrade snapshot recycle trace; do
    grep -q "^  $c" "$tmp/usage.preforkctl" || missing="$missing (usage: $c)"
done
if [ -z "$missing" ]; then ok "preforkctl.8 documents every command and option"
else not_ok "preforkctl.8 lacks:$missing"; fi

# Each key of config.c's tables is in preforkd.ini.5.
keys=$(sed -n -e 's/^ *\(SRV\|REC\|UPS\)(\([a-z_]*\),.*/\2/p' \
              -e 's/^ *LOGK(\([a-z_]*\),.*/\1/p' \
              -e 's/^ *{ "\([a-z_]*\)", V_.*/\1/p' "$src/src/common/config.c" | sort -u)
missing=
for k in $keys; do
    grep -q "^\.BI \"$k = \"" "$ini5" || missing="$missing $k"
done
nkeys=$(printf '%s\n' "$keys" | wc -l)
if [ "$nkeys" -lt 40 ]; then
    not_ok "found only $nkeys keys in src/common/config.c's tables: the pattern is stale"
elif [ -z "$missing" ]; then
    ok "preforkd.ini.5 documents all $nkeys keys of src/common/config.c"
else
    not_ok "preforkd.ini.5 lacks:$missing"
fi

# ---- the manual pages render without a warning ------------------------------
if command -v man >/dev/null 2>&1 && command -v groff >/dev/null 2>&1; then
    for page in "$man8" "$ctl8" "$ini5"; do
        n=${page##*/}
        LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "$page" \
            >"$tmp/man.out" 2>"$tmp/man.err"
        mst=$?
        groff -man -ww -z "$page" >>"$tmp/man.err" 2>&1
        if [ "$mst" -eq 0 ] && [ ! -s "$tmp/man.err" ] && [ -s "$tmp/man.out" ]; then
            ok "$n renders without warnings"
        else
            not_ok "$n: man exit $mst, warnings" "$tmp/man.err"
        fi
    done
else
    echo "skip - man or groff is not installed: the pages' rendering is not checked"
fi

finish
